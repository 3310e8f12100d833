"""Sparsity detection: which outputs depend on which inputs, through the same
primitive registry every other interpreter reads.

A :class:`Pattern` tracer carries its primal value and a *dependency set*
per element: a bit array over the ``n`` inputs, packed eight inputs to a byte
along a leading axis (shape ``(ceil(n/8),) + primal.shape``, uint8). Each
primitive says how dependencies flow (``Primitive.sparsity``):

* elementwise: the OR of the rank-aligned input patterns (a product with a
  constant keeps only the entries where the constant is nonzero);
* linear structural primitives (getitem, reshape, transpose, broadcast_to,
  lane_shift): the primitive itself applied to the packed bits (``lead + 1``);
* reductions and scans (sum, cumsum, max, min, prod, norm2): an OR-reduce or
  OR-scan along the reduced axes;
* where, concatenate, matmul, einsum: dedicated rules (matmul/einsum as
  pattern products with the other operand's structural nonzeros);
* anything else: conservative, every output element depends on the union of
  all input dependencies. Conservative is always correct: it can only cost
  colors, never give a wrong derivative.

The Hessian pattern is the Jacobian pattern of the reverse gradient: the
tape's vjp rules are dispatched NumPy calls, so the patterns flow through the
backward pass (the cotangent seeds are constants).

Patterns are found at the given point (branches follow its values), and
cached per function, input shapes/dtypes and the zero structure of the other
arguments; :func:`clear_cache` drops them.

Example::

    >>> import numpy as np, dualad as da
    >>> f = lambda x: np.sum((x[1:] - x[:-1] ** 2) ** 2)
    >>> da.sparsity(f, np.ones(4), kind="hessian").toarray().astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 1, 0],
           [0, 1, 1, 1],
           [0, 0, 1, 1]])
"""
from __future__ import annotations

import hashlib
import sys
import weakref
from collections.abc import Callable

import numpy as np

from dualad.core.args import check_outputs
from dualad.core.backend import peel
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, new_level, split_at
from dualad.core.registry import Primitive, align, bind, ndim_of, registry, shape_of
from dualad.core.tree import tree_flatten
from dualad.mixed.fingerprint import fingerprint, self_contained

__all__ = ["Pattern", "sparsity", "jacobian_pattern", "hessian_pattern", "clear_cache",
           "pattern_key", "coloring_for", "cache_for", "volatile_reads"]


# ============================================================================
# the tracer and its interpreter
# ============================================================================
class Pattern(Tracer):
    """A primal value with a packed dependency bit set per element.

    Reading the value from outside the interpreter (``x > 0``, ``if``, an
    argsort) is noted: the pattern may then hold at this point only
    (``level.reads``), and is not reused at other points.
    """

    __slots__ = ("_primal", "pattern", "_level")

    def __init__(self, primal, pattern, level):
        self._primal = primal
        self.pattern = pattern
        self._level = level

    @property
    def primal(self):
        from dualad.mixed.chunked import classify_read
        kind, name = classify_read(sys._getframe(1))
        if kind == "value":
            self._level.reads.append(name)
        return self._primal

    @property
    def shape(self) -> tuple:
        return shape_of(self._primal)

    @property
    def dtype(self):
        v = peel(self._primal)
        return getattr(v, "dtype", None) or np.result_type(v)

    def __repr__(self) -> str:
        return f"Pattern(shape={self.shape})"


class PatternLevel(Level):
    """The sparsity interpreter: runs ``prim`` one level down and its sparsity
    rule on the dependency patterns. ``reads`` collects the names of code that
    read a traced value (the pattern then holds at this point only)."""

    __slots__ = ("reads",)
    kind = "pattern"

    def __init__(self, reads: list):
        super().__init__()
        self.reads = reads

    def process(self, prim, args, params):
        level = self
        primals, pats = split_at(level, args, "pattern", None, primal="_primal")
        out = bind(prim, *primals, **params)
        if all(p is None for p in pats):
            return out
        rule = prim.sparsity or _default_rule(prim)
        pout = rule(pats, primals, out, **params)
        # A value that depends on no input is a constant: downstream rules then
        # use its zeros (e.g. a zero cotangent cuts a product's dependencies).
        if prim.n_outputs == 1:
            return Pattern(out, pout, level) if pout.any() else out
        return tuple(Pattern(o, p, level) if p.any() else o for o, p in zip(out, pout))


def _default_rule(prim: Primitive) -> Callable:
    if prim.linear:
        return _linear_rule(prim)
    if prim.elementwise:
        return _elementwise_rule
    return _conservative_rule


