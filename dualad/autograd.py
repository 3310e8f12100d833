"""``dualad.autograd``: the PyTorch ``torch.autograd`` functions for tape tensors.

>>> import numpy as np, dualad as da
>>> x = da.tensor(2.0, requires_grad=True)
>>> y = x ** 3
>>> (g,) = da.autograd.grad(y, x, create_graph=True)
>>> (h,) = da.autograd.grad(g, x)
>>> g.item(), h.item()
(12.0, 12.0)
"""
from __future__ import annotations

from dualad.reverse.tape import GraphFreedError
from dualad.reverse.tensor import Tensor, grad, is_grad_enabled, no_grad, tensor
from dualad.reverse.tensor import backward_all as backward

__all__ = ["GraphFreedError", "Tensor", "backward", "grad", "is_grad_enabled", "no_grad",
           "tensor"]
