"""MindSpore "Automatic Differentiation" (mindspore-autodiff-en.txt):
GradOperation on ``f(x) = w * x + b`` with w = 6, b = 1.

- gradient w.r.t. the input: f'(x) = w = 6
- weight gradients (get_by_list=True): wgrad = x, bgrad = 1
- ``requires_grad=False`` on b: only w is a trainable parameter
- sens_param: the gradient scaled by the sensitivity 0.1
- stop_gradient on the output: every weight gradient is 0

Run: ``python examples/seeds/autodiff_en_linear.py``
"""
import numpy as np
from _show import section, show

import dualad as da
from dualad import stop_gradient


class Net(da.Module):
    def __init__(self, b_requires_grad=True, stop=False):
        self.w = da.Parameter(np.array([6.0]), name="w")
        self.b = da.Parameter(np.array([1.0]), name="b", requires_grad=b_requires_grad)
        self.stop = stop

    def construct(self, x):
        out = self.w * x + self.b
        if self.stop:
            # the out does not contribute to gradient calculations
            out = stop_gradient(out)
        return out


class GradNet(da.Module):
    def __init__(self, net, grad_op, sens=None):
        self.net = net
        self.params = net.trainable_params()
        self.grad_op = grad_op
        self.sens = sens

    def construct(self, x):
        if self.grad_op.get_by_list:
            gradient_function = self.grad_op(self.net, self.params)
        else:
            gradient_function = self.grad_op(self.net)
        if self.sens is not None:
            return gradient_function(x, self.sens)
        return gradient_function(x)


section("gradient w.r.t. x: f'(x) = w")
show("grad_x", GradNet(Net(), da.GradOperation())(np.array([100.0])))

section("weight gradients: get_by_list=True")
fx = GradNet(Net(), da.GradOperation(get_by_list=True))(np.array([100.0]))
show("wgrad", fx[0])
show("bgrad", fx[1])

section("requires_grad=False on b: trainable_params() is (w,)")
fw = GradNet(Net(b_requires_grad=False), da.GradOperation(get_by_list=True))(np.array([5.0]))
show("grad_w_only", fw)

section("sens_param=True with sensitivity [0.1]")
show("grad_sens", GradNet(Net(), da.GradOperation(sens_param=True),
                          np.array([0.1]))(np.array([6.0])))

section("stop_gradient on the output")
output = GradNet(Net(stop=True), da.GradOperation(get_by_list=True))(np.array([100.0]))
show("stop_wgrad", output[0])
show("stop_bgrad", output[1])
