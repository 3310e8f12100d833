"""MindSpore tutorial "求导" (mindspore-derivation-zh.txt), section 一阶求导:
GradOperation on a MatMul network ``(x * z) @ y``.

- 输入求导: gradient w.r.t. the first input x (and, with get_all=True, x and y)
- 权重求导: gradient w.r.t. the weight z (get_by_list=True)
- 梯度值缩放: sensitivities (sens_param=True)
- the single output ``out[0][0]``

Run: ``python examples/seeds/derivation_first_order.py``
"""
import numpy as np
from _show import section, show

import dualad as da


class Net(da.Module):
    """``out = (x * z) @ y`` with a weight z = [1.0]."""

    def __init__(self):
        self.z = da.Parameter(np.array([1.0]), name="z")

    def construct(self, x, y):
        x = x * self.z
        out = np.matmul(x, y)
        return out


class NetSingle(Net):
    """The same network returning the single output ``out[0][0]``."""

    def construct(self, x, y):
        x = x * self.z
        out = x @ y
        return out[0][0]


class GradNetWrtX(da.Module):
    """Applies a GradOperation to ``net`` (with its weights when get_by_list)."""

    def __init__(self, net, grad_op, sens=None):
        self.net = net
        self.grad_op = grad_op
        self.sens = sens

    def construct(self, x, y):
        if self.grad_op.get_by_list:
            gradient_function = self.grad_op(self.net, self.net.trainable_params())
        else:
            gradient_function = self.grad_op(self.net)
        if self.sens is not None:
            return gradient_function(x, y, self.sens)
        return gradient_function(x, y)


x = np.array([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]])
y = np.array([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]])

section("输入求导: GradOperation()")
show("grad_x", GradNetWrtX(Net(), da.GradOperation())(x, y))

section("输入求导: GradOperation(get_all=True)")
gx, gy = GradNetWrtX(Net(), da.GradOperation(get_all=True))(x, y)
show("grad_all_x", gx)
show("grad_all_y", gy)

section("权重求导: GradOperation(get_by_list=True)")
show("grad_z", GradNetWrtX(Net(), da.GradOperation(get_by_list=True))(x, y))

section("梯度值缩放: GradOperation(sens_param=True)")
grad_wrt_output = np.array([[0.1, 0.6, 0.2], [0.8, 1.3, 1.1]])
show("grad_sens", GradNetWrtX(Net(), da.GradOperation(sens_param=True), grad_wrt_output)(x, y))

section("单个输出 out[0][0]: sensitivity 1 at [0][0], 0 elsewhere")
one_hot = np.zeros((2, 3))
one_hot[0, 0] = 1.0
show("grad_onehot", GradNetWrtX(Net(), da.GradOperation(sens_param=True), one_hot)(x, y))

section("单个输出 out[0][0]: the network returns out[0][0]")
show("grad_single", GradNetWrtX(NetSingle(), da.GradOperation())(x, y))
