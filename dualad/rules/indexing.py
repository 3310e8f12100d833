"""Indexing primitives: ``getitem`` and its transpose ``scatter_add``, and the
NumPy functions built on them (take, take_along_axis, flip, diagonal, diag,
triu/tril, ...).

Both primitives are linear, each the transpose of the other, so derivatives of
any order come out of two rules. Keys are normalised at dispatch into a
*canonical key*: a tuple with one entry per consumed input axis (plus ``None``
for new axes), where every entry is

* a non-negative ``int``,
* a ``slice(start, stop, step)`` with explicit ints (``stop`` None only for a
  negative step that runs to the front),
* ``None`` (a new axis), or
* an integer index array (boolean masks become their ``nonzero()`` arrays).

No Ellipsis, no booleans, no lists, no tracers: the primitives can then add
``lead`` batch axes by prepending full slices.

Example::

    >>> import numpy as np, dualad as da
    >>> da.grad(lambda x: (x[::-1][[0, 0]] ** 2).sum())(np.array([1.0, 2.0]))
    array([0., 8.])
"""
from __future__ import annotations

import math
import operator

import numpy as np

from dualad.core.backend import namespace_of, peel, peel_keep_batch
from dualad.core.dispatch import FUNCTIONS, implements
from dualad.core.registry import defprimitive, ndim_of, shape_of


# ============================================================================
# canonical keys
# ============================================================================
def _is_array(k) -> bool:
    return k is not None and not isinstance(k, (int, slice))


def _as_index(v):
    return None if v is None else operator.index(peel(v))


def _canon_slice(s: slice, n: int) -> slice:
    start, stop, step = slice(_as_index(s.start), _as_index(s.stop),
                              _as_index(s.step)).indices(n)
    if len(range(start, stop, step)) == 0:
        # Why: an empty negative-step range can come back as start=-1, which
        # NumPy would read as "the last element".
        return slice(0, 0, 1)
    return slice(start, None if stop < 0 else stop, step)


def _entry(k):
    """One user key entry as int, slice, None, Ellipsis or an index array
    (a vmap-batched index array stays batched: see :func:`batch_level_of_key`)."""
    k = peel_keep_batch(k)
    if k is None or k is Ellipsis or isinstance(k, slice):
        return k
    if isinstance(k, (bool, np.bool_)):
        raise TypeError("a scalar boolean index on a traced array is not supported; "
                        "use np.where or a boolean array mask instead")
    if isinstance(k, (int, np.integer)):
        return int(k)
    arr = k if hasattr(k, "dtype") and hasattr(k, "ndim") else np.asarray(k)
    if arr.dtype.kind == "b":
        if arr.ndim == 0:
            raise TypeError("a scalar boolean index on a traced array is not supported")
        return arr
    if arr.dtype.kind in "iu":
        return int(arr) if arr.ndim == 0 and not hasattr(arr, "_level") else arr
    if arr.size == 0:                      # x[[]] : an empty list reads as float64
        return arr.astype(np.intp)
    raise IndexError("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis "
                     "(`None`) and integer or boolean arrays are valid indices")


