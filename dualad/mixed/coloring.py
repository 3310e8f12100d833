"""Graph coloring for compressed Jacobians and Hessians, and recovery.

Columns of a Jacobian that share no row can be perturbed together: one
forward pass with ``c`` seed directions (one per color) gives ``B = J S``
and every nonzero ``J[r, j]`` is read back as ``B[r, color[j]]`` (a
*distance-2* coloring of the column-intersection graph; rows likewise for
reverse mode). For a symmetric Hessian a *star* coloring (a proper coloring
in which every path on four vertices uses at least three colors) is enough:
each off-diagonal entry is then alone in its color in its own row or in its
partner's row, so ``H[i, j]`` is read from ``B = H S`` directly, and both
``(i, j)`` and ``(j, i)`` take the same value (an exactly symmetric result).
A tridiagonal Hessian needs 3 colors, a half-bandwidth-``k`` band ``2k+1``
at most, a block-diagonal one its block size.

The colorings and the recovery are pure NumPy on index arrays, unit-tested
on their own; :mod:`dualad.mixed.sparsity` finds the patterns,
:mod:`dualad.mixed.patterns` caches both, and :mod:`dualad.mixed.compressed`
evaluates the compressed derivatives (``sparse_hessian``, ``sparse_jacobian``).

Example::

    >>> import numpy as np
    >>> band = np.eye(6, dtype=bool) | np.eye(6, k=1, dtype=bool) | np.eye(6, k=-1, dtype=bool)
    >>> column_coloring(band).n_colors, star_coloring(band).n_colors
    (3, 3)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dualad.mixed import greedy

__all__ = ["Coloring", "column_coloring", "row_coloring", "star_coloring",
           "seed_matrix", "is_star_coloring"]


# ============================================================================
# the result of a coloring, with its recovery map
# ============================================================================
@dataclass(eq=False)
class Coloring:
    """A coloring of a sparsity pattern and how to read entries back.

    ``colors[k]`` is the color of column (``kind="column"``, ``"star"``) or
    row (``"row"``) ``k``. The pattern's nonzeros, in CSR order, are
    ``indptr``/``indices``; entry ``e`` of the result is
    ``compressed.ravel()[source[e]]`` where ``compressed`` is the
    ``(n_colors, len)`` output of the batched pass (one row per color).
    """

    kind: str
    colors: np.ndarray
    n_colors: int
    shape: tuple
    indptr: np.ndarray
    indices: np.ndarray
    source: np.ndarray = field(repr=False)
    programs: dict = field(default_factory=dict, repr=False)   # recorded passes (replay)
    _rows: np.ndarray | None = field(default=None, repr=False)
    _index32: tuple | None = field(default=None, repr=False)

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    def rows(self) -> np.ndarray:
        """Row index of every nonzero, in CSR order."""
        if self._rows is None:
            self._rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        return self._rows

    def recover(self, compressed) -> np.ndarray:
        """The nonzero values (CSR order) from the ``(n_colors, ...)`` batch."""
        return np.ravel(compressed)[self.source]

    def to_csr(self, compressed):
        """``scipy.sparse.csr_matrix`` of the recovered entries."""
        import scipy.sparse as sp
        if self._index32 is None:
            # SciPy's own index dtype when it fits: no conversion per call.
            small = max(self.nnz, *self.shape) < 2**31 - 1
            dt = np.int32 if small else np.int64
            self._index32 = (self.indices.astype(dt), self.indptr.astype(dt))
        indices, indptr = self._index32
        return sp.csr_matrix((self.recover(compressed), indices, indptr), shape=self.shape)

    def to_dense(self, compressed, dtype=None) -> np.ndarray:
        values = self.recover(compressed)
        out = np.zeros(self.shape, dtype=dtype or values.dtype)
        out[self.rows(), self.indices] = values
        return out


def seed_matrix(colors: np.ndarray, n_colors: int, dtype=np.float64) -> np.ndarray:
    """``(n_colors, n)`` seeds: row ``c`` is the indicator of color ``c``.

    >>> seed_matrix(np.array([0, 1, 0]), 2)
    array([[1., 0., 1.],
           [0., 1., 0.]])
    """
    s = np.zeros((n_colors, colors.shape[0]), dtype=dtype)
    s[colors, np.arange(colors.shape[0])] = 1
    return s


# ============================================================================
# pattern helpers
# ============================================================================
def _csr(pattern) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(indptr, indices, shape) of a dense boolean array or scipy matrix."""
    if hasattr(pattern, "tocsr"):
        m = pattern.tocsr()
        m.sum_duplicates()
        m.sort_indices()
        keep = np.asarray(m.data != 0)
        if not keep.all():
            m = m.copy()
            m.data = keep.astype(np.int8)
            m.eliminate_zeros()
        return m.indptr.astype(np.int64), m.indices.astype(np.int64), tuple(m.shape)
    p = np.asarray(pattern, dtype=bool)
    if p.ndim != 2:
        raise ValueError(f"a sparsity pattern is 2-D; got shape {p.shape}")
    rows, cols = np.nonzero(p)
    indptr = np.zeros(p.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=p.shape[0]), out=indptr[1:])
    return indptr, cols.astype(np.int64), p.shape