# ============================================================================
# helpers on packed patterns: shape (nb,) + value shape, uint8
# ============================================================================
def _nb(pats) -> int:
    return next(p.shape[0] for p in pats if p is not None)


def _full(p, out_shape: tuple):
    """``p`` (already rank-aligned) broadcast to ``(nb,) + out_shape``."""
    target = (p.shape[0],) + tuple(out_shape)
    return p if p.shape == target else np.broadcast_to(p, target)


def _union(pats) -> np.ndarray:
    """(nb,) bits: every dependency of every input."""
    total = np.zeros(_nb(pats), dtype=np.uint8)
    for p in pats:
        if p is not None:
            total |= np.bitwise_or.reduce(p.reshape(p.shape[0], -1), axis=1)
    return total


def _unpack(p, n: int | None = None) -> np.ndarray:
    """(n,) + shape booleans from a packed pattern."""
    return np.unpackbits(p, axis=0, count=n).astype(bool)


def _pack(b) -> np.ndarray:
    return np.packbits(np.asarray(b, dtype=bool), axis=0)


def _nonzero_mask(value, pat) -> np.ndarray:
    """Where an operand may be nonzero: its value for a constant, and also
    every element that depends on an input for a traced operand (its zeros
    at this point are not structural)."""
    m = np.asarray(peel(value)) != 0
    if pat is not None:
        m = m | np.bitwise_or.reduce(pat, axis=0).astype(bool)
    return m


# ============================================================================
# rules: rule(pats, primals, out, **params) -> packed pattern (tuple if several)
# ============================================================================
def _elementwise_rule(pats, primals, out, **params):
    out_nd = ndim_of(out)
    total = None
    for p, x in zip(pats, primals):
        if p is not None:
            a = align(p, ndim_of(x), out_nd)
            total = a if total is None else total | a
    return _full(total, shape_of(out))


def _multiply_rule(pats, primals, out, **params):
    # d(x*c) = c dx: a constant factor's zeros cut the dependency (exactly,
    # since a constant is the same at every point).
    out_nd = ndim_of(out)
    total = None
    for i, (p, x) in enumerate(zip(pats, primals)):
        if p is None:
            continue
        a = align(p, ndim_of(x), out_nd)
        other, other_p = primals[1 - i], pats[1 - i]
        if other_p is None:
            mask = np.asarray(peel(other)) != 0
            if not mask.all():
                a = np.where(mask, a, np.uint8(0))
        total = a if total is None else total | a
    return _full(total, shape_of(out))


def _linear_rule(prim: Primitive) -> Callable:
    """A linear primitive on nonnegative 0/1 floats maps to nonnegatives: its
    nonzeros are exactly the OR of the dependencies (the generic route)."""
    def rule(pats, primals, out, **params):
        if any(p is not None for p in pats[1:]):
            return _conservative_rule(pats, primals, out, **params)
        p = pats[0]
        n = p.shape[0] * 8
        f = _unpack(p, n).astype(np.float32)
        res = prim.impl(f, *[peel(a) for a in primals[1:]],
                        **{**params, "lead": params.get("lead", 0) + 1})
        return _pack(np.asarray(res) > 0)
    return rule


def _structural_rule(prim: Primitive) -> Callable:
    """Primitives that only move, copy or zero-fill elements act on the packed
    bytes directly (with one more lead axis)."""
    def rule(pats, primals, out, **params):
        if any(p is not None for p in pats[1:]):
            return _conservative_rule(pats, primals, out, **params)
        return prim.impl(pats[0], **{**params, "lead": params.get("lead", 0) + 1})
    return rule


def _scatter_rule(pats, primals, out, key, in_shape, lead=0):
    """scatter_add on packed bits: an OR-scatter (``bitwise_or.at``), as
    ``rules.indexing._scatter_add`` with one more lead axis."""
    from dualad.rules.indexing import key_info
    if any(p is not None for p in pats[1:]):
        return _conservative_rule(pats, primals, out)
    ct, lead = pats[0], lead + 1
    z = np.zeros(ct.shape[:lead] + tuple(in_shape), dtype=np.uint8)
    full = (slice(None),) * lead + key
    basic, front, nb = key_info(key)
    if basic:
        z[full] = ct
        return z
    if front:
        ct = np.moveaxis(ct, tuple(range(lead)), tuple(range(nb, nb + lead)))
    np.bitwise_or.at(z, full, ct)
    return z


def _identity_rule(pats, primals, out, **params):
    return pats[0]


