"""Article "深度学习利器之自动微分(2)" (autodiff-forward-reverse-article-zh.txt):
the worked example ``y = ln(x1) + x1 * x2 - sin(x2)`` at (x1, x2) = (2, 5).

- 2.4 forward mode: one jvp per input direction (dy/dx1 = 5.5, dy/dx2 = 1.7163)
- 3.5 reverse mode: one backward pass for both (grad, vjp)
- 4.3.1 / 4.3.2 the PyTorch simulations with tape tensors: autograd.grad of
  each intermediate w.r.t. the leaves (retain_graph=True), y.backward()
  (4.3.3, gradients w.r.t. intermediates, is article_reverse_intermediates.py)
- 4.2 backward(gradient, inputs=...), create_graph=True (higher order), a
  second backward over a freed graph

Run: ``python examples/seeds/article_forward_reverse.py``
"""
import numpy as np
from _nets import article_graph
from _show import section, show

import dualad as da
from dualad import autograd


def f(x1, x2):
    return np.log(x1) + x1 * x2 - np.sin(x2)


x1, x2 = 2.0, 5.0

# ---------------------------------------------------------------------------
section("2.4 forward mode: jvp with tangents (1, 0) and (0, 1)")
y, dy_dx1 = da.jvp(f, (x1, x2), (1.0, 0.0))
_, dy_dx2 = da.jvp(f, (x1, x2), (0.0, 1.0))
show("fwd_y", y)
show("fwd_dy_dx1", dy_dx1)
show("fwd_dy_dx2", dy_dx2)

section("3.5 reverse mode: grad and vjp (one backward pass)")
show("rev_grad", da.grad(f, grad_position=(0, 1))(x1, x2))
y, pull = da.vjp(f, x1, x2)
show("rev_vjp", pull(1.0))

# ---------------------------------------------------------------------------
section("4.3.1 原始版本: autograd.grad(y, [x1, x2])")
t1 = da.tensor(2.0, requires_grad=True)
t2 = da.tensor(5.0, requires_grad=True)
y = np.log(t1) + t1 * t2 - np.sin(t2)
grads = autograd.grad(y, [t1, t2])
show("y", y)
show("grad", grads)

section("4.3.2 前向模式 (simulated): gradients of each intermediate")
t1, t2, v1, v2, v3, v4, y = article_graph()
dv1 = autograd.grad(v1, [t1], retain_graph=True)
dv2 = autograd.grad(v2, [t1], retain_graph=True)
dv3 = autograd.grad(v3, [t2], retain_graph=True)
dv4 = autograd.grad(v4, [t1, t2], retain_graph=True)
grads = autograd.grad(y, [t1, t2])
show("v1", v1)
show("v2", v2)
show("v3", v3)
show("v4", v4)
show("fwd_sim_y", y)
show("dv1", dv1)
show("dv2", dv2)
show("dv3", dv3)
show("dv4", dv4)
show("fwd_sim_grad", grads)

section("y.backward(): gradients accumulate into .grad")
t1 = da.tensor(2.0, requires_grad=True)
t2 = da.tensor(5.0, requires_grad=True)
y = np.log(t1) + t1 * t2 - np.sin(t2)
y.backward()
show("backward_x1_grad", t1.grad)
show("backward_x2_grad", t2.grad)
try:
    y.backward()
    print("second_backward: no error")
except RuntimeError as e:
    print("second_backward: RuntimeError:", type(e).__name__)

section("create_graph=True: second derivatives of y")
t1 = da.tensor(2.0, requires_grad=True)
t2 = da.tensor(5.0, requires_grad=True)
y = np.log(t1) + t1 * t2 - np.sin(t2)
(g1, g2) = autograd.grad(y, [t1, t2], create_graph=True)
show("d2y_dx1dx1_dx1dx2", autograd.grad(g1, [t1, t2], retain_graph=True))   # -1/x1², 1
show("d2y_dx2dx1_dx2dx2", autograd.grad(g2, [t1, t2]))   # 1, sin(x2) (y has -sin(x2))

# ---------------------------------------------------------------------------
section("4.2.1 backward(inputs=[a]): only a accumulates")
# (the article's snippet uses an undefined x and prints numbers that do not
# follow from it; this is the documented behaviour of ``inputs``)
a = da.tensor(1.0, requires_grad=True)
b = da.tensor(2.0, requires_grad=True)
z = a ** 3 + b
z.backward(inputs=[a])
show("inputs_a_grad", a.grad)
print("inputs_b_grad:", b.grad)

section("4.2.1 backward(gradient, inputs=[x, y]) on a 2x2 function")
xv = np.array([[1.0, -2.0], [0.5, 3.0]])
yv = np.array([[2.0, 1.0], [-1.0, 0.25]])
x = da.tensor(xv, requires_grad=True)
yt = da.tensor(yv, requires_grad=True)


def fn():
    return x ** 2 + yt * x + yt ** 2


gradient = np.ones((2, 2))
autograd.backward(fn(), gradient, inputs=[x, yt])
show("bw_x", xv)
show("bw_y", yv)
show("bw_x_grad", x.grad)         # 2x + y
show("bw_y_grad", yt.grad)        # x + 2y

section("4.2.2 grad with create_graph: Hessian-vector product")
x = da.tensor(xv, requires_grad=True)
yt = da.tensor(yv, requires_grad=True)
z = x ** 2 + yt * x + yt ** 2
z.backward(np.ones((2, 2)), create_graph=True)
grad_sum = 2 * x.grad + yt.grad
x_hv = autograd.grad(outputs=[grad_sum], grad_outputs=[np.ones((2, 2))],
                     inputs=[x], create_graph=True)
show("cg_x_grad", x.grad)         # 2x + y
show("cg_y_grad", yt.grad)        # x + 2y
show("cg_x_hv", x_hv)             # d(2(2x + y) + (x + 2y))/dx = 5
