"""Greedy graph colorings on CSR index arrays, compiled with Numba.

The colorings of :mod:`dualad.mixed.coloring` are sequential greedy sweeps
(each vertex takes the smallest color its neighbourhood leaves free), so they
cannot be vectorised; here they are loops over CSR arrays compiled once
(``cache=True``: later processes load them from disk). Work, with ``d`` the
number of nonzeros in a row:

* distance-2 (Jacobian columns or rows; also a valid direct coloring of a
  Hessian): ``sum over rows of d**2``, about ``nnz * d``;
* star (Hessians; Gebremedhin, Manne & Pothen 2005, StarColoringAlg1):
  ``sum over paths v-w-x of deg(x)``, about ``n * d**3``.

Tridiagonal at n = 10**6: both well under a second. The star sweep is the
better coloring (fewer colors) and is used while its work stays within a
constant factor of the distance-2 sweep's (see :func:`hessian_colors`).

>>> import numpy as np
>>> ptr = np.array([0, 1, 3, 4]); idx = np.array([1, 0, 2, 1])   # path 0-1-2
>>> star(ptr, idx).tolist()
[0, 1, 0]
"""
from __future__ import annotations

import numpy as np

__all__ = ["distance2", "star", "orders", "hessian_colors", "star_source",
           "compiled_star_source"]

# The star sweep may cost this many times the distance-2 sweep's work before
# the distance-2 coloring (more colors, less work) is used for a Hessian.
STAR_WORK_FACTOR = 8


def greedy_distance2(m_ptr, m_idx, n_ptr, n_idx, order):
    """Distance-2 sweep (compiled by :func:`_compiled`)."""
    n = order.shape[0]
    color = np.full(n, -1, np.int64)
    forbidden = np.full(n + 1, -1, np.int64)
    for j in order:
        for a in range(m_ptr[j], m_ptr[j + 1]):
            r = m_idx[a]
            for b in range(n_ptr[r], n_ptr[r + 1]):
                c = color[n_idx[b]]
                if c >= 0:
                    forbidden[c] = j
        c = 0
        while forbidden[c] == j:
            c += 1
        color[j] = c
    return color


def greedy_star(ptr, idx, order):
    """Star sweep, StarColoringAlg1 (compiled by :func:`_compiled`)."""
    n = order.shape[0]
    color = np.full(n, -1, np.int64)
    forbidden = np.full(n + 1, -1, np.int64)
    for v in order:
        for a in range(ptr[v], ptr[v + 1]):
            w = idx[a]
            cw = color[w]
            if cw >= 0:
                forbidden[cw] = v
            for b in range(ptr[w], ptr[w + 1]):
                x = idx[b]
                if x == v:
                    continue
                cx = color[x]
                if cx < 0 or forbidden[cx] == v:
                    continue
                if cw < 0:
                    forbidden[cx] = v        # v-w-x with w still uncolored
                else:
                    for c in range(ptr[x], ptr[x + 1]):
                        y = idx[c]
                        if y != w and color[y] == cw:
                            forbidden[cx] = v   # v-w-x-y would be bicolored
                            break
        c = 0
        while forbidden[c] == v:
            c += 1
        color[v] = c
    return color


def star_source(ptr, cols, colors, n_colors):
    """Direct recovery map of a star coloring (compiled by :func:`_compiled`):
    for entry ``a`` = ``(i, j)`` of the symmetric pattern ``ptr/cols``, the
    position ``c * n + r`` in the ``(n_colors, n)`` compressed batch where it
    is read: row ``r`` of the smaller index if column ``c = color[other]`` is
    alone in its color there, else of the larger; ``ok`` False when neither
    (not a star coloring). One pass over the entries plus a ``(n, colors)``
    count table: no temporaries of the size of the pattern."""
    n = ptr.shape[0] - 1
    nc = max(n_colors, 1)
    counts = np.zeros(n * nc, np.int32)
    for i in range(n):
        for a in range(ptr[i], ptr[i + 1]):
            counts[i * nc + colors[cols[a]]] += 1
    source = np.empty(cols.shape[0], np.int64)
    for i in range(n):
        for a in range(ptr[i], ptr[i + 1]):
            j = cols[a]
            lo, hi = (i, j) if i < j else (j, i)
            c_lo, c_hi = colors[lo], colors[hi]
            if counts[lo * nc + c_hi] == 1:
                source[a] = c_hi * n + lo
            elif counts[hi * nc + c_lo] == 1:
                source[a] = c_lo * n + hi
            else:
                return source, False
    return source, True