def _transpose(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> tuple:
    """CSR arrays of the transposed pattern."""
    rows = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
    order = np.argsort(indices, kind="stable")
    t_ptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(np.bincount(indices, minlength=n_cols), out=t_ptr[1:])
    return t_ptr, rows[order]


def _sorted_unique(a: np.ndarray, return_counts: bool = False):
    """``np.unique`` by one sort (NumPy 2's hash-based unique is ~10x slower
    on millions of int64 keys)."""
    a = np.sort(a)
    first = np.empty(a.shape[0], dtype=bool)
    first[:1] = True
    np.not_equal(a[1:], a[:-1], out=first[1:])
    if not return_counts:
        return a[first]
    starts = np.flatnonzero(first)
    return a[starts], np.diff(np.append(starts, a.shape[0]))


def _symmetric(indptr, indices, n: int) -> tuple:
    """``(ptr, cols, rows)`` of the symmetrised pattern ``P | P.T`` (CSR,
    sorted rows, ``rows``: each entry's row) and ``(adj_ptr, adj_idx)`` of
    the same without its diagonal (the graph a star coloring colors)."""
    ptr, cols = _union_transpose(indptr, indices, n)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
    off = rows != cols
    adj_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[off], minlength=n), out=adj_ptr[1:])
    return (ptr, cols, rows), (adj_ptr, cols[off])


def _n_colors(colors: np.ndarray) -> int:
    return int(colors.max()) + 1 if colors.size else 0


# ============================================================================
# distance-2 column / row coloring (Jacobians)
# ============================================================================
def column_coloring(pattern) -> Coloring:
    """Distance-2 coloring of the columns of a Jacobian pattern (forward
    mode: one batched jvp with ``n_colors`` directions).

    >>> column_coloring(np.eye(4, dtype=bool)).n_colors
    1
    """
    indptr, indices, shape = _csr(pattern)
    t_ptr, t_idx = _transpose(indptr, indices, shape[1])
    colors = greedy.distance2(t_ptr, t_idx, indptr, indices)
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    source = colors[indices] * shape[0] + rows       # B[r, color[j]], B row-major (c, m)
    return Coloring("column", colors, _n_colors(colors), shape, indptr, indices, source)


def row_coloring(pattern) -> Coloring:
    """Distance-2 coloring of the rows of a Jacobian pattern (reverse mode:
    one batched vjp with ``n_colors`` cotangents).

    >>> row_coloring(np.ones((1, 5), dtype=bool)).n_colors
    1
    """
    indptr, indices, shape = _csr(pattern)
    t_ptr, t_idx = _transpose(indptr, indices, shape[1])
    colors = greedy.distance2(indptr, indices, t_ptr, t_idx)
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    source = colors[rows] * shape[1] + indices       # U[color[r], j], U row-major (c, n)
    return Coloring("row", colors, _n_colors(colors), shape, indptr, indices, source)


