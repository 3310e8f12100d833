"""Article "深度学习利器之自动微分(2)" (autodiff-forward-reverse-article-zh.txt),
section 4.3.3 反向模式: the reverse sweep of ``y = ln(x1) + x1 * x2 - sin(x2)``
at (2, 5) simulated with tape tensors: ``autograd.grad`` of the output with
respect to each intermediate node v4, v3, v2, v1 (not leaves), and of each
node with respect to its inputs, all on one retained graph.

Run: ``python examples/seeds/article_reverse_intermediates.py``
"""
from _nets import article_graph
from _show import section, show

from dualad import autograd

section("4.3.3 反向模式 (simulated): gradients w.r.t. each intermediate")
t1, t2, v1, v2, v3, v4, y = article_graph()
r_dv4 = autograd.grad(y, [v4], retain_graph=True)
r_dv3 = autograd.grad(y, [v3], retain_graph=True)
r_dv2 = autograd.grad(v4, [v2], retain_graph=True)
r_dv1 = autograd.grad(v4, [v1], retain_graph=True)
r_dv0 = autograd.grad(v3, [t2], retain_graph=True)
r_dv21 = autograd.grad(v2, [t1], retain_graph=True)
r_dv22 = autograd.grad(v2, [t2], retain_graph=True)
r_dv11 = autograd.grad(v1, [t1], retain_graph=True)
grads = autograd.grad(y, [t1, t2])
show("rev_dv4", r_dv4)
show("rev_dv3", r_dv3)
show("rev_dv2", r_dv2)
show("rev_dv1", r_dv1)
show("rev_dv0", r_dv0)
show("rev_dv21", r_dv21)
show("rev_dv22", r_dv22)
show("rev_dv11", r_dv11)
show("rev_sim_grad", grads)

