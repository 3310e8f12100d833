"""MindSpore tutorial "求导" (mindspore-derivation-zh.txt), section 停止计算梯度:
``out = x @ y + stop_gradient(x @ y)``; without stop_gradient the gradient doubles.

Run: ``python examples/seeds/derivation_stop_gradient.py``
"""
import numpy as np
from _show import section, show

import dualad as da
from dualad import stop_gradient


class Net(da.Module):
    def __init__(self, stop=True):
        self.stop = stop

    def construct(self, x, y):
        out1 = np.matmul(x, y)
        out2 = np.matmul(x, y)
        if self.stop:
            out2 = stop_gradient(out2)
        out = out1 + out2
        return out


class GradNetWrtX(da.Module):
    def __init__(self, net):
        self.net = net
        self.grad_op = da.GradOperation()

    def construct(self, x, y):
        gradient_function = self.grad_op(self.net)
        return gradient_function(x, y)


x = np.array([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]])
y = np.array([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]])

section("with stop_gradient(out2): only out1 contributes")
show("grad_stop", GradNetWrtX(Net(stop=True))(x, y))
section("without stop_gradient: out1 and out2 contribute equally (doubled)")
show("grad_nostop", GradNetWrtX(Net(stop=False))(x, y))
