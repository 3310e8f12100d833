"""MindSpore-style gradient classes: ``GradOperation``, ``Jvp`` and ``Vjp``.

They are thin shells over :func:`dualad.vjp` and :func:`dualad.jvp`, so they
nest with each other and with every other transform (a ``GradOperation`` of a
``GradOperation`` is a second derivative).

>>> import numpy as np, dualad as da
>>> d2 = da.GradOperation()(da.GradOperation()(np.sin))
>>> float(np.round(d2(np.array([1.0]))[0], 6))
-0.841471
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dualad.compat.weights import bind_weights, weights_list
from dualad.core.args import check_float_args, zeros_like
from dualad.core.registry import shape_of
from dualad.core.tree import tree_flatten, tree_map, tree_unflatten
from dualad.forward.api import jvp
from dualad.reverse.api import _ones_like, vjp

__all__ = ["GradOperation", "Jvp", "Vjp"]


# ============================================================================
# Sensitivities (output cotangents)
# ============================================================================
def _check_sens(out, sens, what: str = "sensitivity"):
    """``sens`` arranged like ``out``; a ValueError naming both shapes (or
    both structures) when it does not fit. A single output takes a single
    sensitivity (a 1-tuple around it is accepted too)."""
    out_leaves, out_td = tree_flatten(out)
    sens_leaves, sens_td = tree_flatten(sens)
    if out_td.kind == "leaf" and isinstance(sens, list) and all(
            isinstance(x, (int, float, np.number)) for x in sens_leaves):
        # a nested list of numbers for a single output is an array literal
        sens = np.asarray(sens, dtype=float)
        sens_leaves, sens_td = [sens], out_td
    if out_td != sens_td:
        single = out_td.num_leaves == 1 and len(sens_leaves) == 1
        if not (single and isinstance(sens, (tuple, list))):   # (s,) for one output is fine
            raise ValueError(
                f"{what} structure {sens_td} does not match the output structure {out_td} "
                "(pass one sensitivity per output, a tuple for a tuple output)")
    for o, s in zip(out_leaves, sens_leaves, strict=True):
        if s is None:
            raise ValueError(f"{what} is None for an output of shape {shape_of(o)}")
        os_, ss = shape_of(o), shape_of(s)
        if os_ != ss:
            raise ValueError(f"{what} shape {ss} does not match the output shape {os_}")
    return tree_unflatten(out_td, sens_leaves)


# ============================================================================
# GradOperation
# ============================================================================
class GradOperation:
    """MindSpore's ``ops.GradOperation``: ``GradOperation(...)(fn[, weights])``
    is a function returning gradients of ``fn`` at its call arguments.

    ===========  ===========  ==================================================
    get_all      get_by_list  the gradient function returns
    ===========  ===========  ==================================================
    False        False        gradient of the first input
    True         False        (grad_in0, grad_in1, ...)
    False        True         (grad_w0, grad_w1, ...)
    True         True         ((grad_in0, ...), (grad_w0, ...))
    ===========  ===========  ==================================================

    A non-scalar output is differentiated as the sum of its entries (a tuple
    output as the sum of all of them). With ``sens_param=True`` the last call
    argument is the sensitivity instead: the output cotangent, shaped like the
    output (a tuple for a tuple output). ``weights`` (a Parameter, a list of
    them or ``module.trainable_params()``) is used only with ``get_by_list``;
    a Parameter with ``requires_grad=False`` gets a zero gradient.

    >>> import numpy as np, dualad as da
    >>> f = lambda x, y: x * x * y
    >>> da.GradOperation(get_all=True)(f)(np.array([4.0]), np.array([5.0]))
    (array([40.]), array([16.]))
    >>> da.GradOperation(sens_param=True)(np.sin)(np.array([0.0]), np.array([0.5]))
    array([0.5])
    """

    def __init__(self, get_all: bool = False, get_by_list: bool = False,
                 sens_param: bool = False):
        self.get_all = bool(get_all)
        self.get_by_list = bool(get_by_list)
        self.sens_param = bool(sens_param)

    def __repr__(self) -> str:
        return (f"GradOperation(get_all={self.get_all}, get_by_list={self.get_by_list}, "
                f"sens_param={self.sens_param})")

    def __call__(self, fn: Callable, weights: Any = None) -> Callable:
        if not callable(fn):
            raise TypeError(f"GradOperation needs a callable, got {type(fn).__name__}")
        if self.get_by_list and weights is None:
            raise ValueError("GradOperation(get_by_list=True) needs weights: "
                             "call it as op(fn, module.trainable_params())")
        params = weights_list(weights) if self.get_by_list else []
        get_all, get_by_list, sens_param = self.get_all, self.get_by_list, self.sens_param

        def gradient_function(*args):
            sens = None
            if sens_param:
                if not args:
                    raise TypeError("GradOperation(sens_param=True): the gradient function "
                                    "takes the inputs followed by the sensitivity")
                args, sens = args[:-1], args[-1]
            # differentiate only what the result needs: the inputs (all, or the
            # first unless only weight gradients are asked for) and the weights
            if get_all:
                positions = tuple(range(len(args)))
            elif get_by_list:
                positions = ()
            else:
                if not args:
                    raise TypeError("GradOperation(): the gradient function needs at least "
                                    "one input (the gradient is taken w.r.t. the first)")
                positions = (0,)
            check_float_args(args, positions, {p: f"input {p}" for p in positions})
            n = len(positions)

            def inner(*vals):
                call = list(args)
                for p, v in zip(positions, vals[:n], strict=True):
                    call[p] = v
                with bind_weights(params, vals[n:]):
                    return fn(*call)

            primals = [args[p] for p in positions]
            out, pull = vjp(inner, *primals, *[p._current() for p in params])
            ct = _check_sens(out, sens) if sens_param else tree_map(_ones_like, out)
            grads = pull(ct)
            g_in = tuple(grads[:n])
            g_w = tuple(g if p.requires_grad else zeros_like(g)
                        for g, p in zip(grads[n:], params, strict=True))
            if get_by_list:
                return (g_in, g_w) if get_all else g_w
            return g_in if get_all else g_in[0]

        gradient_function.__name__ = f"grad_{getattr(fn, '__name__', type(fn).__name__)}"
        gradient_function.__doc__ = f"{self!r} of {fn!r}"
        return gradient_function


# ============================================================================
# Jvp and Vjp
# ============================================================================
class Jvp:
    """MindSpore's ``nn.Jvp``: ``Jvp(fn)(*inputs, v)`` returns
    ``(fn(*inputs), J @ v)`` by forward mode; ``v`` is a tuple of tangents, one
    per input (or a single tangent when there is one input).

    >>> import numpy as np, dualad as da
    >>> f = lambda x, y: np.sin(x) + np.cos(y)
    >>> out, t = da.Jvp(f)(np.array([0.0]), np.array([0.0]), (np.ones(1), np.ones(1)))
    >>> out, t
    (array([1.]), array([1.]))
    """

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"Jvp needs a callable, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, *args):
        if len(args) < 2:
            raise TypeError("Jvp(fn) is called as (*inputs, v): at least one input and v")
        inputs, v = args[:-1], args[-1]
        return jvp(self.fn, inputs, _tangent_tuple(inputs, v))


def _tangent_tuple(inputs: tuple, v) -> tuple:
    """``v`` as a tuple with one tangent per input."""
    if len(inputs) == 1 and tree_flatten(v)[1] == tree_flatten(inputs[0])[1]:
        return (v,)
    if isinstance(v, (tuple, list)) and len(v) == len(inputs):
        return tuple(v)
    given = len(v) if isinstance(v, (tuple, list)) else 1
    raise ValueError(f"Jvp: v must hold one tangent per input: {len(inputs)} inputs, "
                     f"{given} tangent(s) given")


class Vjp:
    """MindSpore's ``nn.Vjp``: ``Vjp(fn)(*inputs, v)`` returns
    ``(fn(*inputs), (cot_in0, cot_in1, ...))`` by reverse mode; ``v`` is the
    output cotangent, shaped like the output (a tuple for a tuple output).

    >>> import numpy as np, dualad as da
    >>> f = lambda x, y: np.sin(x) + np.cos(y)
    >>> out, (cx, cy) = da.Vjp(f)(np.array([0.0]), np.array([np.pi / 2]), np.array([2.0]))
    >>> cx, cy
    (array([2.]), array([-2.]))
    """

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"Vjp needs a callable, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, *args):
        if len(args) < 2:
            raise TypeError("Vjp(fn) is called as (*inputs, v): at least one input and v")
        inputs, v = args[:-1], args[-1]
        out, pull = vjp(self.fn, *inputs)
        return out, pull(_check_sens(out, v, "v (the output cotangent)"))
