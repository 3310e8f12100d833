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
on their own; :mod:`dualad.mixed.sparsity` finds the patterns; the last section
evaluates the compressed derivatives (:func:`sparse_hessian`,
:func:`sparse_jacobian`).

Example::

    >>> import numpy as np
    >>> band = np.eye(6, dtype=bool) | np.eye(6, k=1, dtype=bool) | np.eye(6, k=-1, dtype=bool)
    >>> column_coloring(band).n_colors, star_coloring(band).n_colors
    (3, 3)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dualad.core.backend import peel
from dualad.core.registry import shape_of
from dualad.forward.api import jvp_flat
from dualad.mixed import chunked
from dualad.mixed.sparsity import coloring_for
from dualad.reverse.api import grad, vjp

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


def _lists(indptr: np.ndarray, indices: np.ndarray) -> list:
    ip, ix = indptr.tolist(), indices.tolist()
    return [ix[ip[i]:ip[i + 1]] for i in range(len(ip) - 1)]


def _transpose_lists(rows: list, n_cols: int) -> list:
    cols = [[] for _ in range(n_cols)]
    for r, js in enumerate(rows):
        for j in js:
            cols[j].append(r)
    return cols


def _orders(n: int, degree: list) -> list:
    """Vertex orderings worth trying: natural (best on bands) and largest
    degree first (the classic greedy heuristic)."""
    natural = list(range(n))
    largest = sorted(natural, key=lambda v: -degree[v])
    return [natural] if largest == natural else [natural, largest]


# Greedy colorings visit every path of length 2 (distance-2) or 3 (star) in
# Python: on a nearly dense pattern that is O(n^3)-O(n^4) for no gain (it
# needs about n colors anyway), so above this much work every vertex simply
# gets its own color (a valid coloring: the dense evaluation).
MAX_WORK = 4_000_000


def _trivial(n: int) -> list:
    return list(range(n))


def _smallest_free(forbidden: list, mark: int) -> int:
    c = 0
    while c < len(forbidden) and forbidden[c] == mark:
        c += 1
    return c


# ============================================================================
# distance-2 column / row coloring (Jacobians)
# ============================================================================
def _greedy_columns(rows_of: list, cols_of: list, order: list) -> list:
    """Greedy coloring: a column avoids the colors of every column sharing a row."""
    n = len(rows_of)
    color = [-1] * n
    forbidden = [-1] * (n + 1)
    for j in order:
        for r in rows_of[j]:
            for k in cols_of[r]:
                c = color[k]
                if c >= 0:
                    forbidden[c] = j
        color[j] = _smallest_free(forbidden, j)
    return color


def _distance2(members_of: list, neighbours_of: list) -> tuple[np.ndarray, int]:
    """Greedy distance-2 coloring of the items ``members_of`` indexes (columns
    for a Jacobian's forward pass, rows for its reverse pass): two items that
    share a neighbour get different colors. The best of a few orders wins."""
    n = len(members_of)
    degree = [sum(len(neighbours_of[r]) for r in members_of[j]) for j in range(n)]
    best = _trivial(n) if sum(degree) > MAX_WORK else None
    for order in _orders(n, degree) if best is None else ():
        color = _greedy_columns(members_of, neighbours_of, order)
        if best is None or max(color, default=-1) < max(best, default=-1):
            best = color
    colors = np.asarray(best, dtype=np.int64)
    return colors, int(colors.max()) + 1 if colors.size else 0


def column_coloring(pattern) -> Coloring:
    """Distance-2 coloring of the columns of a Jacobian pattern (forward
    mode: one batched jvp with ``n_colors`` directions).

    >>> column_coloring(np.eye(4, dtype=bool)).n_colors
    1
    """
    indptr, indices, shape = _csr(pattern)
    cols_of = _lists(indptr, indices)
    rows_of = _transpose_lists(cols_of, shape[1])
    colors, n_colors = _distance2(rows_of, cols_of)
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    source = colors[indices] * shape[0] + rows       # B[r, color[j]], B row-major (c, m)
    return Coloring("column", colors, n_colors, shape, indptr, indices, source)


def row_coloring(pattern) -> Coloring:
    """Distance-2 coloring of the rows of a Jacobian pattern (reverse mode:
    one batched vjp with ``n_colors`` cotangents).

    >>> row_coloring(np.ones((1, 5), dtype=bool)).n_colors
    1
    """
    indptr, indices, shape = _csr(pattern)
    cols_of = _lists(indptr, indices)
    rows_of = _transpose_lists(cols_of, shape[1])
    colors, n_colors = _distance2(cols_of, rows_of)
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    source = colors[rows] * shape[1] + indices       # U[color[r], j], U row-major (c, n)
    return Coloring("row", colors, n_colors, shape, indptr, indices, source)