def canonical_key(key, shape: tuple, xp=np) -> tuple:
    """Normalise a NumPy index ``key`` against an array of ``shape`` (index
    arrays end up in the array namespace ``xp``).

    >>> canonical_key((Ellipsis, -1), (2, 3))
    (slice(0, 2, 1), 2)
    """
    shape = tuple(shape)
    nd = len(shape)
    entries = [_entry(k) for k in (key if isinstance(key, tuple) else (key,))]
    n_ell = sum(1 for k in entries if k is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(k.ndim if _is_array(k) and k.dtype.kind == "b" else 1
               for k in entries if k is not None and k is not Ellipsis)
    if used > nd:
        raise IndexError(f"too many indices for array: array is {nd}-dimensional, "
                         f"but {used} were indexed")
    fill = [slice(None)] * (nd - used)
    if n_ell:
        i = next(i for i, k in enumerate(entries) if k is Ellipsis)
        entries[i:i + 1] = fill
    else:
        entries += fill
    out, dim = [], 0
    for k in entries:
        if k is None:
            out.append(None)
        elif isinstance(k, slice):
            out.append(_canon_slice(k, shape[dim]))
            dim += 1
        elif isinstance(k, int):
            n = shape[dim]
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for axis {dim} with size {n}")
            out.append(k % n)
            dim += 1
        elif k.dtype.kind == "b":
            covered = shape[dim:dim + k.ndim]
            if tuple(k.shape) != covered:
                raise IndexError(f"boolean index of shape {tuple(k.shape)} does not match "
                                 f"the indexed array's axes {covered} (from axis {dim})")
            # Why: a mask is exactly its nonzero() index arrays, and integer
            # indices are what scatter_add can transpose.
            out.extend(xp.nonzero(k if xp is np else xp.asarray(k)))
            dim += k.ndim
        else:
            out.append(k if xp is np else xp.asarray(k))
            dim += 1
    return tuple(out)


def key_info(key: tuple) -> tuple:
    """``(basic, front, nb)``: the key has no index arrays; its advanced
    indices are separated (NumPy then puts their broadcast axes first); the
    number of those broadcast axes."""
    arrays = [k for k in key if _is_array(k)]
    if not arrays:
        return True, False, 0
    # Ints count as advanced indices once any index array is present.
    adv = [i for i, k in enumerate(key) if isinstance(k, int) or _is_array(k)]
    front = adv[-1] - adv[0] + 1 != len(adv)
    nb = len(np.broadcast_shapes(*(tuple(a.shape) for a in arrays)))
    return False, front, nb


def _core_ndim(key: tuple) -> int:
    return sum(1 for k in key if k is not None)


def _is_identity(key: tuple, shape: tuple) -> bool:
    return len(key) == len(shape) and all(
        isinstance(k, slice) and k.start == 0 and k.stop == n and k.step == 1
        for k, n in zip(key, shape, strict=True))


# ============================================================================
# getitem and scatter_add: linear, each the other's transpose
# ============================================================================
def _any_batched(key: tuple) -> bool:
    """Whether a vmap's tracer is among the key's entries: the cheap first
    test on every indexing (almost every key holds none)."""
    for k in key:
        if getattr(k, "_batched", False):
            return True
    return False


def _per_example_key(prim, x, key, **params):
    """An untraced value indexed with a key batched by a vmap (a cotangent
    that does not depend on the batch, transposed through a batched gather):
    the value is broadcast over that vmap's batch, whose batching rule then
    runs the primitive. ``None`` if no such key."""
    top = batch_level_of_key(key)
    if top is None:
        return None
    return prim(top.broadcast(x), key=key, **params)


def _whole(keys: tuple, shape: tuple) -> bool:
    """Whether every key is a slice taking its whole axis (``:``, ``0:n:1``)."""
    return all(type(k) is slice and k.indices(n) == (0, n, 1) for k, n in zip(keys, shape))


def _getitem(x, key, lead=0):
    if _any_batched(key):
        return _per_example_key(getitem_p, x, key, lead=lead)
    xp = namespace_of(x)
    if not hasattr(x, "shape"):
        x = xp.asarray(x)
    if not lead:
        if type(key) is tuple and key and type(key[0]) is np.ndarray \
                and type(x) is np.ndarray and key[0].ndim and key[0].dtype.kind in "iu" \
                and len(key) <= x.ndim and _whole(key[1:], x.shape[1:]):
            # rows by one integer array (r[i] of a pair model): np.take is the
            # same copy, 4-5x faster than NumPy's general fancy indexing
            return np.take(x, key[0], axis=0)
        return x[key]
    out = x[(slice(None),) * lead + key]
    _, front, nb = key_info(key)
    if front:
        # NumPy put the index broadcast axes in front of the batch axes.
        out = xp.moveaxis(out, tuple(range(nb, nb + lead)), tuple(range(lead)))
    return out


def _add_at(xp, z, key, v):
    if xp is np:
        np.add.at(z, key, v)
        return
    at = getattr(xp.add, "at", None)
    if at is not None:
        at(z, key, v)
    else:                                    # older CuPy
        import cupyx
        cupyx.scatter_add(z, key, v)


def _scatter_add(ct, key, in_shape, lead=0):
    if _any_batched(key):
        return _per_example_key(scatter_add_p, ct, key, in_shape=in_shape, lead=lead)
    xp = namespace_of(ct)
    if not hasattr(ct, "shape"):
        ct = xp.asarray(ct)
    z = xp.zeros(tuple(ct.shape[:lead]) + tuple(in_shape), dtype=ct.dtype)
    full = (slice(None),) * lead + key
    basic, front, nb = key_info(key)
    if basic:
        # Basic keys pick each element at most once: plain assignment is enough.
        z[full] = ct
        return z
    if not lead and xp is np:
        rows = _row_gather(key, in_shape, ct)
        if rows is not None:
            return _bincount_rows(rows, ct, in_shape)
    if lead and front:
        ct = xp.moveaxis(ct, tuple(range(lead)), tuple(range(nb, nb + lead)))
    # Fancy keys may repeat an element: the cotangents must accumulate.
    _add_at(xp, z, full, ct)
    return z


def _row_gather(key, in_shape, ct):
    """The row index of a key ``(rows,)`` or ``(rows, :, ...)`` (whole rows of
    a float64 array picked by one 1-D integer array), else None."""
    if not key or type(key[0]) is not np.ndarray or key[0].ndim != 1 \
            or key[0].dtype.kind not in "iu" or ct.dtype != np.float64 or not key[0].size:
        return None        # (bincount of no weights returns int64)
    if not _whole(key[1:], in_shape[1:]) or len(key) > len(in_shape) \
            or ct.shape[:1] != key[0].shape:
        return None
    return key[0]


# A compiled row scatter ``(rows, ct2d, n) -> (n, m) array or None`` that
# kernels/ installs (the rules never import kernels/): same bits, 5-10x faster.
_row_scatter: list = [None]


def install_row_scatter(fn) -> None:
    _row_scatter[0] = fn


def _bincount_rows(rows, ct, in_shape):
    """``np.add.at(zeros(in_shape), rows, ct)`` by the compiled scatter or by
    ``bincount`` one column at a time (same sums in the same order, so the
    same bits; add.at is 4-20x slower): the pair scatter of every
    gathered-pair model (Lennard-Jones)."""
    n = in_shape[0]
    m = math.prod(in_shape[1:])
    fast = _row_scatter[0]
    if fast is not None:
        out = fast(rows, ct.reshape(rows.size, m), n)
        if out is not None:
            return out.reshape(in_shape)
    if rows.size and rows.min() < 0:
        rows = np.where(rows < 0, rows + n, rows)
    if m == 1:
        return np.bincount(rows, weights=ct.reshape(-1), minlength=n).reshape(in_shape)
    cols = ct.reshape(rows.size, m)
    out = np.empty((n, m))
    for j in range(m):
        out[:, j] = np.bincount(rows, weights=cols[:, j], minlength=n)
    return out.reshape(in_shape)


def _getitem_T(ct, primals, lead, key):
    # The input's core shape is its last _core_ndim(key) axes, whatever batch
    # axes the primal itself carries.
    nd = _core_ndim(key)
    shape = shape_of(primals[0])
    return scatter_add_p(ct, key=key, in_shape=shape[len(shape) - nd:], lead=lead)


getitem_p = defprimitive("getitem", _getitem, transpose=_getitem_T)
scatter_add_p = defprimitive("scatter_add", _scatter_add,
                             transpose=lambda ct, primals, lead, key, in_shape: getitem_p(
                                 ct, key=key, lead=lead))


def batch_level_of_key(key: tuple):
    """The highest vmap level among a canonical key's entries, or None."""
    top = None
    for k in key:
        if getattr(k, "_batched", False) and (top is None or k._level.order > top.order):
            top = k._level
    return top


def _levels_of(x) -> list:
    out = []
    while hasattr(x, "_level"):
        out.append(x._level)
        x = x.primal
    return out


def _batched_key_call(fn, x, key: tuple):
    """``fn(x, key)`` for a key batched by a vmap that ``x`` is not mapped
    over: ``x`` is broadcast over that vmap's batch first. ``None`` when the
    primitive's batching rule will see the batched key itself."""
    top = batch_level_of_key(key)
    if top is None:
        return None
    levels = _levels_of(x)
    if top in levels:
        return None
    if levels and levels[0].order > top.order:
        raise NotImplementedError(
            "indexing a value differentiated inside a vmap with an index batched by that "
            "vmap is not supported; compute the index inside the transform, or index "
            "with np.take_along_axis on a batched value")
    return fn(top.broadcast(x), key)


def getitem(x, key):
    """``x[key]`` on a traced (or plain) array, with any NumPy key."""
    shape = shape_of(x)
    key = canonical_key(key, shape, namespace_of(x))
    if _is_identity(key, shape):
        return x
    if _any_batched(key):
        looped = _batched_key_call(getitem, x, key)
        if looped is not None:
            return looped
    return getitem_p(x, key=key)


def scatter_add(values, key, shape: tuple):
    """Zeros of ``shape`` with ``values`` added at ``key`` (repeats accumulate)."""
    key = canonical_key(key, shape, namespace_of(values))
    if _any_batched(key):
        looped = _batched_key_call(lambda v, k: scatter_add(v, k, shape), values, key)
        if looped is not None:
            return looped
    return scatter_add_p(values, key=key, in_shape=tuple(shape))


FUNCTIONS["getitem"] = getitem


def _full(nd: int, axis: int, entry) -> tuple:
    return (slice(None),) * axis + (entry,) + (slice(None),) * (nd - axis - 1)


def _int_array(v):
    arr = peel_keep_batch(v)
    arr = arr if hasattr(arr, "dtype") else np.asarray(arr)
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return arr.astype(np.intp)
        raise IndexError("index arrays must be of integer type")
    return arr


def _axis(axis, nd: int) -> int:
    axis = operator.index(axis)
    if not -nd <= axis < max(nd, 1):
        raise np.exceptions.AxisError(axis, nd)
    return axis % max(nd, 1)


# ============================================================================
# take, take_along_axis, compress, extract, delete
# ============================================================================
@implements(np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    """np.take as fancy indexing along ``axis`` (flattened when None)."""
    if axis is None:
        a, axis = np.ravel(a), 0
    axis = _axis(axis, ndim_of(a))
    idx = _int_array(indices)
    n = shape_of(a)[axis]
    if mode == "wrap":
        idx = idx % n
    elif mode == "clip":
        idx = namespace_of(idx).clip(idx, 0, n - 1)
    return getitem(a, _full(ndim_of(a), axis, idx))


@implements(np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    """Every other axis gets an ``arange`` grid, so all indices broadcast together."""
    idx = _int_array(indices)
    if axis is None:
        arr, axis = np.ravel(arr), 0
    nd = ndim_of(arr)
    axis = _axis(axis, nd)
    if idx.ndim != nd:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    xp = namespace_of(idx)
    key = []
    for i, n in enumerate(shape_of(arr)):
        if i == axis:
            key.append(idx)
        else:
            key.append(xp.arange(n).reshape((1,) * i + (n,) + (1,) * (nd - i - 1)))
    return getitem(arr, tuple(key))


@implements(np.sort)
def sort(a, axis=-1, kind=None, order=None, stable=None):
    """Sorting is a gather by the primal's argsort (ties: any order, the
    derivative is the same). ``axis=None`` sorts the flattened array."""
    if axis is None:
        a, axis = np.ravel(a), 0
    av = peel_keep_batch(a)
    order_idx = np.argsort(av, axis=axis, kind=kind or "stable")
    return take_along_axis(a, order_idx, axis=axis)


@implements(np.compress)
def compress(condition, a, axis=None, out=None):
    cond = np.asarray(peel(condition), dtype=bool).ravel()
    return take(a, np.nonzero(cond)[0], axis=axis)


@implements(np.extract)
def extract(condition, arr):
    cond = np.asarray(peel(condition), dtype=bool).ravel()
    return take(np.ravel(arr), np.nonzero(cond)[0])


@implements(np.delete)
def delete(arr, obj, axis=None):
    if axis is None:
        arr, axis = np.ravel(arr), 0
    axis = _axis(axis, ndim_of(arr))
    keep = np.delete(np.arange(shape_of(arr)[axis]), peel(obj))
    return take(arr, keep, axis=axis)


# ============================================================================
# flips and rotations: negative-step slices
# ============================================================================
@implements(np.flip)
def flip(m, axis=None):
    nd = ndim_of(m)
    if axis is None:
        axes = range(nd)
    else:
        axes = [_axis(a, nd) for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis)]
    return getitem(m, tuple(slice(None, None, -1) if i in axes else slice(None)
                            for i in range(nd)))


@implements(np.fliplr)
def fliplr(m):
    if ndim_of(m) < 2:
        raise ValueError("Input must be >= 2-d.")
    return flip(m, 1)


@implements(np.flipud)
def flipud(m):
    if ndim_of(m) < 1:
        raise ValueError("Input must be >= 1-d.")
    return flip(m, 0)


@implements(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    """NumPy's own recipe: flips and one transpose."""
    nd = ndim_of(m)
    a0, a1 = (_axis(a, nd) for a in axes)
    if a0 == a1:
        raise ValueError("Axes must be different.")
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return np.transpose(flip(m, a1), perm)
    return flip(np.transpose(m, perm), a1)


# ============================================================================
# diagonals and triangles
# ============================================================================
def _diag_index(n1: int, n2: int, offset: int, xp=np):
    r0, c0 = max(-offset, 0), max(offset, 0)
    length = max(0, min(n1 - r0, n2 - c0))
    return xp.arange(length) + r0, xp.arange(length) + c0


@implements(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    """Move the two axes last, then one fancy index (diagonal last, as NumPy)."""
    nd = ndim_of(a)
    if nd < 2:
        raise ValueError("diag requires an array of at least two dimensions")
    a1, a2 = _axis(axis1, nd), _axis(axis2, nd)
    if a1 == a2:
        raise ValueError("axis1 and axis2 cannot be the same")
    perm = [i for i in range(nd) if i not in (a1, a2)] + [a1, a2]
    shape = shape_of(a)
    rows, cols = _diag_index(shape[a1], shape[a2], int(offset))
    return getitem(np.transpose(a, perm), (Ellipsis, rows, cols))


@implements(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return np.sum(diagonal(a, offset, axis1, axis2), axis=-1)


@implements(np.diag)
def diag(v, k=0):
    """1-D: a scatter into an (n, n) zero matrix; 2-D: the k-th diagonal."""
    nd = ndim_of(v)
    if nd == 2:
        return diagonal(v, k)
    if nd != 1:
        raise ValueError("Input must be 1- or 2-d.")
    m = shape_of(v)[0]
    n = m + abs(int(k))
    rows, cols = _diag_index(n, n, int(k), namespace_of(v))
    return scatter_add_p(v, key=(rows, cols), in_shape=(n, n))


@implements(np.diagflat)
def diagflat(v, k=0):
    return diag(np.ravel(v), k)


def _tri_mask(m, k):
    shape = shape_of(m)
    rows, cols = (shape[-2], shape[-1]) if len(shape) >= 2 else (shape[-1], shape[-1])
    return np.tri(rows, cols, k=int(k), dtype=bool)


@implements(np.triu)
def triu(m, k=0):
    # where keeps the dtype (a Python 0.0 never upcasts float32).
    return np.where(_tri_mask(m, int(k) - 1), 0.0, m)


@implements(np.tril)
def tril(m, k=0):
    return np.where(_tri_mask(m, k), m, 0.0)
