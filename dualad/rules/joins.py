"""Joining and splitting: the ``concatenate`` primitive and the NumPy functions
composed from it and from getitem/reshape/broadcast_to (stack, hstack,
split, roll, repeat, tile, ...).

``concatenate`` is linear in *all* of its inputs, which may be constants or
tracers of different levels, so it declares its own jvp (concatenate the
tangents, zeros where an input has none) and vjp (slice the cotangent back
into pieces).

Example::

    >>> import numpy as np, dualad as da
    >>> da.grad(lambda x: (np.concatenate([x, 2.0 * x]) ** 2).sum())(np.array([1.0]))
    array([10.])
"""
from __future__ import annotations

import operator

import numpy as np

from dualad.core.backend import namespace_of, peel, result_float_dtype
from dualad.core.dispatch import implements
from dualad.core.levels import is_traced
from dualad.core.registry import defprimitive, ndim_of, shape_of
from dualad.core.zero import Zero
from dualad.rules.indexing import getitem, getitem_p, take


# ============================================================================
# the concatenate primitive
# ============================================================================
def _concatenate(*xs, axis):
    xp = namespace_of(*xs)
    return xp.concatenate([x if hasattr(x, "shape") else xp.asarray(x) for x in xs], axis=axis)


def _concat_jvp(primals, tangents, out, axis):
    live = [(p, t) for p, t in zip(primals, tangents, strict=True) if t is not Zero]
    if not live:
        return Zero
    # The batch shape of the tangents (an input's tangent may lack it when it
    # was built unbatched: broadcast it, as the elementwise rules would).
    lead_shape = max((shape_of(t)[:ndim_of(t) - ndim_of(p)] for p, t in live), key=len)
    lead = len(lead_shape)
    dtype = result_float_dtype(out)
    xp = namespace_of(out)
    parts = []
    for p, t in zip(primals, tangents, strict=True):
        full = lead_shape + shape_of(p)
        if t is Zero:
            parts.append(xp.zeros(full, dtype=dtype))
        else:
            parts.append(t if shape_of(t) == full else np.broadcast_to(t, full))
    return concatenate_p(*parts, axis=axis + lead)


def _concat_vjp(ct, primals, out, needs, axis):
    lead = ndim_of(ct) - ndim_of(out)
    core = shape_of(out)
    cts, start = [], 0
    for p, need in zip(primals, needs, strict=True):
        n = shape_of(p)[axis]
        if need:
            key = tuple(slice(start, start + n, 1) if i == axis else slice(0, s, 1)
                        for i, s in enumerate(core))
            cts.append(getitem_p(ct, key=key, lead=lead))
        else:
            cts.append(Zero)
        start += n
    return tuple(cts)


concatenate_p = defprimitive("concatenate", _concatenate, jvp=_concat_jvp, vjp=_concat_vjp)


# ============================================================================
# helpers
# ============================================================================
def _constants(arrays) -> list:
    """Python scalars take the traced inputs' float dtype (float32 stays
    float32); other constants become arrays as NumPy would make them."""
    traced = [a for a in arrays if is_traced(a)]
    dtype = np.result_type(*[result_float_dtype(a) for a in traced]) if traced else None
    xp = namespace_of(*arrays)
    out = []
    for a in arrays:
        if is_traced(a) or hasattr(a, "shape") and hasattr(a, "dtype"):
            out.append(a)
        elif isinstance(a, (float, int)) and dtype is not None:
            out.append(xp.asarray(a, dtype=dtype))
        else:
            out.append(xp.asarray(a))
    return out


def _axis(axis, nd: int) -> int:
    axis = operator.index(axis)
    if not -nd <= axis < max(nd, 1):
        raise np.exceptions.AxisError(axis, nd)
    return axis % max(nd, 1)


def _reshape(x, shape):
    return np.reshape(x, tuple(shape))