def _compiled():
    """The sweeps compiled with Numba on first use (not at ``import dualad``;
    ``cache=True``: later processes load them from disk). Without Numba (a
    demo install) the same loops run as Python: exact, slower (the recovery
    map then stays vectorised NumPy: ``compiled_star_source`` is None)."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from numba import njit
        except ImportError:           # pragma: no cover - numba is a core dependency
            _KERNELS = (greedy_distance2, greedy_star, None)
        else:
            _KERNELS = (njit(cache=True)(greedy_distance2), njit(cache=True)(greedy_star),
                        njit(cache=True)(star_source))
    return _KERNELS


def compiled_star_source():
    """The compiled :func:`star_source`, or None without Numba."""
    return _compiled()[2]


_KERNELS = None


def orders(degree: np.ndarray) -> list:
    """Vertex orderings worth trying: natural (best on bands) and largest
    degree first (the classic greedy heuristic), when they differ."""
    natural = np.arange(degree.shape[0], dtype=np.int64)
    largest = np.argsort(-degree, kind="stable").astype(np.int64)
    return [natural] if np.array_equal(largest, natural) else [natural, largest]


def _best(sweep, degree: np.ndarray, lower: int = 0) -> np.ndarray:
    """The coloring with the fewest colors over :func:`orders` (natural
    first). When the natural order already reaches ``lower`` (a lower bound
    on the colors) no order can do better: the other sweeps, and the sort
    of the degrees, are skipped (a band at n = 10^6: a third of the time)."""
    best = sweep(np.arange(degree.shape[0], dtype=np.int64))
    if best.max(initial=-1) + 1 <= lower:
        return best
    for order in orders(degree)[1:]:
        color = sweep(order)
        if color.max(initial=-1) < best.max(initial=-1):
            best = color
    return best


def _star_lower_bound(ptr: np.ndarray, idx: np.ndarray, degree: np.ndarray) -> int:
    """Colors any star coloring of the graph needs, cheaply: 2 with an edge;
    3 when an edge joins two vertices of degree >= 2 (it lies on a path of
    four vertices, which two colors would bicolor, or on a triangle)."""
    if idx.shape[0] == 0:
        return 1 if degree.shape[0] else 0
    big = degree >= 2
    cs = np.zeros(idx.shape[0] + 1, dtype=np.int64)
    np.cumsum(big[idx], out=cs[1:])
    big_nbrs = cs[ptr[1:]] - cs[ptr[:-1]]
    return 3 if bool(np.any(big & (big_nbrs > 0))) else 2


def distance2(m_ptr, m_idx, n_ptr, n_idx) -> np.ndarray:
    """Greedy distance-2 coloring of the items ``m_ptr/m_idx`` indexes (item
    ``j`` touches neighbours ``m_idx[m_ptr[j]:m_ptr[j+1]]``; neighbour ``r``
    touches items ``n_idx[n_ptr[r]:n_ptr[r+1]]``): items sharing a neighbour
    get different colors.

    >>> import numpy as np
    >>> p = np.array([0, 2, 4]); i = np.array([0, 1, 1, 2])   # rows {0,1}, {1,2}
    >>> q = np.array([0, 1, 3, 4]); k = np.array([0, 0, 1, 1])  # its transpose
    >>> distance2(q, k, p, i).tolist()      # columns 0 and 2 share no row
    [0, 1, 0]
    """
    kernel = _compiled()[0]
    m_ptr, m_idx, n_ptr, n_idx = (np.ascontiguousarray(a, dtype=np.int64)
                                  for a in (m_ptr, m_idx, n_ptr, n_idx))
    sizes = np.diff(n_ptr)
    item = np.repeat(np.arange(m_ptr.shape[0] - 1), np.diff(m_ptr))
    degree = np.bincount(item, weights=sizes[m_idx], minlength=m_ptr.shape[0] - 1)
    # The items of one neighbour all differ: its item count bounds the colors.
    lower = int(sizes.max(initial=0))
    return _best(lambda order: kernel(m_ptr, m_idx, n_ptr, n_idx, order), degree, lower)


def star(ptr, idx) -> np.ndarray:
    """Greedy star coloring of the symmetric graph ``ptr/idx`` (CSR, no self
    loops): proper, and every path on four vertices uses three colors."""
    kernel = _compiled()[1]
    ptr, idx = (np.ascontiguousarray(a, dtype=np.int64) for a in (ptr, idx))
    degree = np.diff(ptr)
    return _best(lambda order: kernel(ptr, idx, order), degree,
                 _star_lower_bound(ptr, idx, degree))


def hessian_colors(ptr, idx) -> tuple[np.ndarray, str]:
    """A coloring of the symmetric graph ``ptr/idx`` (no self loops) with
    direct recovery of every Hessian entry: a star coloring while its work
    stays within :data:`STAR_WORK_FACTOR` times a distance-2 coloring's,
    else the distance-2 coloring (valid, more colors, less work). Returns
    the colors and which coloring it is (``"star"`` or ``"distance-2"``)."""
    ptr = np.asarray(ptr, dtype=np.int64)
    idx = np.asarray(idx, dtype=np.int64)
    degree = np.diff(ptr)
    # Distance-2 over the graph plus its diagonal: sum over rows of (d+1)^2.
    d2_work = float(np.sum((degree + 1.0) ** 2))
    # Star: sum over v, over w in N(v), over x in N(w), of deg(x).
    second = np.bincount(np.repeat(np.arange(degree.shape[0]), degree),
                         weights=degree[idx].astype(float), minlength=degree.shape[0])
    star_work = float(np.sum(second[idx])) if idx.size else 0.0
    if star_work <= STAR_WORK_FACTOR * d2_work:
        return star(ptr, idx), "star"
    n = degree.shape[0]
    rows = np.repeat(np.arange(n), degree)
    # Closed neighbourhoods (the diagonal too), as both CSR sides (symmetric).
    key = np.sort(np.concatenate([rows * n + idx, np.arange(n) * (n + 1)]))   # disjoint
    r, c = key // n, key % n
    cptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=cptr[1:])
    return distance2(cptr, c, cptr, c), "distance-2"
