"""CSR assembly of a structured Hessian: COO entries to an exactly symmetric
``scipy.sparse.csr_matrix`` without large intermediate copies.

A structured pass leaves the Hessian as COO chunks ``(rows, cols, vals)``
(broadcastable arrays; :class:`dualad.structured.tangents.Coo`): the tangent
of gradient entry ``cols`` in direction ``rows``, duplicates adding. On a
pair potential there are ``36`` entries per pair, half of them duplicates
(the diagonal 3x3 blocks collect one entry per neighbour). Two steps:

1. :func:`entries_to_csr`: ``T`` (``T[e, d] = H[e, d]`` up to rounding,
   duplicates summed) as CSR. Large inputs go through two compiled loops
   (Numba): a counting sort scattered chunk by chunk (no concatenated copy of
   all entries) and a per-row duplicate sum with a marker array, in place.
   Indices are ``int32`` whenever ``n`` and the entry count allow it.
   Without Numba, or for small inputs (where loading the compiled loops costs
   more than it saves), SciPy's COO to CSR conversion does the same.
2. :func:`symmetrize`: ``(T + T.T) / 2``, exactly symmetric (the two
   addends of each pair of mirrored entries are the same numbers). When ``T``
   is structurally symmetric (as every Hessian from a structured pass is, up
   to stored zeros) its transpose's arrays are reused for the result and the
   average is written into them in place; else SciPy's sum.

Example::

    >>> import numpy as np
    >>> rows, cols = np.array([0, 1, 1]), np.array([1, 0, 0])
    >>> t = entries_to_csr([(rows, cols, np.array([1.0, 2.0, 1.0]))], 2)
    >>> symmetrize(t).toarray()
    array([[0., 2.],
           [2., 0.]])
"""
from __future__ import annotations

import numpy as np

__all__ = ["entries_to_csr", "symmetrize", "COMPILED_MIN"]

COMPILED_MIN = 1 << 23
"""Entries from which the compiled loops are used (when Numba is there):
below, importing Numba and loading them costs more than they save."""

_KERNELS = None