# ============================================================================
# star coloring (symmetric Hessians)
# ============================================================================
def _greedy_star(adj: list, order: list) -> list:
    """Gebremedhin, Manne & Pothen (2005), Algorithm StarColoringAlg1: a
    proper coloring that also forbids bicolored paths on four vertices."""
    n = len(adj)
    color = [-1] * n
    forbidden = [-1] * (n + 1)
    for v in order:
        for w in adj[v]:
            cw = color[w]
            if cw >= 0:
                forbidden[cw] = v
            for x in adj[w]:
                if x == v:
                    continue
                cx = color[x]
                if cx < 0:
                    continue
                if cw < 0:
                    forbidden[cx] = v            # v-w-x with w still uncolored
                else:
                    for y in adj[x]:
                        if y != w and color[y] == cw:
                            forbidden[cx] = v    # v-w-x-y would be bicolored
                            break
        color[v] = _smallest_free(forbidden, v)
    return color


def _symmetric_lists(indptr, indices, n: int) -> list:
    """Adjacency (no self loops) of the symmetrised pattern."""
    rows = np.repeat(np.arange(n), np.diff(indptr))
    off = rows != indices
    r = np.concatenate([rows[off], indices[off]])
    c = np.concatenate([indices[off], rows[off]])
    key = np.unique(r * n + c)
    r, c = key // n, key % n
    ip = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=ip[1:])
    return _lists(ip, c)


def star_coloring(pattern) -> Coloring:
    """Star coloring of a symmetric (Hessian) pattern with direct recovery:
    entry ``(i, j)`` is read from row ``i`` if ``j`` is alone in its color
    there, else from row ``j`` (always possible for a star coloring), and
    ``(j, i)`` from the same place, so the result is exactly symmetric.

    >>> star_coloring(np.ones((3, 3), dtype=bool)).n_colors
    3
    """
    indptr, indices, shape = _csr(pattern)
    if shape[0] != shape[1]:
        raise ValueError(f"a Hessian pattern is square; got shape {shape}")
    n = shape[0]
    adj = _symmetric_lists(indptr, indices, n)
    # The recovery reads the symmetrised pattern and the pattern's diagonal.
    rows0 = np.repeat(np.arange(n), np.diff(indptr))
    diag = rows0[rows0 == indices]
    key = np.unique(np.concatenate([
        np.repeat(np.arange(n), [len(a) for a in adj]) * n
        + np.asarray([j for a in adj for j in a], dtype=np.int64),
        diag * (n + 1)]))
    rows, cols = key // n, key % n
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    degree = [len(a) for a in adj]
    # Work of the greedy star coloring: sum over paths v-w-x of deg(x).
    second = [sum(degree[x] for x in a) for a in adj]
    work = sum(d * s for d, s in zip(degree, second))
    best = _trivial(n) if work > MAX_WORK else None
    for order in _orders(n, degree) if best is None else ():
        color = _greedy_star(adj, order)
        if best is None or max(color, default=-1) < max(best, default=-1):
            best = color
    colors = np.asarray(best, dtype=np.int64)
    n_colors = int(colors.max()) + 1 if colors.size else 0
    source = _star_source(rows, cols, colors, n_colors, n)
    return Coloring("star", colors, n_colors, (n, n), indptr, cols, source)


def _star_source(rows, cols, colors, n_colors: int, n: int) -> np.ndarray:
    """Where each entry is read in ``B`` (row-major ``(n_colors, n)``, row
    ``c`` = ``H @ indicator(c)``): ``B[c, i]`` is the sum of row ``i`` over
    the columns of color ``c``."""
    count = np.zeros((n, max(n_colors, 1)), dtype=np.int64)
    np.add.at(count, (rows, colors[cols]), 1)
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    from_lo = count[lo, colors[hi]] == 1
    from_hi = count[hi, colors[lo]] == 1
    if not np.all(from_lo | from_hi):
        raise ValueError("not a star coloring: some entry cannot be recovered directly")
    return np.where(from_lo, colors[hi] * n + lo, colors[lo] * n + hi)


def is_star_coloring(pattern, colors) -> bool:
    """Check the two star-coloring conditions (proper; every path on four
    vertices uses at least three colors) by brute force (tests only).

    >>> is_star_coloring(np.ones((2, 2), dtype=bool), np.array([0, 1]))
    True
    """
    indptr, indices, shape = _csr(pattern)
    adj = _symmetric_lists(indptr, indices, shape[0])
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


