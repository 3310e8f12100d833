"""``jet``: Taylor-mode propagation with ``jax.experimental.jet``'s conventions.

The input path is ``x(t) = x0 + sum_k series[k-1] t**k / k!``: series terms are
DERIVATIVE coefficients (the k-th term is ``x^(k)(0)``), not the normalised
``x^(k)(0) / k!`` that :class:`~dualad.forward.taylor.Taylor` stores; ``jet``
converts on the way in and out, so its results match JAX's term for term.

>>> import numpy as np
>>> y, ys = jet(np.exp, (0.0,), ([1.0, 1.0],))
>>> float(y), [float(c) for c in ys]
(1.0, [1.0, 2.0])
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dualad.core.backend import namespace_of, peel, result_float_dtype
from dualad.core.levels import new_level
from dualad.core.registry import shape_of
from dualad.core.tree import tree_flatten, tree_unflatten
from dualad.forward.taylor import Taylor, TaylorLevel
from dualad.forward.taylor_series import _full

__all__ = ["jet"]


def _as_array(x, what: str):
    if hasattr(x, "_level") or hasattr(x, "shape"):
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float, list, tuple, np.generic)):
        raise TypeError(f"jet: {what} must be a float array or number, got {type(x).__name__}")
    return np.asarray(x, dtype=np.float64)


def jet(fn: Callable, primals: tuple, series: tuple) -> tuple:
    """Push truncated Taylor series through ``fn`` (``jax.experimental.jet``).

    ``primals``: a tuple of arrays ``x0``; ``series``: a tuple (one entry per
    primal) of lists ``[x1, ..., xK]`` of the primal's shape, the derivatives
    of the input path at ``t = 0``. Returns ``(fn(*primals), out_series)``
    with ``out_series`` a list ``[y1, ..., yK]`` of the output's derivatives
    along the path (for a pytree output, the same pytree of such lists).
    Every primitive the Taylor interpreter covers works (recurrences, the
    generic rule from the partials, or nested jvp for the rest); arrays may
    have any shape.

    >>> import numpy as np
    >>> y, (y1, y2) = jet(lambda x: np.sum(x ** 2), (np.array([1.0, 2.0]),),
    ...                   ([np.array([1.0, 0.0]), np.zeros(2)],))
    >>> float(y), float(y1), float(y2)
    (5.0, 2.0, 2.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(series, (tuple, list)):
        raise TypeError("jet(fn, primals, series): primals and series must be tuples "
                        "(one series list per primal)")
    if len(primals) != len(series):
        raise ValueError(f"jet: {len(primals)} primal(s) but {len(series)} series")
    orders = {len(s) for s in series}
    if len(orders) > 1:
        raise ValueError(f"jet: every series needs the same number of terms, got {sorted(orders)}")
    order = orders.pop() if orders else 0
    xs = [_as_array(x, f"primal {i}") for i, x in enumerate(primals)]
    with new_level(TaylorLevel()) as level:
        args = []
        for i, (x, terms) in enumerate(zip(xs, series)):
            coeffs = [x]
            for k, c in enumerate(terms, start=1):
                c = _as_array(c, f"series[{i}][{k - 1}]")
                if shape_of(c) != shape_of(x):
                    raise ValueError(f"jet: series[{i}][{k - 1}] has shape {shape_of(c)}, "
                                     f"its primal {shape_of(x)}")
                coeffs.append(c / math.factorial(k) if k > 1 else c)
            args.append(Taylor._make(coeffs, level) if order else x)
        out = fn(*args)
        leaves, td = tree_flatten(out)
        prim_out, series_out = [], []
        for o in leaves:
            if getattr(o, "_level", None) is level and len(o.coeffs) > 1:
                c0 = o.coeffs[0]
                prim_out.append(_array(c0))
                series_out.append([_array(_full(o.coeffs[k], c0) * math.factorial(k))
                                   for k in range(1, order + 1)])
            else:
                p = o.coeffs[0] if getattr(o, "_level", None) is level else o
                prim_out.append(_array(p))
                series_out.append([_zeros(p) for _ in range(order)])
    return tree_unflatten(td, prim_out), tree_unflatten(td, series_out)


def _array(v):
    if hasattr(v, "_level"):
        return v
    if isinstance(v, np.ndarray):
        return v if v.flags.writeable else v.copy()
    return np.asarray(v)


def _zeros(like):
    v = peel(like)
    return namespace_of(v).zeros(shape_of(v), dtype=result_float_dtype(v))
