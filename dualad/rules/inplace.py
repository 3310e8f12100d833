"""In-place updates of traced arrays, done functionally.

``x[key] = v``, ``x[key] += v``, ``np.add.at(x, idx, v)`` (and the other
``ufunc.at``) compute the updated array from existing primitives (``where``,
``getitem`` and its transpose ``scatter_add``) and then make the tracer object
``x`` hold it (:func:`dualad.core.dispatch.become`). The arrays and graph
nodes earlier operations saved are never written to, so every mode and every
nesting differentiates the update like any other function.

Cost model (copy-on-write): each update builds a new array of ``x``'s full
size, so a loop of N scalar writes into an N-vector costs O(N^2) work and, in
reverse mode, N recorded full-size nodes. Write vectorised updates
(``x[idx] = v``, ``np.add.at(x, idx, v)``) where you can.

Buffers for such updates come from a traced value: ``np.zeros_like(x)``,
``ones_like``, ``empty_like`` (zeros), ``full_like`` and ``np.zeros(n, like=x)``
return traced arrays with a zero derivative.

Example::

    >>> import numpy as np, dualad as da
    >>> def energy(x):
    ...     e = np.zeros_like(x)
    ...     for i in range(len(x)):
    ...         e[i] += x[i] ** 2
    ...     np.add.at(e, [0, 0], x[1])
    ...     return e.sum()
    >>> da.grad(energy)(np.array([1.0, 2.0]))
    array([2., 6.])
"""
from __future__ import annotations

import numpy as np

from dualad.core.backend import peel
from dualad.core.dispatch import (
    FUNCTIONS,
    LIKE,
    REDUCERS,
    Tracer,
    become,
    clone,
    implements,
    traced_zero,
)
from dualad.core.registry import shape_of
from dualad.rules.indexing import scatter_add


def _peel_key(key):
    if isinstance(key, tuple):
        return tuple(_peel_key(k) for k in key)
    if isinstance(key, list):
        return [_peel_key(k) for k in key]
    return peel(key)


