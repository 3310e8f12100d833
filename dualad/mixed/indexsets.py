"""Sparse dependency sets for the sparsity tracer: one set of input indices
per array element, stored as ``(start, stop)`` slices into a flat index
buffer (memory and time proportional to the pattern, not to elements x n).

A set is never sorted while tracing (only the final rows are, by SciPy), and
carries no duplicates. Because elements point into a shared buffer, the
primitives that only move or copy elements (getitem, reshape, transpose,
broadcast, one-input elementwise) cost O(elements): they gather ``start`` and
``stop`` and keep the buffer. Unions (binary elementwise, reductions,
scatters, contractions) write a new buffer with a compiled sweep that dedups
with a stamp array (each output element ``o`` marks the inputs it has seen
with ``o``), so a union costs the sizes of the sets it reads. This is the
gradient-pattern representation of SparseConnectivityTracer.jl, vectorised
over array elements.

Rules describe their element connectivity as an *element map*: for each
output element, the input elements (global ids in a :class:`Pool` of the
traced operands) whose sets it unites, either rectangular ``(n_out, g)`` or
CSR ``(eptr, eidx)``; ``-1`` means none.

>>> import numpy as np
>>> x = seed((3,))
>>> s = Pool([x]).gather((2,), np.array([[0, 1], [1, 2]]))
>>> [sorted(s.row(i).tolist()) for i in range(2)]
[[0, 1], [1, 2]]
"""
from __future__ import annotations

import numpy as np

__all__ = ["IndexSets", "Pool", "seed", "to_csr", "union_all", "elementwise", "structural"]

_KERNELS = None
# _add_set compiled: a module global (a closure over it defeats the disk cache)
_ADD_SET = None


def _compiled():
    """The Numba kernels, compiled on first use (``cache=True``)."""
    global _KERNELS, _ADD_SET
    if _KERNELS is None:
        from numba import njit
        _ADD_SET = njit(inline="always")(_add_set)

        @njit(cache=True)
        def gather_union(start, stop, idx, eptr, eidx, n_in):        # pragma: no cover
            n_out = eptr.shape[0] - 1
            total = 0
            for t in range(eidx.shape[0]):
                e = eidx[t]
                if e >= 0:
                    total += stop[e] - start[e]
            out = np.empty(total, idx.dtype)
            ostart = np.empty(n_out, np.int64)
            ostop = np.empty(n_out, np.int64)
            stamp = np.full(n_in, -1, np.int64)
            pos = 0
            for o in range(n_out):
                ostart[o] = pos
                for t in range(eptr[o], eptr[o + 1]):
                    e = eidx[t]
                    if e >= 0:
                        pos = _ADD_SET(start[e], stop[e], idx, stamp, o, out, pos)
                ostop[o] = pos
            return ostart, ostop, out, pos

        @njit(cache=True)
        def scan_union(start, stop, idx, lines, n_in):                # pragma: no cover
            # Two sweeps of the same loop: the first only counts (sizes the
            # output), the second writes.
            n_lines, length = lines.shape
            stamp = np.full(n_in, -1, np.int64)
            cur = np.empty(n_in, idx.dtype)
            ostart = np.empty(n_lines * length, np.int64)
            ostop = np.empty(n_lines * length, np.int64)
            out = np.empty(0, idx.dtype)
            pos = 0
            for sweep in range(2):
                if sweep:
                    out = np.empty(pos, idx.dtype)
                    stamp[:] = -1
                pos = 0
                for ln in range(n_lines):
                    c = 0
                    for k in range(length):
                        e = lines[ln, k]
                        c = _ADD_SET(start[e], stop[e], idx, stamp, ln, cur, c)
                        if sweep:
                            ostart[e] = pos
                            out[pos:pos + c] = cur[:c]
                            ostop[e] = pos + c
                        pos += c
            return ostart, ostop, out

        _KERNELS = (gather_union, scan_union)
    return _KERNELS


def _add_set(lo, hi, idx, stamp, mark, dest, pos):                  # pragma: no cover
    """Append to ``dest[pos:]`` the entries of ``idx[lo:hi]`` not yet stamped
    with ``mark`` (stamping them); the new ``pos``. The one dedup step of
    both kernels (compiled inline into them)."""
    for a in range(lo, hi):
        v = idx[a]
        if stamp[v] != mark:
            stamp[v] = mark
            dest[pos] = v
            pos += 1
    return pos


def _index_dtype(n_in: int):
    return np.int32 if n_in < 2**31 else np.int64