# ============================================================================
# star coloring (symmetric Hessians)
# ============================================================================
def star_coloring(pattern) -> Coloring:
    """Star coloring of a symmetric (Hessian) pattern with direct recovery:
    entry ``(i, j)`` is read from row ``i`` if ``j`` is alone in its color
    there, else from row ``j`` (always possible for a star coloring), and
    ``(j, i)`` from the same place, so the result is exactly symmetric.
    Where a star coloring would cost far more work than a distance-2
    coloring (dense-ish rows), the distance-2 coloring is used: also direct,
    more colors (:func:`dualad.mixed.greedy.hessian_colors`). A pattern that
    is not symmetric is colored as its union with its transpose.

    >>> star_coloring(np.ones((3, 3), dtype=bool)).n_colors
    3
    """
    indptr, indices, shape = _csr(pattern)
    if shape[0] != shape[1]:
        raise ValueError(f"a Hessian pattern is square; got shape {shape}")
    n = shape[0]
    # The recovered entries: the symmetrised pattern (with its diagonal);
    # the graph colored: the same without the diagonal. O(nnz), no sort.
    (ptr, cols, _), adj = _symmetric(indptr, indices, n)
    colors, _ = greedy.hessian_colors(*adj)
    n_colors = _n_colors(colors)
    source = _star_source(ptr, cols, colors, n_colors, n)
    return Coloring("star", colors, n_colors, (n, n), ptr, cols, source)


def _union_transpose(indptr, indices, n: int) -> tuple:
    """CSR arrays (sorted rows) of ``P | P.T`` for the sorted, duplicate-free
    ``n x n`` pattern ``P``: ``P``'s own arrays when it is symmetric (a
    detected Hessian pattern always is). SciPy's transpose and sum are
    linear (counting sorts), where sorting ``row * n + col`` keys is not."""
    import scipy.sparse as sp
    one = np.ones(indices.shape[0], dtype=np.int8)
    m = sp.csr_matrix((one, indices, indptr), shape=(n, n))
    t = m.T.tocsr()                       # rows sorted (a counting sort)
    if np.array_equal(t.indptr, indptr) and np.array_equal(t.indices, indices):
        return indptr, indices
    s = (m + t).tocsr()
    s.sort_indices()
    return s.indptr.astype(np.int64), s.indices.astype(np.int64)


def _table_fits(n: int, n_colors: int, nnz: int) -> bool:
    """Whether a ``(rows, colors)`` count table is small next to the pattern."""
    return n * max(n_colors, 1) <= 4 * nnz + (1 << 20)


def _star_source(ptr, cols, colors, n_colors: int, n: int) -> np.ndarray:
    """Where each entry is read in ``B`` (row-major ``(n_colors, n)``, row
    ``c`` = ``H @ indicator(c)``): ``B[c, i]`` is the sum of row ``i`` over
    the columns of color ``c``, so entry ``(i, j)`` can be read there when
    ``j`` is the only column of its color in row ``i``. One compiled pass
    (:func:`dualad.mixed.greedy.star_source`) when a ``(rows, colors)``
    count table fits; else (or without Numba) vectorised NumPy, with sorted
    ``(row, color)`` keys instead of the table when it would not fit."""
    nc = max(n_colors, 1)
    small = _table_fits(n, n_colors, cols.shape[0])
    kernel = greedy.compiled_star_source() if small else None
    if kernel is not None:
        source, ok = kernel(ptr, cols, colors, n_colors)
    else:
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
        key = rows * nc + colors[cols]
        if small:
            counts = np.bincount(key, minlength=n * nc)

            def alone(r, c):
                return counts[r * nc + c] == 1
        else:
            keys, kcounts = _sorted_unique(key, return_counts=True)

            def alone(r, c):
                return kcounts[np.searchsorted(keys, r * nc + c)] == 1

        lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
        c_lo, c_hi = colors[lo], colors[hi]
        from_lo = alone(lo, c_hi)
        ok = bool(np.all(from_lo | alone(hi, c_lo)))
        source = np.where(from_lo, c_hi * n + lo, c_lo * n + hi)
    if not ok:
        raise ValueError("not a star coloring: some entry cannot be recovered directly")
    return source


def is_star_coloring(pattern, colors) -> bool:
    """Check the two star-coloring conditions (proper; every path on four
    vertices uses at least three colors) by brute force (tests only).

    >>> is_star_coloring(np.ones((2, 2), dtype=bool), np.array([0, 1]))
    True
    """
    indptr, indices, shape = _csr(pattern)
    ptr, idx = _symmetric(indptr, indices, shape[0])[1]
    adj = [idx[ptr[v]:ptr[v + 1]].tolist() for v in range(shape[0])]
    colors = list(np.asarray(colors).tolist())
    for v, nbrs in enumerate(adj):
        for w in nbrs:
            if colors[v] == colors[w]:
                return False
            for x in adj[w]:
                if x == v:
                    continue
                for y in adj[x]:
                    if y in (w, v):
                        continue
                    if colors[v] == colors[x] and colors[w] == colors[y]:
                        return False
    return True