def _compiled():
    """The Numba loops, compiled on first use (``cache=True``: later processes
    load them from disk); ``False`` without Numba."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from numba import njit
        except ImportError:                 # pragma: no cover - numba is a core dependency
            _KERNELS = False
        else:
            _KERNELS = (njit(cache=True)(_scatter), njit(cache=True)(_dedupe),
                        njit(cache=True)(_average))
    return _KERNELS


# The loops, written once: compiled by Numba above, also plain Python (tests
# run them on small inputs to check the compiled ones).
def _scatter(rows, cols, vals, nxt, indices, data):     # pragma: no cover - compiled
    """Counting sort, second half: entry ``t`` goes to the next free place of
    its row ``rows[t]`` (``nxt``: that place, per row). Stable, so
    duplicates add in entry order. (Bucketing the entries by blocks of rows
    first, for cache locality, measured no faster: the time goes to first
    touching the fresh output pages.)"""
    for t in range(rows.shape[0]):
        r = rows[t]
        k = nxt[r]
        indices[k] = cols[t]
        data[k] = vals[t]
        nxt[r] = k + 1


def _dedupe(indptr, indices, data, n_cols):             # pragma: no cover - compiled
    """Duplicates of a row summed into their first occurrence and the rows
    compacted in place (``marker[c]``: where column ``c`` of the current row
    was put; places of earlier rows lie below ``start``). Returns the number
    of entries kept; ``indptr`` is rewritten."""
    marker = np.full(n_cols, -1, np.int64)
    out = 0
    lo = indptr[0]
    for r in range(indptr.shape[0] - 1):
        hi = indptr[r + 1]
        start = out
        for k in range(lo, hi):
            c = indices[k]
            m = marker[c]
            if m >= start:
                data[m] += data[k]
            else:
                marker[c] = out
                indices[out] = c
                data[out] = data[k]
                out += 1
        indptr[r + 1] = out
        lo = hi
    return out


def _average(t_ptr, t_idx, t_val, s_ptr, s_idx, s_val, n_cols):  # pragma: no cover
    """``s`` (the transpose of ``t``, rows of the same lengths) becomes
    ``(t + s) / 2`` in place, row by row; returns False at the first entry
    of ``s`` that ``t`` lacks (the patterns differ: ``s`` is then partly
    overwritten, and the caller starts again from a fresh transpose)."""
    where = np.full(n_cols, -1, np.int64)
    for r in range(t_ptr.shape[0] - 1):
        lo = t_ptr[r]
        for k in range(lo, t_ptr[r + 1]):
            where[t_idx[k]] = k
        for k in range(s_ptr[r], s_ptr[r + 1]):
            m = where[s_idx[k]]
            if m < lo:
                return False
            s_val[k] = (s_val[k] + t_val[m]) * 0.5
    return True


def _index_dtype(n: int, count: int):
    """``int32`` where every index and offset fits, else ``int64``."""
    return np.int32 if max(n, count) < 2**31 - 1 else np.int64


def _flat(chunk, dtype):
    """A chunk's rows, cols, vals broadcast together as 1-D arrays (indices in
    ``dtype``; values stay a view where they already have the full shape)."""
    rows, cols, vals = chunk
    shape = np.broadcast_shapes(np.shape(rows), np.shape(cols), np.shape(vals))
    r = np.broadcast_to(np.asarray(rows, dtype=dtype), shape).ravel()
    c = np.broadcast_to(np.asarray(cols, dtype=dtype), shape).ravel()
    v = np.broadcast_to(vals, shape).ravel()
    return r, c, v


def entries_to_csr(chunks: list, n: int, dtype=np.float64, compiled: bool | None = None):
    """The ``n x n`` CSR matrix of the COO ``chunks`` (``(rows, cols, vals)``
    broadcastable triples; duplicates add). ``compiled``: force (True) or
    refuse (False) the compiled loops; by default they run from
    :data:`COMPILED_MIN` entries on when Numba is there.

    >>> c = [(np.array([0, 0]), np.array([1, 1]), np.array([1.0, 2.5]))]
    >>> entries_to_csr(c, 2).toarray()
    array([[0. , 3.5],
           [0. , 0. ]])
    """
    import scipy.sparse as sp
    count = sum(int(np.prod(np.broadcast_shapes(*(np.shape(a) for a in c)))) for c in chunks)
    idt = _index_dtype(n, count)
    kernels = _compiled() if compiled is not False and (compiled or count >= COMPILED_MIN) \
        else False
    if not kernels:
        flat = [_flat(c, idt) for c in chunks]
        if not flat:
            return sp.csr_matrix((n, n), dtype=dtype)
        rows = np.concatenate([f[0] for f in flat])
        cols = np.concatenate([f[1] for f in flat])
        vals = np.concatenate([f[2] for f in flat]).astype(dtype, copy=False)
        del flat
        h = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
        h.sum_duplicates()
        return h
    scatter, dedupe, _ = kernels
    counts = np.zeros(n, dtype=np.int64)
    for rows, cols, vals in chunks:
        # Broadcasting repeats every row index equally often: count the
        # small array, times that repeat (no broadcast copy).
        rows = np.asarray(rows)
        total = int(np.prod(np.broadcast_shapes(rows.shape, np.shape(cols), np.shape(vals))))
        if total:
            counts += np.bincount(rows.ravel(), minlength=n) * (total // rows.size)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    del counts
    indices = np.empty(count, dtype=idt)
    data = np.empty(count, dtype=dtype)
    nxt = indptr[:-1].copy()
    for c in chunks:
        r, cc, v = _flat(c, idt)
        scatter(r, cc, np.asarray(v, dtype=dtype), nxt, indices, data)
        del r, cc, v
    del nxt
    nnz = dedupe(indptr, indices, data, n)
    # Shrink in place (the tail goes back to the allocator), else copy.
    for a in (indices, data):
        try:
            a.resize(nnz, refcheck=False)
        except ValueError:                  # pragma: no cover - a view of it exists
            break
    else:
        return sp.csr_matrix((data, indices, indptr.astype(idt, copy=False)), shape=(n, n),
                             copy=False)
    return sp.csr_matrix((data[:nnz].copy(), indices[:nnz].copy(),  # pragma: no cover
                          indptr.astype(idt, copy=False)), shape=(n, n))


def symmetrize(t):
    """``(t + t.T) / 2`` as CSR with sorted indices, exactly symmetric.

    >>> import scipy.sparse as sp
    >>> symmetrize(sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 3.0]]))).toarray()
    array([[1., 1.],
           [1., 3.]])
    """
    s = t.T.tocsr()            # the transpose by a counting sort: sorted indices
    kernels = _compiled() if t.nnz >= COMPILED_MIN else False
    if kernels and np.array_equal(t.indptr, s.indptr):
        if kernels[2](t.indptr, t.indices, t.data, s.indptr, s.indices, s.data, t.shape[1]):
            s.has_sorted_indices = True
            return s
        s = t.T.tocsr()        # (partly averaged before the patterns differed)
    h = ((t + s) * 0.5).tocsr()
    h.sort_indices()
    return h