class IndexSets:
    """Per-element dependency sets of an array of shape ``shape`` over
    ``n_in`` inputs: element ``e`` (C order) depends on
    ``idx[start[e]:stop[e]]``."""

    __slots__ = ("shape", "start", "stop", "idx", "n_in")

    def __init__(self, shape, start, stop, idx, n_in: int):
        self.shape = tuple(shape)
        self.start, self.stop, self.idx, self.n_in = start, stop, idx, n_in

    @property
    def size(self) -> int:
        return self.start.shape[0]

    def counts(self) -> np.ndarray:
        return self.stop - self.start

    def nonempty(self) -> np.ndarray:
        """Booleans shaped like the array: which elements depend on an input."""
        return (self.stop > self.start).reshape(self.shape)

    def any(self) -> bool:
        return bool(np.any(self.stop > self.start))

    def row(self, e: int) -> np.ndarray:
        return self.idx[self.start[e]:self.stop[e]]

    def nnz(self) -> int:
        return int(np.sum(self.counts()))

    def __repr__(self) -> str:
        return f"IndexSets(shape={self.shape}, nnz={self.nnz()}, n_in={self.n_in})"


def seed(shape: tuple) -> IndexSets:
    """Element ``i`` depends on input ``i`` alone."""
    n = int(np.prod(shape, dtype=np.int64))
    r = np.arange(n, dtype=np.int64)
    return IndexSets(shape, r, r + 1, np.arange(n, dtype=_index_dtype(n)), n)


def empty(shape: tuple, n_in: int) -> IndexSets:
    n = int(np.prod(shape, dtype=np.int64))
    z = np.zeros(n, dtype=np.int64)
    return IndexSets(shape, z, z, np.zeros(0, dtype=_index_dtype(n_in)), n_in)


def union_all(sets: list) -> np.ndarray:
    """The sorted union of every set of every element of ``sets``."""
    n_in = sets[0].n_in
    mark = np.zeros(n_in, dtype=bool)
    for s in sets:
        if s.idx.shape[0] and s.any():
            # Only the referenced part of a shared buffer counts.
            mark[_compact(s)[2]] = True
    return np.flatnonzero(mark).astype(_index_dtype(n_in))


def _compact(s: IndexSets) -> tuple:
    """(ptr, lengths, flat idx) of ``s`` with only the referenced entries."""
    cnt = s.counts()
    ptr = np.zeros(cnt.shape[0] + 1, dtype=np.int64)
    np.cumsum(cnt, out=ptr[1:])
    if ptr[-1] == s.idx.shape[0] and np.array_equal(s.start, ptr[:-1]):
        return ptr, cnt, s.idx
    pos = np.arange(ptr[-1], dtype=np.int64) + np.repeat(s.start - ptr[:-1], cnt)
    return ptr, cnt, s.idx[pos]


class Pool:
    """Several traced operands seen as one: global element ids run over the
    operands in order (``offset(k)``), over one index buffer (concatenated
    only when the operands do not already share one)."""

    __slots__ = ("sets", "offsets", "start", "stop", "idx", "n_in")

    def __init__(self, sets: list):
        self.sets = sets
        self.n_in = sets[0].n_in
        sizes = [s.size for s in sets]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if len(sets) == 1:
            self.start, self.stop, self.idx = sets[0].start, sets[0].stop, sets[0].idx
            return
        starts, stops, self.idx = _shared(sets)
        self.start = np.concatenate(starts)
        self.stop = np.concatenate(stops)

    def ids(self, k: int) -> np.ndarray:
        """Global ids of operand ``k``'s elements, shaped like it."""
        s = self.sets[k]
        return np.arange(self.offsets[k], self.offsets[k + 1]).reshape(s.shape)

    def gather(self, out_shape: tuple, emap, eptr=None) -> IndexSets:
        """The sets of an output of ``out_shape``: element ``o`` unites the
        sets of ``emap[o]`` (rectangular ``(n_out, g)``), or with ``eptr``
        of ``emap[eptr[o]:eptr[o + 1]]`` (CSR). ``-1`` entries are none."""
        n_out = int(np.prod(out_shape, dtype=np.int64))
        emap = np.asarray(emap, dtype=np.int64)
        if eptr is None:
            emap = emap.reshape(n_out, -1)
            if emap.shape[1] == 1:
                return self._view(out_shape, emap[:, 0])
            eptr = np.arange(n_out + 1, dtype=np.int64) * emap.shape[1]
            emap = emap.ravel()
        gather_union = _compiled()[0]
        start, stop, out, used = gather_union(self.start, self.stop, self.idx, eptr,
                                              emap, self.n_in)
        return IndexSets(out_shape, start, stop, _trimmed(out, used), self.n_in)

    def _view(self, out_shape: tuple, e: np.ndarray) -> IndexSets:
        """One source per element: the sets are shared, not copied."""
        none = e < 0
        if none.any():
            ec = np.where(none, 0, e)
            start = np.where(none, 0, self.start[ec])
            stop = np.where(none, 0, self.stop[ec])
        else:
            start, stop = self.start[e], self.stop[e]
        return IndexSets(out_shape, start, stop, self.idx, self.n_in)

    def scan(self, lines: np.ndarray) -> IndexSets:
        """Running unions along the rows of ``lines`` (ids of one operand
        covering all its elements): the pattern of a cumulative sum."""
        s = self.sets[0]
        start, stop, out = _compiled()[1](self.start, self.stop, self.idx,
                                          np.ascontiguousarray(lines, dtype=np.int64), self.n_in)
        return IndexSets(s.shape, start, stop, out, self.n_in)