# ============================================================================
# compressed evaluation: one batched pass over the colors
# ============================================================================
def _seeds(col: Coloring, x, start: int, stop: int):
    """Color indicators ``start:stop`` shaped ``(k,) + x.shape``."""
    dtype = getattr(peel(x), "dtype", np.dtype(np.float64))
    s = seed_matrix(col.colors, col.n_colors, dtype=dtype)[start:stop]
    return s.reshape((stop - start,) + shape_of(x))


def _at(fn, args: tuple, pos: int):
    return lambda xx: fn(*args[:pos], xx, *args[pos + 1:])


def _hessian_task(f, args: tuple, pos: int, col: Coloring):
    """``task(start, stop)``: ``H @ seeds`` for colors ``start:stop`` by one
    batched forward-over-reverse pass (rows: colors)."""
    def task(start: int, stop: int):
        x = args[pos]
        return jvp_flat(grad(_at(f, args, pos)), (x,), (_seeds(col, x, start, stop),),
                        lead_shape=(stop - start,))[1]
    return task


class _Pullback:
    """A tape's pullback with the output it was recorded for."""

    def __init__(self, out, pull):
        self.out, self._pull = out, pull

    def __call__(self, ct):
        return self._pull(ct, batched=True)     # a batch of color seeds


def _jacobian_task(f, args: tuple, pos: int, col: Coloring, pullback=None):
    """``task(start, stop)``: ``J @ seeds`` (column coloring, batched jvp)
    or ``seeds @ J`` (row coloring, batched vjp) for colors ``start:stop``."""
    def task(start: int, stop: int):
        x = args[pos]
        if col.kind == "column":
            return jvp_flat(_at(f, args, pos), (x,), (_seeds(col, x, start, stop),),
                            lead_shape=(stop - start,))[1]
        pull = pullback
        if pull is None:            # in a worker: record the tape here
            pull = _Pullback(*vjp(_at(f, args, pos), x))
        return pull(_seeds(col, pull.out, start, stop))[0]
    return task


def _finish(col: Coloring, pieces: list, shape: tuple, as_sparse: bool):
    pieces = [np.reshape(p, (np.shape(p)[0], -1)) for p in pieces]
    b = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)
    if as_sparse:
        return col.to_csr(b)
    return col.to_dense(b).reshape(shape)


# ----------------------------------------------------------------------------
# the replayed single pass (see dualad.mixed.chunked.record)
# ----------------------------------------------------------------------------
def _staged_positions(args: tuple, pos: int) -> list | None:
    """Arguments fed to a replay as inputs: the differentiated one and every
    other float array (their values may change between calls). ``None`` when
    another argument could carry changing values the replay would bake in
    (containers, objects): then the pass is always interpreted."""
    out = [pos]
    for i, a in enumerate(args):
        if i == pos:
            continue
        if isinstance(a, np.ndarray):
            if a.dtype.kind in "fc":
                out.append(i)
        elif not isinstance(a, (bool, int, float, complex, str, type(None))):
            return None
    return out


def _same_value(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 1 and b.size == 1 and a.shape == b.shape:
        x, y = float(a.reshape(())), float(b.reshape(()))
        return x == y or abs(x - y) <= 1e-9 * abs(y) or (x != x and y != y)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True))


def _replayed(kind: str, f, key_fn, args: tuple, pos: int, col: Coloring):
    """The compressed batch (all colors in one pass) from a replay of the
    pass recorded on the first call (kept with the coloring, which is cached
    per function, shapes and structure); ``None`` when the pass cannot be
    replayed (a value-dependent branch) or a check fails.

    Why a value check: a replay bakes in what ``f`` captured when it was
    recorded; re-evaluating ``f`` natively (one plain NumPy evaluation) and
    comparing with the replayed value catches a changed closure or global.
    """
    entry = col.programs.get(kind)
    if entry is False:
        return None
    staged = _staged_positions(args, pos)
    if staged is None:
        return None
    inputs = tuple(args[i] for i in staged)
    if entry is not None:
        res = entry(*inputs)
        if res is None:
            return None
        if not _same_value(res[1], (key_fn or f)(*args)):
            col.programs.pop(kind, None)
            return None
        return res[0]
    seeds = _seeds(col, args[pos], 0, col.n_colors)

    def program(*vals):
        call = list(args)
        for i, v in zip(staged, vals):
            call[i] = v
        if kind == "jacobian":
            out, t = jvp_flat(_at(f, tuple(call), pos), (call[pos],), (seeds,),
                              lead_shape=(col.n_colors,))
            return t, out
        box = []

        def f_box(xx):
            v = _at(f, tuple(call), pos)(xx)
            box.append(v)
            return v

        t = jvp_flat(grad(f_box), (call[pos],), (seeds,), lead_shape=(col.n_colors,))[1]
        return t, box[0]

    try:
        values, rep = chunked.record(program, inputs)
    except Exception:                 # noqa: BLE001 - any failure: no replay, same answer
        col.programs[kind] = False
        return None
    col.programs[kind] = rep if rep is not None else False
    return values[0]


