"""Sparse tangent representations for structured forward-over-reverse.

A structured Hessian pass seeds ``n`` directions (one per input entry) and
pushes them through the reverse gradient. A dense batch of ``n`` tangents per
intermediate costs ``n * size`` per operation; here a tangent is kept in one
of three forms, from the most to the least structured:

* :class:`Structured`: a list of *terms* ``(idx, val)``. ``idx`` is an integer
  array and ``val`` a float array, both of ``ndim = len(S) + 1`` and
  broadcastable to ``(K,) + S``: at element ``e`` the tangent has value
  ``val[k, e]`` in direction ``idx[k, e]`` (k < K, the *slots*) and zero in
  every other direction. A pair-level array of a pair potential has ``K = 3``
  slots per atom it involves, so elementwise work costs ``O(size * K)``. The
  slot axis leads (like the batch axis of dense tangents) so that a partial of
  shape ``S`` broadcasts over it with NumPy's fast contiguous inner loops.
* :class:`Coo`: ``(rows, cols, vals)`` chunks, ``rows`` the direction and
  ``cols`` the flat position in ``S``. This is what scatters into the inputs
  produce (the Hessian rows) and it absorbs anything ``Structured`` can hold.
* dense: a plain array of shape ``(n,) + S`` (the fallback; exact, slower).

Every conversion goes down that list and is exact. The :class:`Context`
carries the number of directions, the dtype, memo tables (so index maps
derived the same way are the same object and terms merge by identity) and
the statistics the planner quotes.

Example::

    >>> import numpy as np
    >>> ctx = Context(3, np.dtype(np.float64))
    >>> t = Structured((3,), [(np.arange(3).reshape(1, 3), np.ones((1, 1)))])
    >>> densify(ctx, t, "example")
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from dualad.core.backend import all_finite_value

__all__ = ["Context", "Coo", "Stats", "Structured", "TooDense", "densify", "stats"]


# ============================================================================
# statistics: what fell back, and how large the dense tangents got
# ============================================================================
class Stats:
    """Counters of one or more structured passes (read by tests and the planner).

    ``fallbacks[reason]`` counts tangents of more than one element made dense,
    by reason: ``"rule:matmul"`` (a primitive with no structural rule),
    ``"mixed:add"`` (a dense tangent meeting a sparse one), ``"lead"`` (a
    primitive applied with batch axes of its own), ``"slots"`` (an elementwise
    result with more slots than directions). ``dense_sums`` counts reductions
    whose result is cheapest dense (a scalar energy); ``max_dense`` is the
    largest dense tangent met, in elements; ``structured_ops`` counts the
    primitives a structural rule handled.
    """

    __slots__ = ("fallbacks", "dense_sums", "max_dense", "structured_ops", "passes")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.fallbacks: Counter = Counter()
        self.dense_sums = 0
        self.max_dense = 0
        self.structured_ops = 0
        self.passes = 0

    def __repr__(self) -> str:
        return (f"Stats(passes={self.passes}, structured_ops={self.structured_ops}, "
                f"fallbacks={dict(self.fallbacks)}, dense_sums={self.dense_sums}, "
                f"max_dense={self.max_dense})")


stats = Stats()


# ============================================================================
# the tangent types
# ============================================================================
class Structured:
    """Terms ``(idx, val)`` broadcastable to ``(K,) + shape`` (see the module)."""

    __slots__ = ("shape", "terms")

    def __init__(self, shape: tuple, terms: list):
        self.shape = shape
        self.terms = terms

    def slots(self) -> int:
        return sum(i.shape[0] for i, _ in self.terms)

    def __repr__(self) -> str:
        return f"Structured(shape={self.shape}, K={[i.shape[0] for i, _ in self.terms]})"


class Coo:
    """Chunks ``(rows, cols, vals)`` of broadcast-compatible arrays: the tangent
    in direction ``rows[e]`` at flat position ``cols[e]`` gets ``vals[e]``
    (duplicates add)."""

    __slots__ = ("shape", "chunks")

    def __init__(self, shape: tuple, chunks: list):
        self.shape = shape
        self.chunks = chunks

    def nnz(self) -> int:
        return sum(math.prod(np.broadcast_shapes(*(a.shape for a in c))) for c in self.chunks)

    def __repr__(self) -> str:
        return f"Coo(shape={self.shape}, nnz={self.nnz()})"


# ============================================================================
# the pass context: directions, dtype, memo tables, statistics
# ============================================================================
class TooDense(Exception):
    """A structured probe stopped before a dense fallback over its limit."""


class Context:
    """State of one structured pass (kept in the level's ``data``)."""

    __slots__ = ("n", "dtype", "memo", "same_memo", "support", "recent", "stats", "local",
                 "dense_limit")

    def __init__(self, n: int, dtype, local: Stats | None = None,
                 dense_limit: int | None = None):
        self.n = n
        # A probe gives up (TooDense) before making a dense tangent this large.
        self.dense_limit = dense_limit
        self.dtype = dtype
        self.memo: dict = {}          # (id(src), key) -> (src, keep, result)
        self.same_memo: dict = {}     # (what, id(a), id(b)) -> (a, b, answer)
        self.support: dict = {}       # id(idx) -> (idx, mask): where its values may be nonzero
        self.recent: list = []        # (key, args, result) of the last elementwise calls
        self.stats = stats
        self.local = local            # a second Stats (structured_fits' probe)

    # -- statistics ---------------------------------------------------------
    def count(self, reason: str, size: int = 0) -> None:
        if self.dense_limit is not None and size > self.dense_limit:
            raise TooDense(f"structured falls back to a dense tangent of {size} elements "
                           f"({reason}), over the probe's limit of {self.dense_limit}")
        for s in (self.stats, self.local):
            if s is not None:
                s.fallbacks[reason] += 1
                s.max_dense = max(s.max_dense, size)

    def count_op(self) -> None:
        self.stats.structured_ops += 1
        if self.local is not None:
            self.local.structured_ops += 1

    def count_dense_sum(self) -> None:
        for s in (self.stats, self.local):
            if s is not None:
                s.dense_sums += 1

    # -- memo tables ----------------------------------------------------------
    def derive(self, src, key, make, keep=None):
        """``make()``, memoised on (the object ``src``, ``key``). Why: index maps
        derived the same way from the same map are then the same object, and
        terms with identical maps merge by an ``is`` test (no index work)."""
        k = (id(src), key)
        hit = self.memo.get(k)
        if hit is not None and hit[0] is src and hit[1] is keep:
            return hit[2]
        res = make()
        self.memo[k] = (src, keep, res)   # holding src keeps its id unique
        return res

    def positions(self, shape: tuple):
        """``arange(size).reshape(shape)``: flat position of every element."""
        return self.derive(None, ("pos", shape),
                           lambda: np.arange(math.prod(shape), dtype=np.intp).reshape(shape))

    def slot_of(self, one, wide):
        """A boolean mask (``wide``'s slots, broadcast shape) marking, at each
        element, the one slot of ``wide`` holding ``one``'s direction; None
        unless every element has exactly one such slot. Memoised."""
        k = ("slot", id(one), id(wide))
        hit = self.same_memo.get(k)
        if hit is not None and hit[0] is one and hit[1] is wide:
            return hit[2]
        m = None
        first = (slice(None),) + (0,) * (one.ndim - 1)
        # Cheap reject first (the first element's direction is not a slot),
        # then the full comparison and a count of the matching slots.
        if (one.ndim == wide.ndim and one.shape[0] and wide.shape[0]
                and bool((wide[first] == one[first][0]).any())):
            try:
                m = one == wide
            except ValueError:        # shapes that do not broadcast
                m = None
        if m is not None:
            count = m[0].astype(np.uint8)
            for j in range(1, m.shape[0]):
                count += m[j]
            if not bool((count == 1).all()):
                m = None
        self.same_memo[k] = (one, wide, m)
        return m

    def set_support(self, idx, mask) -> None:
        """Record that every value paired with ``idx`` is zero outside ``mask``
        (a term placed into zeros by a scatter)."""
        self.support[id(idx)] = (idx, mask)

    def union(self, a, b):
        """One map for two placed terms whose maps agree wherever both may be
        nonzero (e.g. the scatters of ``u[1:]`` and ``u[:-1]`` of a chain, both
        holding atom ``b`` on their overlap), else None. Memoised, so repeated
        merges give the same object."""
        sa, sb = self.support.get(id(a)), self.support.get(id(b))
        if sa is None or sb is None or sa[0] is not a or sb[0] is not b or a.shape != b.shape:
            return None
        k = ("union", id(a), id(b))
        hit = self.same_memo.get(k)
        if hit is not None and hit[0] is a and hit[1] is b:
            return hit[2]
        ma, mb = sa[1], sb[1]
        merged = None
        if bool(np.all((a == b) | ~(ma & mb))):
            merged = np.where(ma, a, b)
            self.set_support(merged, ma | mb)
        self.same_memo[k] = (a, b, merged)
        return merged

    def same(self, a, b) -> bool:
        """Whether two index maps are equal (identity first, then memoised)."""
        if a is b:
            return True
        if a.shape != b.shape:
            return False
        k = ("same", id(a), id(b))
        hit = self.same_memo.get(k)
        if hit is not None and hit[0] is a and hit[1] is b:
            return hit[2]
        eq = bool(np.array_equal(a, b))
        self.same_memo[k] = (a, b, eq)
        return eq


# ============================================================================
# term helpers
# ============================================================================
def align_terms(ctx: Context, terms: list, nd_in: int, nd_out: int) -> list:
    """Unit axes after the slot axis, so terms of a rank-``nd_in`` array
    broadcast like the array does against a rank-``nd_out`` output."""
    extra = nd_out - nd_in
    if extra <= 0:
        return terms
    pad = (1,) * extra
    return [(ctx.derive(i, ("pad", extra), lambda i=i: i.reshape(i.shape[:1] + pad + i.shape[1:])),
             v.reshape(v.shape[:1] + pad + v.shape[1:])) for i, v in terms]


def merge_terms(ctx: Context, terms: list) -> list:
    """Terms with equal index maps become one (their values add); one-slot
    terms whose direction is among a wider term's slots are absorbed into it."""
    if len(terms) < 2:
        return terms
    out: list = []
    for i, v in terms:
        for k, (j, w) in enumerate(out):
            if ctx.same(i, j):
                out[k] = (j, w + v)
                break
            if ctx.support:
                u = ctx.union(j, i)
                if u is not None:
                    out[k] = (u, w + v)
                    break
        else:
            out.append((i, v))
    if len(out) > 1 and any(i.shape[0] == 1 for i, _ in out) and any(
            i.shape[0] > 1 for i, _ in out):
        out = _absorb(ctx, out)
    return out


def _absorb(ctx: Context, terms: list) -> list:
    """Why: on a pair array the cotangent has a term with the three coordinate
    slots of atom a (from the reduction over xyz) and one with the single slot
    ``(a, c)`` at coordinate ``c`` (from the displacement itself). Folding the
    second into the first keeps 2 terms instead of 4 for every later operation
    and scatter."""
    res = [t for t in terms if t[0].shape[0] > 1]
    for i, v in terms:
        if i.shape[0] > 1:
            continue
        for k, (j, w) in enumerate(res):
            if j.shape[0] > 1 and j.ndim == i.ndim:
                m = ctx.slot_of(i, j)
                if m is not None:
                    res[k] = (j, w + np.where(m, v, 0.0))
                    break
        else:
            res.append((i, v))
    return res


def scale_terms(terms: list, p, singular: bool) -> list:
    """Every term times the partial ``p`` (a scalar or an array broadcastable to
    the output shape). ``singular``: an infinite partial times a zero tangent
    value is 0, as ``_zero.safe_mul`` does for dense tangents."""
    if isinstance(p, (int, float)):
        if p == 1:
            return terms
        if p == -1:
            return [(i, -v) for i, v in terms]
        if not singular or math.isfinite(p):
            return [(i, v * p) for i, v in terms]
    pk = p            # shape S at most: broadcasts over the leading slot axis
    if singular and not all_finite_value(pk):      # (a guard under da.jit, not a read)
        return [(i, np.where(v == 0, 0.0, pk * v).astype(v.dtype, copy=False))
                for i, v in terms]
    return [(i, pk * v) for i, v in terms]


# ============================================================================
# conversions: Structured -> Coo -> dense
# ============================================================================
def to_coo(ctx: Context, t) -> Coo:
    """A Structured tangent as COO chunks (same entries, positions explicit)."""
    if isinstance(t, Coo):
        return t
    pos = ctx.positions(t.shape)
    return Coo(t.shape, [(i, pos, v) for i, v in t.terms])


def coo_flat(chunks: list, size: int):
    """``(flat, vals)``: 1-D ``rows * size + cols`` and the matching values."""
    flats, vals = [], []
    for rows, cols, v in chunks:
        f = rows * size + cols
        shape = np.broadcast_shapes(f.shape, v.shape)
        flats.append(np.broadcast_to(f, shape).ravel())
        vals.append(np.broadcast_to(v, shape).ravel())
    if len(flats) == 1:
        return flats[0], vals[0]
    return np.concatenate(flats), np.concatenate(vals)


def _bincount(ctx: Context, flat, vals, length: int):
    out = np.bincount(flat, weights=vals, minlength=length)
    return out if out.dtype == ctx.dtype else out.astype(ctx.dtype)


def densify(ctx: Context, t, reason: str | None = None):
    """The tangent as a dense ``(n,) + shape`` array (``reason``: count it as a
    fallback). Plain arrays pass through."""
    if not isinstance(t, (Structured, Coo)):
        return t
    size = math.prod(t.shape)
    if reason is not None and size > 1:
        # (A one-element tangent made dense is gradient-sized: no structure
        # is lost, e.g. adding two scalar energies. Not counted.)
        ctx.count(reason, ctx.n * size)
    coo = to_coo(ctx, t)
    if not coo.chunks:
        return np.zeros((ctx.n,) + tuple(t.shape), dtype=ctx.dtype)
    flat, vals = coo_flat(coo.chunks, size)
    return _bincount(ctx, flat, vals, ctx.n * size).reshape((ctx.n,) + tuple(t.shape))


def fold_constant_axes(idx, val, axes, shape: tuple):
    """``val`` summed over those ``axes`` along which the map ``idx`` is
    constant (unit), keeping them as unit axes; where ``val`` is broadcast
    there too, scaled by the axis length instead (no sum of copies)."""
    summed, scale = [], 1
    for a in axes:
        if idx.shape[a + 1] != 1:
            continue
        if val.shape[a + 1] == 1:
            scale *= shape[a]
        else:
            summed.append(a + 1)
    if summed:
        val = val.sum(axis=tuple(summed), keepdims=True)
    return val * scale if scale != 1 else val


def dense_total(ctx: Context, terms: list, shape: tuple):
    """The dense ``(n,)`` tangent of the sum of a Structured tangent over all
    its elements: one weighted bincount per term. Along an axis where a
    term's map is constant its values are summed first (or, broadcast
    there too, scaled by the axis length), so map and values then share one
    shape and flatten without copies."""
    # a sum of new arrays, not ``zeros += ...``: under a replay recording the
    # bincounts are traced, and an in-place write into a plain array refuses them
    out = None
    for i, v in terms:
        v = fold_constant_axes(i, v, range(len(shape)), shape)
        full = np.broadcast_shapes(i.shape, v.shape)
        part = np.bincount(np.broadcast_to(i, full).ravel(),
                           weights=np.broadcast_to(v, full).ravel(), minlength=ctx.n)
        out = part if out is None else out + part
    if out is None:
        out = np.zeros(ctx.n, dtype=np.float64)
    return out if out.dtype == ctx.dtype else out.astype(ctx.dtype)


def coo_map_cols(coo: Coo, table, shape: tuple) -> Coo:
    """Positions moved by ``table`` (old flat position -> new flat position)."""
    return Coo(shape, [(r, table[c], v) for r, c, v in coo.chunks])


def coo_scale(coo: Coo, p, shape: tuple) -> Coo:
    """Every entry times the partial ``p`` at its position (``p`` broadcastable
    to ``shape``)."""
    if isinstance(p, (int, float)):
        if p == 1:
            return Coo(shape, coo.chunks)
        return Coo(shape, [(r, c, v * p) for r, c, v in coo.chunks])
    pf = np.broadcast_to(np.asarray(p), shape).ravel()
    singular = not bool(np.isfinite(pf).all())
    chunks = []
    for r, c, v in coo.chunks:
        pv = pf[c] * v
        if singular:
            pv = np.where(v == 0, 0.0, pv).astype(v.dtype, copy=False)
        chunks.append((r, c, pv))
    return Coo(shape, chunks)


def coo_select(coo: Coo, mask, shape: tuple) -> Coo:
    """Entries kept where the boolean ``mask`` (broadcastable to ``shape``) is
    true, zeroed elsewhere: a select, so inf/NaN values cannot leak."""
    mf = np.broadcast_to(np.asarray(mask, dtype=bool), shape).ravel()
    return Coo(shape, [(r, c, np.where(mf[c], v, 0.0)) for r, c, v in coo.chunks])


def coo_gather(ctx: Context, coo: Coo, src, out_shape: tuple) -> Coo:
    """The COO tangent of ``y`` where ``y.flat[q] = x.flat[src.flat[q]]`` (a
    gather, possibly repeating entries; ``src < 0``: no source, zero). Each
    entry at input position ``c`` is copied to every ``q`` with ``src[q] == c``
    (a sorted join), so repeats and broadcasts come out exact."""
    order, srt = ctx.derive(src, "sorted", lambda: _sorted(np.ravel(src)))
    chunks = []
    for r, c, v in coo.chunks:
        shape = np.broadcast_shapes(r.shape, c.shape, v.shape)
        r, c, v = (np.broadcast_to(a, shape).ravel() for a in (r, c, v))
        lo = np.searchsorted(srt, c, "left")
        cnt = np.searchsorted(srt, c, "right") - lo
        total = int(cnt.sum())
        if total == 0:
            continue
        if total == c.size and bool((cnt == 1).all()):      # one target each
            chunks.append((r, order[lo], v))
            continue
        rep = np.repeat(np.arange(c.size), cnt)
        offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        chunks.append((r[rep], order[lo[rep] + offs], v[rep]))
    return Coo(tuple(out_shape), chunks)


def _sorted(src):
    order = np.argsort(src, kind="stable")
    return order, src[order]


def coo_broadcast(ctx: Context, coo: Coo, out_shape: tuple) -> Coo:
    """A COO tangent broadcast (like its primal) to ``out_shape``."""
    shape = tuple(coo.shape)
    if shape == tuple(out_shape):
        return coo
    pos = ctx.positions(shape)
    src = ctx.derive(pos, ("bcast", tuple(out_shape)), lambda: np.broadcast_to(
        pos.reshape((1,) * (len(out_shape) - len(shape)) + shape), out_shape))
    return coo_gather(ctx, coo, src, out_shape)
