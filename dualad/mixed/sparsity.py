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
cached by :mod:`dualad.mixed.patterns` (per function, input shapes/dtypes and
the zero structure of the other arguments, in :mod:`dualad.mixed.cache`).

Example::

    >>> import numpy as np
    >>> f = lambda x: np.sum((x[1:] - x[:-1] ** 2) ** 2)
    >>> hessian_pattern(f, np.ones(4)).astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 1, 0],
           [0, 1, 1, 1],
           [0, 0, 1, 1]])
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.args import check_outputs
from dualad.core.backend import peel
from dualad.core.dispatch import ObservingTracer
from dualad.core.levels import Level, level_of, new_level, split_at
from dualad.core.registry import Primitive, align, bind, ndim_of, shape_of
from dualad.core.tree import tree_flatten
from dualad.reverse.api import grad
from dualad.rules.contractions import einsum_p, matmul_p
from dualad.rules.indexing import getitem_p, key_info, scatter_add_p
from dualad.rules.joins import concatenate_p
from dualad.rules.reductions import (
    cumsum_p,
    lane_shift_p,
    norm2_p,
    prod_p,
    reduce_max_p,
    reduce_min_p,
    sum_p,
)
from dualad.rules.shape import broadcast_to_p, reshape_p, transpose_p, where_p
from dualad.rules.ufuncs import astype_p, multiply_p

__all__ = ["Pattern", "PatternLevel", "jacobian_pattern", "hessian_pattern"]


# ============================================================================
# the tracer and its interpreter
# ============================================================================
class Pattern(ObservingTracer):
    """A primal value with a packed dependency bit set per element.

    Reading the value from outside the interpreter (``x > 0``, ``if``, an
    argsort: any ``.primal`` read) is observed: the pattern then holds at this
    point only (``level.reads``) and is not reused at other points. Metadata
    (shape, dtype, array type) and the finiteness test are not reads; the
    contract is the one of :mod:`dualad.mixed.replay`.
    """

    __slots__ = ("_value", "pattern", "_level")

    def __init__(self, primal, pattern, level):
        self._value = primal
        self.pattern = pattern
        self._level = level

    def __repr__(self) -> str:
        return f"Pattern(shape={self.shape})"


class PatternLevel(Level):
    """The sparsity interpreter: runs ``prim`` one level down and its sparsity
    rule on the dependency patterns. ``reads`` collects a note per observed
    read of a traced value (the pattern then holds at this point only)."""

    __slots__ = ("reads",)
    kind = "pattern"

    def __init__(self, reads: list):
        super().__init__()
        self.reads = reads

    def observe_finite(self, tracer: Pattern, ok: bool) -> None:
        """The finiteness test of ``safe_mul`` changes no dependency: free."""

    def observe_read(self, tracer: Pattern) -> None:
        self.reads.append(f"a read of a traced value of shape {shape_of(tracer._value)}")

    def process(self, prim, args, params):
        level = self
        primals, pats = split_at(level, args, "pattern", None, primal="_value")
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


_WEIGHTS = np.random.default_rng(20261207)   # fixed: patterns are reproducible


def _linear_rule(prim: Primitive) -> Callable:
    """A linear primitive applied to the dependency indicators, one per input
    along a lead axis, with each indicator scaled by a random weight in
    [1, 2): an output depends on an input iff its value is nonzero. The
    random weights make that exact for any coefficients, negative or complex
    (an FFT of equal weights would cancel; random ones cancel with
    probability zero), not only for sums and copies."""
    def rule(pats, primals, out, **params):
        if any(p is not None for p in pats[1:]):
            return _conservative_rule(pats, primals, out, **params)
        p = pats[0]
        n = p.shape[0] * 8
        bits = _unpack(p, n)
        f = bits * _WEIGHTS.uniform(1.0, 2.0, bits.shape)
        res = prim.impl(f, *[peel(a) for a in primals[1:]],
                        **{**params, "lead": params.get("lead", 0) + 1})
        return _pack(np.asarray(res) != 0)
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


SPARSITY_RULES: dict[Primitive, Callable] = {
    **{p: _structural_rule(p) for p in (getitem_p, reshape_p, transpose_p, broadcast_to_p,
                                        lane_shift_p)},
    multiply_p: _multiply_rule, astype_p: _identity_rule,
    sum_p: _reduce_rule, prod_p: _reduce_rule, reduce_max_p: _reduce_rule,
    reduce_min_p: _reduce_rule, norm2_p: _reduce_rule,
    cumsum_p: _cumsum_rule, where_p: _where_rule, scatter_add_p: _scatter_rule,
    concatenate_p: _concatenate_rule, matmul_p: _matmul_rule, einsum_p: _einsum_rule,
}
"""The primitives with a sharper rule than the default (elementwise OR,
generic linear, conservative), by primitive object."""
for _prim, _rule in SPARSITY_RULES.items():
    _prim.sparsity = _rule


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
        if level_of(leaf) is level:
            bits = _unpack(np.ascontiguousarray(leaf.pattern), n).reshape(n, m)
            rows.append(bits.T)
        else:
            rows.append(np.zeros((m, n), dtype=bool))
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, n), dtype=bool)


def jacobian_pattern(fn: Callable, x, reads: list | None = None) -> np.ndarray:
    """Dense boolean (n_out, n_in) dependency pattern of ``fn`` at ``x``.
    ``reads``: a list that receives a note per observed read of a traced
    value (then the pattern may hold at ``x`` only).

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
    p = jacobian_pattern(grad(fn), x, reads)
    return p | p.T


def _as_float(x):
    x = np.asarray(peel(x)) if not hasattr(x, "shape") else x
    if np.asarray(peel(x)).dtype.kind not in "fc":
        raise TypeError("sparsity needs a floating input (pass e.g. np.asarray(x, dtype=float))")
    return x