# ----------------------------------------------------------------------------
# public drivers
# ----------------------------------------------------------------------------
def sparse_hessian(fn, x, *, args: tuple | None = None, argnum: int = 0,
                   sparse: bool = True, chunk: int | None = None, progress: bool = False,
                   executor=None, cache_key=None, replay: bool = True):
    """Hessian of scalar ``fn`` by star coloring: one batched
    forward-over-reverse pass over the colors (``chunk`` colors per pass),
    entries read back directly (exactly symmetric). ``sparse=True`` gives a
    ``scipy.sparse.csr_matrix`` ``(n, n)``, else a dense
    ``x.shape + x.shape`` array. ``args``: the full argument tuple when
    ``fn`` takes more (``x`` is then ``args[argnum]``). A single local pass
    is recorded on the first call and replayed after (``replay=False``
    always interprets).

    >>> import numpy as np
    >>> h = sparse_hessian(lambda x: np.sum(x[1:] * x[:-1]), np.ones(4))
    >>> h.toarray()
    array([[0., 1., 0., 0.],
           [1., 0., 1., 0.],
           [0., 1., 0., 1.],
           [0., 0., 1., 0.]])
    """
    args = (x,) if args is None else tuple(args)
    key_fn = cache_key or fn
    col = coloring_for(key_fn, args, (argnum,), "hessian")
    shape = shape_of(args[argnum]) * 2
    k = chunk or max(1, col.n_colors)
    if replay and executor is None and not progress and k >= col.n_colors:
        b = _replayed("hessian", fn, cache_key, args, argnum, col)
        if b is not None:
            return _finish(col, [b], shape, sparse)
    pieces = chunked.run_chunks(_hessian_task(fn, args, argnum, col), col.n_colors, k,
                        progress=progress, executor=executor, desc="sparse hessian")
    return _finish(col, pieces, shape, sparse)


def sparse_jacobian(fn, x, *, args: tuple | None = None, argnum: int = 0,
                    direction: str = "auto", sparse: bool = True, chunk: int | None = None,
                    progress: bool = False, executor=None, cache_key=None,
                    replay: bool = True):
    """Jacobian of array-valued ``fn`` by coloring: ``direction="fwd"``
    colors columns (one batched jvp), ``"rev"`` rows (one batched vjp),
    ``"auto"`` the fewer colors. CSR ``(n_out, n_in)`` with ``sparse=True``,
    else dense ``out.shape + x.shape``.

    >>> import numpy as np
    >>> sparse_jacobian(lambda x: x[1:] * x[:-1], np.arange(1.0, 4.0), sparse=False)
    array([[2., 1., 0.],
           [0., 3., 2.]])
    """
    args = (x,) if args is None else tuple(args)
    key_fn = cache_key or fn
    if direction == "auto":
        fwd = coloring_for(key_fn, args, (argnum,), "jacobian-fwd")
        rev = coloring_for(key_fn, args, (argnum,), "jacobian-rev")
        col = rev if rev.n_colors < fwd.n_colors else fwd
    elif direction in ("fwd", "rev"):
        col = coloring_for(key_fn, args, (argnum,), "jacobian-" + direction)
    else:
        raise ValueError(f"unknown direction {direction!r}; valid: 'auto', 'fwd', 'rev'")
    x = args[argnum]
    k = chunk or max(1, col.n_colors)
    if (col.kind == "column" and replay and executor is None and not progress
            and k >= col.n_colors):
        b = _replayed("jacobian", fn, cache_key, args, argnum, col)
        if b is not None:
            return _finish(col, [b], shape_of(b)[1:] + shape_of(x), sparse)
    pull = None
    if col.kind == "row" and executor is None:     # record once, pull back per chunk
        pull = _Pullback(*vjp(_at(fn, args, argnum), x))
    pieces = chunked.run_chunks(_jacobian_task(fn, args, argnum, col, pull), col.n_colors, k,
                        progress=progress, executor=executor, desc="sparse jacobian")
    if sparse:
        return _finish(col, pieces, (), True)
    if col.kind == "column":
        out_shape = shape_of(pieces[0])[1:]
    else:
        out_shape = shape_of(pull.out if pull is not None else fn(*args))
    return _finish(col, pieces, tuple(out_shape) + shape_of(x), sparse)