def _reduce_rule(pats, primals, out, axis=(), keepdims=False, lead=0, **params):
    p = pats[0]
    if not axis:
        return p
    return np.bitwise_or.reduce(p, axis=tuple(a + lead + 1 for a in axis), keepdims=keepdims)


def _cumsum_rule(pats, primals, out, axis, reverse=False, lead=0):
    p = pats[0]
    ax = (axis[0] if isinstance(axis, tuple) else axis) + lead + 1
    if reverse:
        return np.flip(np.bitwise_or.accumulate(np.flip(p, ax), axis=ax), ax)
    return np.bitwise_or.accumulate(p, axis=ax)


def _where_rule(pats, primals, out, **params):
    # Both branches: the condition is a constant here but may differ elsewhere.
    _, x, y = primals
    out_nd = ndim_of(out)
    total = None
    for p, v in ((pats[1], x), (pats[2], y)):
        if p is not None:
            a = align(p, ndim_of(v), out_nd)
            total = a if total is None else total | a
    return _full(total, shape_of(out))


def _concatenate_rule(pats, primals, out, axis):
    nb = _nb(pats)
    parts = [p if p is not None else np.zeros((nb,) + shape_of(x), dtype=np.uint8)
             for p, x in zip(pats, primals)]
    return np.concatenate(parts, axis=axis + 1)


def _matmul_rule(pats, primals, out):
    (a, b), (pa, pb) = primals, pats
    n = _nb(pats) * 8
    nd = ndim_of(out)
    total = 0
    if pa is not None:
        ua = align(_unpack(pa, n).astype(np.float32), ndim_of(a), nd)
        total = total + np.matmul(ua, _nonzero_mask(b, pb).astype(np.float32))
    if pb is not None:
        ub = align(_unpack(pb, n).astype(np.float32), ndim_of(b), nd)
        total = total + np.matmul(_nonzero_mask(a, pa).astype(np.float32), ub)
    return _pack(total > 0)


def _einsum_rule(pats, primals, out, subscripts):
    lhs, rhs = subscripts.split("->")
    ins = lhs.split(",")
    n = _nb(pats) * 8
    masks = [_nonzero_mask(x, p).astype(np.float32) for x, p in zip(primals, pats)]
    total = 0
    for k, p in enumerate(pats):
        if p is None:
            continue
        ops = [_unpack(p, n).astype(np.float32) if i == k else m for i, m in enumerate(masks)]
        subs = ["..." + s if i == k else s for i, s in enumerate(ins)]
        total = total + np.einsum(",".join(subs) + "->..." + rhs, *ops,
                                  optimize=len(ops) > 2)
    return _pack(np.asarray(total) > 0)


def _conservative_rule(pats, primals, out, **params):
    """Every output element depends on everything any input depends on."""
    u = _union(pats)
    outs = out if isinstance(out, tuple) else (out,)
    res = tuple(np.broadcast_to(u.reshape((-1,) + (1,) * ndim_of(o)),
                                (u.shape[0],) + shape_of(o)) for o in outs)
    return res if isinstance(out, tuple) else res[0]


def _register_rules() -> None:
    """Fill ``Primitive.sparsity`` for the primitives with a sharper rule than
    the default (elementwise OR, generic linear, conservative)."""
    structural = ("getitem", "reshape", "transpose", "broadcast_to", "lane_shift")
    rules = {name: None for name in structural}
    rules.update({"multiply": _multiply_rule, "astype": _identity_rule,
                  "sum": _reduce_rule, "prod": _reduce_rule, "reduce_max": _reduce_rule,
                  "reduce_min": _reduce_rule, "norm2": _reduce_rule,
                  "cumsum": _cumsum_rule, "where": _where_rule, "scatter_add": _scatter_rule,
                  "concatenate": _concatenate_rule, "matmul": _matmul_rule,
                  "einsum": _einsum_rule})
    for name, rule in rules.items():
        prim = registry.get(name)
        if prim is not None and prim.sparsity is None:
            prim.sparsity = rule if rule is not None else _structural_rule(prim)


_register_rules()


# ============================================================================
# drivers: Jacobian and Hessian patterns
# ============================================================================
def _seed(x, level) -> Pattern:
    """``x`` as a Pattern whose element i depends on input i alone."""
    n = int(np.prod(shape_of(x), dtype=np.int64))
    eye = _pack(np.eye(n, dtype=bool))
    return Pattern(x, eye.reshape((eye.shape[0],) + shape_of(x)), level)


