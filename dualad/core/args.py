"""Helpers shared by the functional transforms: argument checks, seeding,
and turning results back into plain arrays."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.backend import check_differentiable, namespace_of, result_float_dtype
from dualad.core.levels import is_traced
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
    if is_traced(x):
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
    xp = namespace_of(x)
    return xp.zeros(tuple(lead_shape) + shape_of(x), dtype=result_float_dtype(x))


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
    xp = namespace_of(x)
    n = size_of(x)
    seeds = xp.zeros((stop - start, n), dtype=result_float_dtype(x))
    seeds[xp.arange(stop - start), xp.arange(start, stop)] = 1
    return seeds.reshape((stop - start,) + tuple(shape_of(x)))


def size_of(x) -> int:
    """The number of entries of ``x`` (1 for a scalar), without reading it.

    >>> size_of(np.ones((2, 3))), size_of(2.0)
    (6, 1)
    """
    return int(np.prod(shape_of(x), dtype=np.int64))


def at_positions(fn: Callable, args: tuple, positions: tuple) -> Callable:
    """``fn`` as a function of the arguments at ``positions`` only: calling
    the result with ``xs`` calls ``fn(*args)`` with ``args[p]`` replaced by
    ``xs[k]`` for the ``k``-th position ``p``.

    >>> at_positions(lambda a, b, c: (a, b, c), (1, 2, 3), (0, 2))(10, 30)
    (10, 2, 30)
    """
    if len(positions) == 1:             # the common case, without a list copy
        p = positions[0]
        head, tail = args[:p], args[p + 1:]
        return lambda x: fn(*head, x, *tail)

    def inner(*xs):
        call = list(args)
        for p, x in zip(positions, xs):
            call[p] = x
        return fn(*call)
    return inner


def as_result(x):
    """A result leaf as a transform hands it back: Python and NumPy scalars
    become 0-d arrays; read-only or non-contiguous arrays (broadcast views of
    a derivative) become contiguous copies the caller owns; tracers (a
    transform inside another) and other objects pass through unchanged.

    >>> as_result(2.0), as_result(np.broadcast_to(1.0, (2,))).flags.writeable
    (array(2.), True)
    """
    level = getattr(x, "_level", None)
    if level is not None:
        # A recorder at the bottom (da.jit) records the conversion so that a
        # replay returns what an eager call does; other tracers pass through.
        stage = getattr(level, "stage_call", None)
        return x if stage is None else stage(as_result, x)
    if isinstance(x, (float, int, np.generic)):
        return np.asarray(x)
    flags = getattr(x, "flags", None)
    if flags is not None and not (flags.c_contiguous and getattr(flags, "writeable", True)):
        # (not ascontiguousarray: it turns a 0-d array into shape (1,))
        return x.copy()
    return x


def scalar_checked(fn: Callable, what: str) -> Callable:
    """``fn``, raising ``ValueError`` (with the shape) unless it returns one
    number: a gradient would otherwise silently sum a vector output.

    >>> scalar_checked(lambda x: x, "hessian")(np.ones(2))
    Traceback (most recent call last):
    ...
    ValueError: hessian needs a scalar function; fn returned an output of shape (2,)
    """
    def scalar_fn(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, (tuple, list, dict)):
            raise ValueError(f"{what} needs a scalar function; fn returned a "
                             f"{type(out).__name__}")
        shape = shape_of(out)
        if size_of(out) != 1:
            raise ValueError(f"{what} needs a scalar function; fn returned an output of "
                             f"shape {shape}")
        return out
    return scalar_fn