def _dest(shape: tuple, key) -> np.ndarray:
    """The flat positions ``key`` selects in an array of ``shape``, in the
    shape of ``a[key]`` (NumPy's own indexing decides, so every key works)."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.asarray(np.arange(n, dtype=np.intp).reshape(shape)[_peel_key(key)])


def _set_flat(flat, dest: np.ndarray, values, n: int):
    """``flat`` (1-d) with ``values`` (1-d, one per entry of ``dest``) written
    at ``dest``; a repeated destination keeps its last value, as in NumPy."""
    pos = np.full(n, -1, dtype=np.intp)
    pos[dest] = np.arange(dest.size, dtype=np.intp)
    mask = pos >= 0
    return np.where(mask, values[np.where(mask, pos, 0)], flat)


def _basic(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice))
               for k in keys)


def setitem(x, key, value):
    """``x`` with ``x[key] = value`` applied (a new traced array)."""
    shape = shape_of(x)
    if _basic(key):
        # Ints and slices select each element once: a mask and a scatter of
        # ``value`` into zeros (two primitives; the common E[i] += e style).
        mask = np.zeros(shape, dtype=bool)
        mask[key] = True
        if not mask.any():
            return x
        sub = mask[key].shape
        return np.where(mask, scatter_add(np.broadcast_to(value, sub), key, shape), x)
    dest = _dest(shape, key)
    if dest.size == 0:
        return x
    values = np.ravel(np.broadcast_to(value, dest.shape))
    flat = _set_flat(np.ravel(x), dest.ravel(), values, int(np.prod(shape, dtype=np.int64)))
    return np.reshape(flat, shape)


FUNCTIONS["setitem"] = setitem


def _plain_buffer(ufunc) -> TypeError:
    return TypeError(
        f"numpy.{ufunc.__name__}.at writes a traced value into a plain NumPy array, "
        "which cannot hold a derivative. Create the buffer from a traced value "
        "(np.zeros_like(x), np.zeros(n, like=x)) or collect the values and np.stack them.")


def _ufunc_at(ufunc):
    def at(a, indices, b=None):
        if not isinstance(a, Tracer):
            raise _plain_buffer(ufunc)
        shape = shape_of(a)
        n = int(np.prod(shape, dtype=np.int64))
        dest = _dest(shape, indices)
        d = dest.ravel()
        if d.size == 0:
            return None
        vals = None if b is None else np.ravel(np.broadcast_to(b, dest.shape))
        flat = np.ravel(a)
        if ufunc is np.add or ufunc is np.subtract:
            # Repeats accumulate: exactly scatter_add's semantics.
            flat = ufunc(flat, scatter_add(vals, d, (n,)))
        else:
            # Apply in rounds in which every destination occurs once: the k-th
            # occurrence of each index in round k (NumPy's unbuffered order).
            order = np.argsort(d, kind="stable")
            sd = d[order]
            start = np.r_[0, np.flatnonzero(sd[1:] != sd[:-1]) + 1]
            rank = np.empty(d.size, dtype=np.intp)
            rank[order] = np.arange(d.size) - np.repeat(start, np.diff(np.r_[start, d.size]))
            for r in range(int(rank.max()) + 1):
                sel = np.flatnonzero(rank == r)
                cur = flat[d[sel]]
                upd = ufunc(cur) if vals is None else ufunc(cur, vals[sel])
                flat = _set_flat(flat, d[sel], upd, n)
        become(a, np.reshape(flat, shape))
        return None
    return at


for _u in (np.add, np.subtract, np.multiply, np.true_divide, np.maximum, np.minimum,
           np.fmax, np.fmin, np.power, np.negative, np.square, np.sqrt, np.exp, np.log):
    REDUCERS[(_u, "at")] = _ufunc_at(_u)


# ============================================================================
# buffers from a traced value
# ============================================================================
def _float_dtype(dtype, x) -> np.dtype | None:
    """The float dtype of a traced buffer, or None for an int/bool buffer
    (which cannot carry a derivative: it stays a plain array)."""
    dt = np.dtype(dtype) if dtype is not None else np.result_type(peel(x))
    return dt if dt.kind in "fc" else None


def _buffer(like, shape, fill, dtype, kind):
    dt = _float_dtype(dtype, like)
    plain = getattr(np, kind)
    args = (shape,) if kind != "full" else (shape, peel(fill))
    base = plain(*args, dtype=dt if dt is not None else dtype)
    if dt is None:
        return base
    if kind == "full" and isinstance(fill, Tracer):
        return np.broadcast_to(fill, base.shape) + traced_zero(like) + base * 0
    return base + traced_zero(like)


def _like(kind):
    def create(a, *args, dtype=None, order="K", subok=True, shape=None, **kw):
        fill = None
        if kind == "full":
            fill, args = args[0], args[1:]
        if args:
            dtype = args[0]
        shp = shape_of(a) if shape is None else shape
        return _buffer(a, shp, fill, dtype, "zeros" if kind == "empty" else kind)
    return create


implements(np.zeros_like)(_like("zeros"))
implements(np.ones_like)(_like("ones"))
implements(np.empty_like)(_like("empty"))
implements(np.full_like)(_like("full"))


def _like_creation(kind):
    # np.zeros(shape, like=x): NumPy hands the call to x, without ``like``.
    def create(like, shape, *args, dtype=None, order="C", **kw):
        fill = None
        if kind == "full":
            fill, args = args[0], args[1:]
        if args:
            dtype = args[0]
        return _buffer(like, shape, fill, dtype, "zeros" if kind == "empty" else kind)
    return create


for _kind in ("zeros", "ones", "empty", "full"):
    LIKE[getattr(np, _kind)] = _like_creation(_kind)


def _like_plain(fn):
    # np.eye(n, like=x), np.arange(n, like=x): float results become traced
    # buffers (zero derivative) that can receive traced values.
    def create(like, *args, **kwargs):
        out = fn(*args, **kwargs)
        return out + traced_zero(like) if out.dtype.kind in "fc" else out
    return create


for _fn in (np.eye, np.identity, np.arange):
    LIKE[_fn] = _like_plain(_fn)


@implements(np.copy)
def copy(a, order="K", subok=False):
    return clone(a)          # a new tracer object: later updates of either stay apart


@implements(np.bincount)
def bincount(x, weights=None, minlength=0):
    idx = np.asarray(peel(x))
    if not isinstance(weights, Tracer):
        return np.bincount(idx, peel(weights), minlength=minlength)
    n = max(int(idx.max()) + 1 if idx.size else 0, minlength)
    return scatter_add(weights, (idx,), (n,))