def _out_bits(out, level, n: int) -> np.ndarray:
    """(n_out, n_in) booleans from the output leaves."""
    rows = []
    for leaf in tree_flatten(out)[0]:
        m = int(np.prod(shape_of(leaf), dtype=np.int64))
        if getattr(leaf, "_level", None) is level:
            bits = _unpack(np.ascontiguousarray(leaf.pattern), n).reshape(n, m)
            rows.append(bits.T)
        else:
            rows.append(np.zeros((m, n), dtype=bool))
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, n), dtype=bool)


def jacobian_pattern(fn: Callable, x, reads: list | None = None) -> np.ndarray:
    """Dense boolean (n_out, n_in) dependency pattern of ``fn`` at ``x``.
    ``reads``: a list that receives the names of the functions that read a
    traced value (then the pattern may hold at ``x`` only).

    >>> import numpy as np
    >>> jacobian_pattern(lambda x: x[1:] * x[:-1], np.ones(3)).astype(int)
    array([[1, 1, 0],
           [0, 1, 1]])
    """
    x = _as_float(x)
    n = int(np.prod(shape_of(x), dtype=np.int64))
    with new_level(PatternLevel(reads if reads is not None else [])) as level:
        out = fn(_seed(x, level))
        check_outputs(out)
        return _out_bits(out, level, n)


def hessian_pattern(fn: Callable, x, reads: list | None = None) -> np.ndarray:
    """Dense boolean symmetric (n, n) pattern of the Hessian of scalar ``fn``:
    the Jacobian pattern of its reverse gradient.

    >>> import numpy as np
    >>> hessian_pattern(lambda x: (x[0] * x[1]) + x[2] ** 3, np.ones(3)).astype(int)
    array([[0, 1, 0],
           [1, 0, 0],
           [0, 0, 1]])
    """
    from dualad.reverse.api import grad
    p = jacobian_pattern(grad(fn), x, reads)
    return p | p.T


def _as_float(x):
    x = np.asarray(peel(x)) if not hasattr(x, "shape") else x
    if np.asarray(peel(x)).dtype.kind not in "fc":
        raise TypeError("sparsity needs a floating input (pass e.g. np.asarray(x, dtype=float))")
    return x


# ============================================================================
# cache: per function, input shape/dtype and the other arguments' structure
# ============================================================================
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STRONG: dict = {}     # functions that cannot be weakly referenced (ufuncs, builtins)


def clear_cache() -> None:
    """Forget every cached pattern, coloring, recorded pass and plan.

    >>> clear_cache()
    """
    _CACHE.clear()
    _STRONG.clear()


def cache_for(fn) -> dict:
    """The per-function cache dict (shared by sparsity, coloring and planner)."""
    try:
        d = _CACHE.get(fn)
        if d is None:
            d = _CACHE[fn] = {}
        return d
    except TypeError:
        return _STRONG.setdefault(id(fn), {})


def _digest(value) -> object:
    """A cheap key for a held-fixed argument: shape, dtype and zero structure
    (what a pattern can depend on); scalars by value."""
    v = peel(value)
    if isinstance(v, (bool, int, float, complex, str, type(None))):
        return v
    if isinstance(v, np.ndarray):
        # Float values only matter through their zeros; integer and boolean
        # arrays (indices, masks) with every value.
        data = np.packbits(v != 0) if v.dtype.kind in "fc" else np.ascontiguousarray(v)
        return (v.shape, v.dtype.str, hashlib.blake2b(data.tobytes(), digest_size=16).digest())
    leaves, td = tree_flatten(v)
    if len(leaves) == 1 and leaves[0] is v:
        return ("id", id(v))
    return (str(td), tuple(_digest(leaf) for leaf in leaves))


_MAX_ENTRIES = 256


def _bounded(store: dict) -> dict:
    """A per-function cache, emptied when it grows past ``_MAX_ENTRIES`` (a
    closure that changes every call would otherwise add an entry each time)."""
    if len(store) > _MAX_ENTRIES:
        store.clear()
    return store


def pattern_key(kind: str, args: tuple, positions: tuple, fn: Callable | None = None) -> tuple:
    """Cache key: the kind, each differentiated argument's shape and dtype,
    and a digest of the others; with ``fn``, also ``fn``'s structure
    fingerprint (:mod:`dualad.mixed.fingerprint`), so a changed closure or global
    can never reuse a stale pattern, coloring or recorded pass."""
    parts = []
    for i, a in enumerate(args):
        if i in positions:
            v = peel(a)
            parts.append((shape_of(v), np.asarray(v).dtype.str if not hasattr(v, "dtype")
                          else v.dtype.str))
        else:
            parts.append(_digest(a))
    key = (kind, tuple(positions), tuple(parts))
    if fn is None:
        return key
    # A function that can only see its arguments needs no fingerprint.
    return key + (("self-contained",) if self_contained(fn) else fingerprint(fn, args, positions),)


