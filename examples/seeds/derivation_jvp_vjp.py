"""MindSpore tutorial "求导" (mindspore-derivation-zh.txt), section Jvp与Vjp接口:
``out = sin(x) + cos(y)``; Jvp (forward mode) with v = (1, 1) for each input,
Vjp (reverse mode) with the output cotangent v = 1.

Run: ``python examples/seeds/derivation_jvp_vjp.py``
"""
import numpy as np
from _show import section, show

import dualad as da


class Net(da.Module):
    def construct(self, x, y):
        a = np.sin(x)
        b = np.cos(y)
        out = a + b
        return out


class JvpNet(da.Module):
    def __init__(self, net):
        self.net = net
        self.grad_op = da.Jvp(net)

    def construct(self, x, y, v):
        return self.grad_op(x, y, (v, v))


class VjpNet(da.Module):
    def __init__(self, net):
        self.net = net
        self.grad_op = da.Vjp(net)

    def construct(self, x, y, v):
        return self.grad_op(x, y, v)


x = np.array([0.8, 0.6, 0.2])
y = np.array([0.7, 0.4, 0.3])
v = np.array([1.0, 1.0, 1.0])

section("Jvp: (out, cos(x) * v - sin(y) * v)")
out, jvp_out = JvpNet(Net())(x, y, v)
show("jvp_out", out)
show("jvp_tangent", jvp_out)

section("Vjp: (out, (cos(x) * v, -sin(y) * v))")
out, (cx, cy) = VjpNet(Net())(x, y, v)
show("vjp_out", out)
show("vjp_cot_x", cx)
show("vjp_cot_y", cy)
