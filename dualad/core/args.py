"""Helpers shared by the functional transforms: argument checks, seeding,
and turning results back into plain arrays."""
from __future__ import annotations

import numpy as np

from dualad.core.backend import check_differentiable, is_float_value, namespace_of, peel
from dualad.core.registry import shape_of
from dualad.core.tree import tree_flatten, tree_leaves
from dualad.core.zero import Zero


def as_tuple_positions(argnums) -> tuple[tuple, bool]:
    """``argnums`` as a tuple of ints, and whether the caller gave a tuple."""
    if isinstance(argnums, (int, np.integer)):
        return (int(argnums),), False
    return tuple(int(a) for a in argnums), True


def check_positions(positions: tuple, n_args: int) -> None:
    for p in positions:
        if not -n_args <= p < n_args:
            raise ValueError(f"argument position {p} is out of range for {n_args} arguments")


def as_array(x):
    """An array-like for a leaf. Python floats become NumPy float64 scalars:
    scalar arithmetic on them is about twice as fast as on 0-d arrays, which
    is most of the per-op cost of scalar code (results are 0-d arrays again)."""
    if hasattr(x, "_level"):
        return x
    if type(x) is float:
        return np.float64(x)
    if isinstance(x, (int, np.integer, bool)) or not hasattr(x, "shape"):
        return np.asarray(x)
    return x


def check_chunk(chunk) -> None:
    """``chunk`` (directions per batched pass) must be None or a positive int."""
    if chunk is None:
        return
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (directions per pass) or None "
                         f"for the default, got {chunk!r}")


def check_tangent(primal, tangent, what: str = "tangent"):
    ps, ts = shape_of(primal), shape_of(tangent)
    if ps != ts:
        raise ValueError(f"{what} shape {ts} does not match its primal's shape {ps}")


def zeros_like(x, lead_shape: tuple = ()):
    v = peel(x)
    xp = namespace_of(v)
    dtype = getattr(v, "dtype", np.dtype(np.float64))
    if dtype.kind not in "fc":
        dtype = np.dtype(np.float64)
    return xp.zeros(tuple(lead_shape) + shape_of(x), dtype=dtype)


def materialize(value, like, lead_shape: tuple = ()):
    """``value`` unless it is the symbolic Zero, in which case real zeros."""
    if value is Zero:
        return zeros_like(like, lead_shape)
    return value


def check_float_args(args, positions, names=None) -> None:
    for p in positions:
        for leaf in tree_leaves(args[p]):
            check_differentiable(leaf, names[p] if names else f"argument {p}")


def _describe(leaf) -> str:
    v = peel(leaf)
    if v is None:
        return "None (a missing `return`?)"
    dtype = getattr(v, "dtype", None)
    if dtype is not None:
        return f"a {type(v).__name__} of dtype {dtype}"
    return f"a value of type {type(v).__name__} ({v!r:.40})"


def check_outputs(out) -> None:
    """Raise ``TypeError`` unless every leaf of the output pytree is floating.

    Every transform's output path calls this once: a forgotten ``return``
    (None), a string, a generator, a bool or an integer would otherwise come
    back as a silent zero derivative.

    >>> check_outputs((np.ones(2), 1.0))
    >>> check_outputs(None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    TypeError: the differentiated function returned None (a missing `return`?); it must ...
    """
    leaves, _ = tree_flatten(out)
    for leaf in leaves:
        if not is_float_value(leaf):
            what = _describe(leaf)
            if leaf is not out:
                what = f"a {type(out).__name__} containing {what}"
            raise TypeError(f"the differentiated function returned {what}; it must "
                            "return floating arrays (or a tuple/list/dict of them)")


def identity_rows(x, start: int, stop: int):
    """Rows ``start:stop`` of the identity over ``x``'s entries, shaped
    ``(stop - start,) + x.shape``, in ``x``'s float dtype and array namespace:
    the seeds of every batched Jacobian/Hessian pass."""
    from dualad.core.backend import result_float_dtype
    v = peel(x)
    xp = namespace_of(v)
    n = int(np.prod(shape_of(x), dtype=np.int64))
    seeds = xp.zeros((stop - start, n), dtype=result_float_dtype(v))
    seeds[xp.arange(stop - start), xp.arange(start, stop)] = 1
    return seeds.reshape((stop - start,) + tuple(shape_of(x)))