# ============================================================================
# public entry point
# ============================================================================
def sparsity(fn: Callable, x, kind: str = "jacobian", *, cache: bool = True):
    """The sparsity pattern of ``fn``'s Jacobian (``(n_out, n_in)``) or, for a
    scalar ``fn``, of its Hessian (``(n, n)``, symmetric) at ``x``, as a boolean
    ``scipy.sparse.csr_matrix`` (inputs and outputs flattened in C order).

    >>> import numpy as np, dualad as da
    >>> da.sparsity(lambda x: np.cumsum(x), np.ones(3)).toarray().astype(int)
    array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 1]])
    """
    import scipy.sparse as sp
    if kind not in ("jacobian", "hessian"):
        raise ValueError(f"unknown sparsity kind {kind!r}; valid kinds are 'jacobian', 'hessian'")
    dense = pattern(fn, (x,), (0,), kind, cache=cache)
    return sp.csr_matrix(dense)


def pattern(fn: Callable, args: tuple, positions: tuple, kind: str, *,
            cache: bool = True) -> np.ndarray:
    """Cached dense boolean pattern of ``fn`` w.r.t. ``args[positions[0]]``
    (one differentiated argument, the others held fixed).

    >>> import numpy as np
    >>> pattern(lambda x, c: x * c, (np.ones(2), np.array([0.0, 2.0])), (0,), "jacobian")
    array([[False, False],
           [False,  True]])
    """
    if len(positions) != 1:
        raise ValueError("sparsity detection takes one differentiated argument")
    pos = positions[0]
    key = pattern_key("pattern-" + kind, args, positions, fn)
    store = _bounded(cache_for(fn)) if cache else {}
    hit = store.get(key)
    if hit is not None:
        return hit

    def f_x(xx):
        return fn(*args[:pos], xx, *args[pos + 1:])

    finder = hessian_pattern if kind == "hessian" else jacobian_pattern
    reads: list = []
    result = finder(f_x, args[pos], reads)
    result.setflags(write=False)
    if cache:
        if reads:
            # The function read a traced value (a branch, a data-dependent
            # index): the pattern holds at this point only. Not reused.
            store[("volatile",) + key] = tuple(dict.fromkeys(reads))
        else:
            store[key] = result
    return result


def volatile_reads(fn: Callable, args: tuple, positions: tuple, kind: str) -> tuple:
    """Names of the readers of traced values seen when the pattern was last
    found (empty when it holds at every point with the same structure).

    >>> import numpy as np
    >>> f = lambda x: np.sort(x) * 2.0
    >>> _ = pattern(f, (np.ones(3),), (0,), "jacobian")
    >>> volatile_reads(f, (np.ones(3),), (0,), "jacobian")
    ('sort (indexing.py)',)
    """
    key = pattern_key("pattern-" + kind, args, positions, fn)
    return cache_for(fn).get(("volatile",) + key, ())


def coloring_for(fn: Callable, args: tuple, positions: tuple, kind: str, *,
                 cache: bool = True):
    """Cached coloring of ``fn``'s pattern: ``kind`` ``"hessian"`` (star),
    ``"jacobian-fwd"`` (columns) or ``"jacobian-rev"`` (rows).

    >>> import numpy as np
    >>> coloring_for(lambda x: np.sum(x[1:] * x[:-1]), (np.ones(9),), (0,), "hessian").n_colors
    3
    """
    from dualad.mixed.coloring import column_coloring, row_coloring, star_coloring
    makers = {"hessian": star_coloring, "jacobian-fwd": column_coloring,
              "jacobian-rev": row_coloring}
    if kind not in makers:
        raise ValueError(f"unknown coloring kind {kind!r}")
    key = pattern_key("coloring-" + kind, args, positions, fn)
    store = _bounded(cache_for(fn)) if cache else {}
    hit = store.get(key)
    if hit is not None:
        return hit
    pkind = "hessian" if kind == "hessian" else "jacobian"
    dense = pattern(fn, args, positions, pkind, cache=cache)
    col = makers[kind](dense)
    if cache and not volatile_reads(fn, args, positions, pkind):
        store[key] = col
    return col
