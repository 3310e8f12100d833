"""MindSpore tutorial "求导" (mindspore-derivation-zh.txt), section 高阶求导:
second derivatives by nesting GradOperation.

- 单输入单输出: d²/dx² sin(x) at x = 1  (-sin(1))
- 单输入多输出: d²/dx² (x * x) at x = [0.1, 0.2, 0.3]
- 多输入多输出: x**2 * y at (4, 5): dxdx, dxdy, dydx, dydy through the
  sensitivities (1, 0) and (0, 1) of an outer GradOperation(get_all, sens_param)

Run: ``python examples/seeds/derivation_higher_order.py``
"""
import numpy as np
from _show import section, show

import dualad as da


class Sin(da.Module):
    def construct(self, x):
        return np.sin(x)


class Square(da.Module):
    def construct(self, x):
        return x * x


class XSquareY(da.Module):
    def construct(self, x, y):
        x_square = x * x
        x_square_y = x_square * y
        return x_square_y


class Grad(da.Module):
    """First order: GradOperation(get_all, sens_param=False) of a network."""

    def __init__(self, network, get_all=False):
        self.grad = da.GradOperation(get_all=get_all, sens_param=False)
        self.network = network

    def construct(self, *inputs):
        return self.grad(self.network)(*inputs)


class GradSec(da.Module):
    """Second order for x**2*y: sensitivities select dx (1, 0) or dy (0, 1)."""

    def __init__(self, network):
        self.grad = da.GradOperation(get_all=True, sens_param=True)
        self.network = network
        self.sens1 = np.array([1.0])
        self.sens2 = np.array([0.0])

    def construct(self, x, y):
        dxdx, dxdy = self.grad(self.network)(x, y, (self.sens1, self.sens2))
        dydx, dydy = self.grad(self.network)(x, y, (self.sens2, self.sens1))
        return dxdx, dxdy, dydx, dydy


section("单输入单输出: sin''(1)")
secondgrad = Grad(Grad(Sin()))
show("sin_second", secondgrad(np.array([1.0])))

section("单输入多输出: (x*x)''")
secondgrad = Grad(Grad(Square()))
show("square_second", secondgrad(np.array([0.1, 0.2, 0.3])))

section("多输入多输出: x**2*y at (4, 5)")
firstgrad = Grad(XSquareY(), get_all=True)
show("first_dx_dy", firstgrad(np.array([4.0]), np.array([5.0])))
dxdx, dxdy, dydx, dydy = GradSec(firstgrad)(np.array([4.0]), np.array([5.0]))
show("dxdx", dxdx)
show("dxdy", dxdy)
show("dydx", dydx)
show("dydy", dydy)