# ============================================================================
# concatenate, stack and friends
# ============================================================================
@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """np.concatenate; ``axis=None`` flattens the inputs first."""
    if out is not None:
        raise TypeError("np.concatenate(..., out=...) into a traced array is not "
                        "differentiable; use the returned array instead")
    arrays = _constants(list(arrays))
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    if axis is None:
        arrays, axis = [np.ravel(a) for a in arrays], 0
    nd = ndim_of(arrays[0])
    if nd == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    axis = _axis(axis, nd)
    if len(arrays) == 1:
        res = arrays[0]
    else:
        res = concatenate_p(*arrays, axis=axis)
    if dtype is not None and np.dtype(dtype) != np.dtype(result_float_dtype(res)):
        res = res.astype(dtype)
    return res


@implements(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = _constants(list(arrays))
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError("all input arrays must have the same shape")
    axis = _axis(axis, ndim_of(arrays[0]) + 1)
    return concatenate([np.expand_dims(a, axis) for a in arrays], axis=axis, dtype=dtype)


def _atleast(a, nd: int):
    shape = shape_of(a)
    if len(shape) >= nd:
        return a
    if nd == 3 and len(shape) == 1:          # (N,) -> (1, N, 1), as NumPy
        return _reshape(a, (1,) + shape + (1,))
    if nd == 3 and len(shape) == 2:          # (M, N) -> (M, N, 1)
        return _reshape(a, shape + (1,))
    return _reshape(a, (1,) * (nd - len(shape)) + shape)


def _atleast_all(arys, nd):
    res = [_atleast(a, nd) for a in _constants(list(arys))]
    return res[0] if len(res) == 1 else tuple(res)


@implements(np.atleast_1d)
def atleast_1d(*arys):
    return _atleast_all(arys, 1)


@implements(np.atleast_2d)
def atleast_2d(*arys):
    return _atleast_all(arys, 2)


@implements(np.atleast_3d)
def atleast_3d(*arys):
    return _atleast_all(arys, 3)


@implements(np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    arrs = [_atleast(a, 1) for a in _constants(list(tup))]
    return concatenate(arrs, axis=0 if arrs and ndim_of(arrs[0]) == 1 else 1, dtype=dtype)


@implements(np.vstack)
def vstack(tup, *, dtype=None, casting="same_kind"):
    return concatenate([_atleast(a, 2) for a in _constants(list(tup))], axis=0, dtype=dtype)


@implements(np.dstack)
def dstack(tup):
    return concatenate([_atleast(a, 3) for a in _constants(list(tup))], axis=2)


@implements(np.column_stack)
def column_stack(tup):
    cols = []
    for a in _constants(list(tup)):
        shape = shape_of(a)
        # 0-d and 1-d inputs become columns: (N,) -> (N, 1).
        cols.append(_reshape(a, (max(1, int(np.prod(shape))), 1)) if len(shape) < 2 else a)
    return concatenate(cols, axis=1)


@implements(np.append)
def append(arr, values, axis=None):
    arr, values = _constants([arr, values])
    if axis is None:
        return concatenate([np.ravel(arr), np.ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


# ============================================================================
# split family: one slice per piece
# ============================================================================
def _split_bounds(n: int, sections, even: bool) -> list:
    if isinstance(sections, (int, np.integer)):
        k = int(sections)
        if k <= 0:
            raise ValueError("number sections must be larger than 0.")
        if even and n % k:
            raise ValueError("array split does not result in an equal division")
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        bounds = [0]
        for s in sizes:
            bounds.append(bounds[-1] + s)
        return list(zip(bounds[:-1], bounds[1:], strict=True))
    cuts = [int(c) for c in np.asarray(peel(sections)).ravel()]
    # Plain slices, so negative or out-of-range cuts clamp as in NumPy.
    return list(zip([0] + cuts, cuts + [None], strict=True))


def _split(ary, sections, axis, even):
    nd = ndim_of(ary)
    axis = _axis(axis, nd)
    pairs = _split_bounds(shape_of(ary)[axis], sections, even)
    return [getitem(ary, (slice(None),) * axis + (slice(lo, hi),)) for lo, hi in pairs]


@implements(np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    """A list of sub-arrays; the reverse pass scatters each piece back."""
    return _split(ary, indices_or_sections, axis, even=False)


@implements(np.split)
def split(ary, indices_or_sections, axis=0):
    return _split(ary, indices_or_sections, axis, even=True)


@implements(np.hsplit)
def hsplit(ary, indices_or_sections):
    if ndim_of(ary) == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, 1 if ndim_of(ary) > 1 else 0)


@implements(np.vsplit)
def vsplit(ary, indices_or_sections):
    if ndim_of(ary) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, 0)


@implements(np.dsplit)
def dsplit(ary, indices_or_sections):
    if ndim_of(ary) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(ary, indices_or_sections, 2)


# ============================================================================
# roll, repeat, tile
# ============================================================================
@implements(np.roll)
def roll(a, shift, axis=None):
    """Two slices joined per rolled axis: both transposes stay basic (fast)."""
    if axis is None:
        return _reshape(roll(np.ravel(a), shift, 0), shape_of(a))
    nd = ndim_of(a)
    shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
    total: dict = {}
    for s, ax in zip(shifts.ravel(), axes.ravel(), strict=True):
        ax = _axis(int(ax), nd)
        total[ax] = total.get(ax, 0) + int(s)
    shape = shape_of(a)
    for ax, s in total.items():
        n = shape[ax]
        s = s % n if n else 0
        if s == 0:
            continue
        head = getitem(a, (slice(None),) * ax + (slice(n - s, n),))
        tail = getitem(a, (slice(None),) * ax + (slice(0, n - s),))
        a = concatenate_p(head, tail, axis=ax)
    return a


@implements(np.repeat)
def repeat(a, repeats, axis=None):
    """A scalar count is broadcast + reshape (transpose: a sum); per-element
    counts are a gather."""
    if axis is None:
        a, axis = np.ravel(a), 0
    nd = ndim_of(a)
    axis = _axis(axis, nd)
    shape = shape_of(a)
    reps = np.asarray(peel(repeats))
    if reps.size == 1:
        r = int(reps.ravel()[0])
        if r < 0:
            raise ValueError("repeats may not contain negative values.")
        grown = np.broadcast_to(np.expand_dims(a, axis + 1),
                                shape[:axis + 1] + (r,) + shape[axis + 1:])
        return _reshape(grown, shape[:axis] + (shape[axis] * r,) + shape[axis + 1:])
    idx = np.repeat(np.arange(shape[axis]), reps)
    return take(a, idx, axis=axis)


@implements(np.tile)
def tile(A, reps):
    """Interleave unit axes, broadcast them to the repeat counts, merge."""
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    shape = shape_of(A)
    reps = (1,) * (len(shape) - len(reps)) + reps
    shape = (1,) * (len(reps) - len(shape)) + shape
    if all(r == 1 for r in reps):
        return _reshape(A, shape)
    inter = tuple(d for s in shape for d in (1, s))
    grown = tuple(d for r, s in zip(reps, shape, strict=True) for d in (r, s))
    out = np.broadcast_to(_reshape(A, inter), grown)
    return _reshape(out, tuple(r * s for r, s in zip(reps, shape, strict=True)))


@implements(np.diff)
def diff(a, n=1, axis=-1, prepend=None, append=None):
    """n-th forward difference: repeated ``a[1:] - a[:-1]`` along ``axis``."""
    if prepend is not None or append is not None:
        parts = [p for p in (prepend, a, append) if p is not None]
        parts = [np.broadcast_to(p, _diff_pad_shape(a, p, axis)) for p in parts]
        a = np.concatenate(parts, axis=axis)
    nd = ndim_of(a)
    axis = axis % nd
    for _ in range(n):
        hi = tuple(slice(1, None) if i == axis else slice(None) for i in range(nd))
        lo = tuple(slice(None, -1) if i == axis else slice(None) for i in range(nd))
        a = a[hi] - a[lo]
    return a


def _diff_pad_shape(a, pad, axis):
    """np.diff broadcasts a scalar prepend/append to one slice along ``axis``."""
    shape = list(shape_of(a))
    if ndim_of(pad) == len(shape):
        return shape_of(pad)
    shape[axis % len(shape)] = 1
    return tuple(shape)