def _shared(sets: list) -> tuple:
    """(starts, stops, idx): the operands' slices over one buffer
    (concatenated only when they do not already share one)."""
    bufs: list = []
    starts, stops = [], []
    for s in sets:
        for k, b in enumerate(bufs):
            if b is s.idx:
                shift = sum(x.shape[0] for x in bufs[:k])
                break
        else:
            shift = sum(x.shape[0] for x in bufs)
            bufs.append(s.idx)
        starts.append(s.start + shift if shift else s.start)
        stops.append(s.stop + shift if shift else s.stop)
    return starts, stops, (bufs[0] if len(bufs) == 1 else np.concatenate(bufs))


def _trimmed(out: np.ndarray, used: int) -> np.ndarray:
    # Keep a trimmed copy when dedup removed much (the buffer lives on).
    return out[:used].copy() if used < out.shape[0] // 2 else out[:used]


def _aligned(a: np.ndarray, shape: tuple, out_shape: tuple, mask) -> np.ndarray:
    a = a.reshape((1,) * (len(out_shape) - len(shape)) + tuple(shape))
    if mask is not None:
        a = np.where(mask, a, 0)
    if a.shape != tuple(out_shape):
        a = np.broadcast_to(a, out_shape)
    return np.ascontiguousarray(a).reshape(-1)


def elementwise(sets: list, out_shape: tuple, masks: list | None = None) -> IndexSets:
    """The sets of a broadcast elementwise result: each output element
    unites its operands' sets; ``masks[k]`` (broadcastable booleans): where
    operand ``k`` contributes (a constant factor's nonzeros)."""
    masks = masks or [None] * len(sets)
    n_in = sets[0].n_in
    al = [IndexSets(out_shape, _aligned(s.start, s.shape, out_shape, m),
                    _aligned(s.stop, s.shape, out_shape, m), s.idx, n_in)
          for s, m in zip(sets, masks)]
    acc = al[0]
    for nxt in al[1:]:
        if nxt.idx is acc.idx and np.array_equal(nxt.start, acc.start) \
                and np.array_equal(nxt.stop, acc.stop):
            continue                                            # x op x
        n = acc.size             # element o unites acc's o and nxt's o
        acc = Pool([acc, nxt]).gather(
            out_shape, np.stack([np.arange(n), np.arange(n, 2 * n)], axis=1))
    return acc


def structural(s: IndexSets, move, out_shape: tuple) -> IndexSets:
    """A primitive that only moves, copies or zero-fills elements, applied to
    the slice bounds (a zero fill gives the empty slice ``0:0``): basic
    slicing and reshapes cost nothing."""
    start = np.ascontiguousarray(move(s.start.reshape(s.shape))).reshape(-1)
    stop = np.ascontiguousarray(move(s.stop.reshape(s.shape))).reshape(-1)
    return IndexSets(out_shape, start, stop, s.idx, s.n_in)


def to_csr(sets: list, shapes: list, n_in: int):
    """``scipy.sparse.csr_matrix`` (bool, sorted indices) stacking the rows
    of every output leaf (``None``: a leaf that depends on nothing)."""
    import scipy.sparse as sp
    ptrs, idxs = [np.zeros(1, dtype=np.int64)], []
    for s, shape in zip(sets, shapes):
        if s is None:
            s = empty(shape, n_in)
        ptr, _, flat = _compact(s)
        ptrs.append(ptr[1:] + ptrs[-1][-1])
        idxs.append(flat.astype(np.int64 if n_in >= 2**31 else np.int32, copy=False))
    ptr = np.concatenate(ptrs)
    idx = np.concatenate(idxs) if idxs else np.zeros(0, dtype=np.int32)
    m = sp.csr_matrix((np.ones(idx.shape[0], dtype=bool), idx, ptr),
                      shape=(ptr.shape[0] - 1, n_in))
    m.has_canonical_format = False
    m.sort_indices()
    return m
