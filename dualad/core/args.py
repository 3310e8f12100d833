"""Helpers shared by the functional transforms: argument checks, seeding,
and turning results back into plain arrays."""
from __future__ import annotations

import numpy as np

from dualad.core.backend import check_differentiable, namespace_of, peel
from dualad.core.registry import shape_of
from dualad.core.tree import tree_leaves
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


def batch_lead(primal_leaves, leaves, what: str, call: str) -> tuple:
    """``(k,)``: the common leading batch axis of batched tangents/cotangents,
    each shaped ``(k,) + primal.shape``; a ``ValueError`` naming both shapes
    otherwise.

    >>> batch_lead([np.zeros(2)], [np.zeros((5, 2))], "tangent", "jvp(..., batched=True)")
    (5,)
    """
    ks = set()
    for p, t in zip(primal_leaves, leaves):
        ps, ts = shape_of(p), shape_of(t)
        if len(ts) != len(ps) + 1 or ts[1:] != ps:
            raise ValueError(f"batched {what} shape {ts} must be (k,) + its primal's shape "
                             f"{ps} ({call})")
        ks.add(ts[0])
    if len(ks) > 1:
        raise ValueError(f"batched {what}s must share one batch size k, got {sorted(ks)}")
    return (ks.pop(),) if ks else (0,)
