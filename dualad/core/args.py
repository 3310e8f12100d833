"""Helpers shared by the functional transforms: argument checks, seeding,
and turning results back into plain arrays."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.backend import (
    check_differentiable,
    is_float_value,
    namespace_of,
    peel,
    result_float_dtype,
)
from dualad.core.levels import is_traced
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
    if is_traced(x):
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
        check_outputs(out)
        if isinstance(out, (tuple, list, dict)):
            raise ValueError(f"{what} needs a scalar function; fn returned a "
                             f"{type(out).__name__}")
        shape = shape_of(out)
        if size_of(out) != 1:
            raise ValueError(f"{what} needs a scalar function; fn returned an output of "
                             f"shape {shape}")
        return out
    return scalar_fn
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


def _is_complex_leaf(x) -> bool:
    # From the dtype only (a traced value's dtype is no read of its value).
    dtype = getattr(x, "dtype", None)
    return dtype.kind == "c" if dtype is not None else isinstance(x, complex)


def check_complex(what: str, holomorphic: bool, inputs=(), outputs=(),
                  real_inputs: bool = False) -> None:
    """JAX's rules for complex values in ``grad``/``jacrev``/``jacfwd``:
    a complex output needs ``holomorphic=True`` (``jacfwd``: a complex input
    too, ``real_inputs``), and ``holomorphic=True`` needs complex inputs."""
    if holomorphic:
        for x in tree_leaves(inputs):
            if not _is_complex_leaf(x):
                raise TypeError(f"{what}(holomorphic=True) requires complex inputs, got "
                                f"{getattr(x, 'dtype', type(x).__name__)}")
        return
    which = "inputs" if real_inputs else "outputs"
    for x in tree_leaves(inputs if real_inputs else outputs):
        if _is_complex_leaf(x):
            raise TypeError(
                f"{what} requires real-valued {which}, got {x.dtype}. For a holomorphic "
                f"function pass holomorphic=True; otherwise differentiate np.real/np.imag "
                f"(or np.abs) of the result.")


def real_part_for(ct, primal):
    """The cotangent of a real primal is real: a complex cotangent reaching a
    real input keeps its real part (the part that pairs with real tangents)."""
    if _is_complex_leaf(ct) and not _is_complex_leaf(primal):
        return np.real(ct)
    return ct
