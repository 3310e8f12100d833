"""Sparsity detection: which outputs depend on which inputs, through the same
primitive registry every other interpreter reads.

A :class:`Pattern` tracer carries its primal value and a *dependency set*
per element: sparse index sets (:class:`dualad.mixed.indexsets.IndexSets`,
slices into a shared index buffer), so memory and time follow the pattern,
not elements x n. Each primitive says how dependencies flow
(``Primitive.sparsity``), as an element map run by one compiled union sweep:

* elementwise: the union of the broadcast input sets (a product with a
  constant keeps only the entries where the constant is nonzero);
* structural primitives (getitem, reshape, transpose, broadcast_to,
  lane_shift): the primitive itself applied to element ids (no copy of the
  sets); scatter_add: the elements landing on each output;
* reductions and scans (sum, cumsum, max, min, prod, norm2): unions over
  the reduced axes, running unions along the scanned one;
* where, concatenate, matmul, einsum: dedicated rules (matmul/einsum
  through the element connectivity with the other operand's structural
  nonzeros);
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
from dualad.mixed.indexsets import (
    IndexSets,
    Pool,
    elementwise,
    seed,
    structural,
    to_csr,
    union_all,
)
from dualad.reverse.api import grad
from dualad.rules.contractions import einsum_p, matmul_p
from dualad.rules.indexing import getitem_p, scatter_add_p
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
    """A primal value with a dependency index set per element.

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
# helpers on dependency sets (dualad.mixed.indexsets)
# ============================================================================
# A contraction's element connectivity is found by pushing an identity over
# the traced operand's elements through it: dense in (elements x outputs), so
# only up to this many entries; beyond, the conservative rule.
MAX_CONNECTIVITY = 2**24


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _traced(pats) -> list:
    return [k for k, p in enumerate(pats) if p is not None]


def _nonzero_mask(value, pat) -> np.ndarray:
    """Where an operand may be nonzero: its value for a constant, and also
    every element that depends on an input for a traced operand (its zeros
    at this point are not structural)."""
    m = np.asarray(peel(value)) != 0
    if pat is not None:
        m = m | pat.nonempty()
    return m


def _from_connectivity(conn: np.ndarray, ids: np.ndarray) -> tuple:
    """(eptr, eidx) from a boolean ``(in elements, out elements)`` map."""
    o, i = np.nonzero(conn.T)
    eptr = np.zeros(conn.shape[1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(o, minlength=conn.shape[1]), out=eptr[1:])
    return eptr, ids.ravel()[i]


# ============================================================================
# rules: rule(pats, primals, out, **params) -> IndexSets (tuple if several)
# ============================================================================
def _elementwise_rule(pats, primals, out, masks=None, **params):
    """Each output element unites the sets of the elements it broadcasts
    from; ``masks[k]``: where operand k contributes (None: everywhere)."""
    ks = _traced(pats)
    return elementwise([pats[k] for k in ks], shape_of(out),
                       None if masks is None else [masks[k] for k in ks])


def _multiply_rule(pats, primals, out, **params):
    # d(x*c) = c dx: a constant factor's zeros cut the dependency (exactly,
    # since a constant is the same at every point).
    masks = [None, None]
    for k in (0, 1):
        if pats[k] is not None and pats[1 - k] is None:
            m = np.asarray(peel(primals[1 - k])) != 0
            if not m.all():
                masks[k] = m
    return _elementwise_rule(pats, primals, out, masks=masks)


def _linear_rule(prim: Primitive) -> Callable:
    """A linear primitive in its first operand: its element connectivity is
    the image of an identity over that operand's elements, one element per
    lead slice, so no two inputs can cancel; an output depends on an input
    iff its coefficient is nonzero (``!= 0``: negative or complex
    coefficients, as an FFT's, keep their dependencies)."""
    def rule(pats, primals, out, **params):
        if any(p is not None for p in pats[1:]):
            return _conservative_rule(pats, primals, out, **params)
        x = pats[0]
        n_out = _size(shape_of(out))
        if x.size * n_out > MAX_CONNECTIVITY:
            return _conservative_rule(pats, primals, out, **params)
        eye = np.eye(x.size, dtype=np.float64).reshape((x.size,) + x.shape)
        res = prim.impl(eye, *[peel(a) for a in primals[1:]],
                        **{**params, "lead": params.get("lead", 0) + 1})
        pool = Pool([x])
        eptr, eidx = _from_connectivity(np.asarray(res).reshape(x.size, n_out) != 0,
                                        pool.ids(0))
        return pool.gather(shape_of(out), eidx, eptr)
    return rule


def _structural_rule(prim: Primitive) -> Callable:
    """Primitives that only move, copy or zero-fill elements act on the
    slice bounds of the sets (:func:`dualad.mixed.indexsets.structural`)."""
    def rule(pats, primals, out, **params):
        if any(p is not None for p in pats[1:]):
            return _conservative_rule(pats, primals, out, **params)
        return structural(pats[0], lambda a: prim.impl(a, **params), shape_of(out))
    return rule


def _scatter_rule(pats, primals, out, key, in_shape, lead=0):
    """scatter_add: each output element unites the cotangent elements that
    land on it (found by indexing the output's element ids with ``key``)."""
    if any(p is not None for p in pats[1:]):
        return _conservative_rule(pats, primals, out)
    pool = Pool([pats[0]])
    out_shape = shape_of(out)
    n_out = _size(out_shape)
    target = np.asarray(getitem_p.impl(np.arange(n_out).reshape(out_shape), key=key,
                                       lead=lead)).ravel()
    src = pool.ids(0).ravel()
    if target.shape != src.shape:
        target = np.broadcast_to(target, src.shape)   # defensive: same-shape by contract
    order = np.argsort(target, kind="stable")
    eptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.bincount(target, minlength=n_out), out=eptr[1:])
    return pool.gather(out_shape, src[order], eptr)


def _identity_rule(pats, primals, out, **params):
    return pats[0]


def _reduce_rule(pats, primals, out, axis=(), keepdims=False, lead=0, **params):
    p = pats[0]
    pool = Pool([p])
    ids = pool.ids(0)
    axes = tuple(range(lead, ids.ndim)) if axis is None else tuple(a + lead for a in axis)
    if not axes:
        return p
    moved = np.moveaxis(ids, axes, tuple(range(ids.ndim - len(axes), ids.ndim)))
    n_out = _size(shape_of(out))
    return pool.gather(shape_of(out), moved.reshape(n_out, -1))


def _cumsum_rule(pats, primals, out, axis, reverse=False, lead=0):
    pool = Pool([pats[0]])
    ids = pool.ids(0)
    ax = (axis[0] if isinstance(axis, tuple) else axis) + lead
    lines = np.moveaxis(ids, ax, -1).reshape(-1, ids.shape[ax])
    return pool.scan(lines[:, ::-1] if reverse else lines)


def _where_rule(pats, primals, out, **params):
    # Both branches: the condition is a constant here but may differ elsewhere.
    return _elementwise_rule([None, pats[1], pats[2]], primals, out)


def _concatenate_rule(pats, primals, out, axis):
    ks = _traced(pats)
    pool = Pool([pats[k] for k in ks])
    parts = []
    for k, x in enumerate(primals):
        parts.append(pool.ids(ks.index(k)) if k in ks
                     else np.full(shape_of(x), -1, dtype=np.int64))
    return pool.gather(shape_of(out), np.concatenate(parts, axis=axis).reshape(-1, 1))


def _contraction_rule(pats, primals, out, contract: Callable):
    """matmul / einsum: output elements unite, for each traced operand, the
    elements that meet a possibly-nonzero element of the others.
    ``contract(ops, k)`` applies the contraction with operand ``k`` carrying
    one extra leading axis (an identity over its elements)."""
    ks = _traced(pats)
    n_out = _size(shape_of(out))
    if any(pats[k].size * n_out > MAX_CONNECTIVITY for k in ks):
        return _conservative_rule(pats, primals, out)
    pool = Pool([pats[k] for k in ks])
    masks = [_nonzero_mask(x, p).astype(np.float32) for x, p in zip(primals, pats)]
    conn = []
    for k in ks:
        size = pats[k].size
        eye = np.eye(size, dtype=np.float32).reshape((size,) + pats[k].shape)
        ops = [eye if i == k else m for i, m in enumerate(masks)]
        conn.append(np.asarray(contract(ops, k)).reshape(size, n_out) > 0)
    eptr, eidx = _from_connectivity(np.concatenate(conn, axis=0),
                                    np.concatenate([pool.ids(j).ravel()
                                                    for j in range(len(ks))]))
    return pool.gather(shape_of(out), eidx, eptr)


def _matmul_rule(pats, primals, out):
    nd = ndim_of(out)
    nds = [ndim_of(x) for x in primals]

    def contract(ops, k):
        ops = list(ops)
        ops[k] = align(ops[k], nds[k], nd)      # the identity axis stays in front
        return np.matmul(*ops)
    if 1 in nds:
        # Vector operands: matmul's lead-axis rules differ; einsum states them.
        a, b = ("ij" if nds[0] == 2 else "j"), ("jk" if nds[1] == 2 else "j")
        if nds[0] <= 2 and nds[1] <= 2:
            r = (a[0] if nds[0] == 2 else "") + (b[1] if nds[1] == 2 else "")
            return _einsum_rule(pats, primals, out, f"{a},{b}->{r}")
        return _conservative_rule(pats, primals, out)
    return _contraction_rule(pats, primals, out, contract)


def _einsum_rule(pats, primals, out, subscripts):
    lhs, rhs = subscripts.split("->")
    ins = lhs.split(",")

    def contract(ops, k):
        subs = ["..." + s if i == k else s for i, s in enumerate(ins)]
        return np.einsum(",".join(subs) + "->..." + rhs, *ops, optimize=len(ops) > 2)
    return _contraction_rule(pats, primals, out, contract)


def _conservative_rule(pats, primals, out, **params):
    """Every output element depends on everything any input depends on."""
    u = union_all([p for p in pats if p is not None])
    n_in = next(p for p in pats if p is not None).n_in
    outs = out if isinstance(out, tuple) else (out,)
    res = []
    for o in outs:
        m = _size(shape_of(o))
        res.append(IndexSets(shape_of(o), np.zeros(m, dtype=np.int64),
                             np.full(m, u.shape[0], dtype=np.int64), u, n_in))
    return tuple(res) if isinstance(out, tuple) else res[0]


SPARSITY_RULES: dict[Primitive, Callable] = {
    **{p: _structural_rule(p) for p in (getitem_p, reshape_p, transpose_p, broadcast_to_p,
                                        lane_shift_p)},
    multiply_p: _multiply_rule, astype_p: _identity_rule,
    sum_p: _reduce_rule, prod_p: _reduce_rule, reduce_max_p: _reduce_rule,
    reduce_min_p: _reduce_rule, norm2_p: _reduce_rule,
    cumsum_p: _cumsum_rule, where_p: _where_rule, scatter_add_p: _scatter_rule,
    concatenate_p: _concatenate_rule, matmul_p: _matmul_rule, einsum_p: _einsum_rule,
}
"""The primitives with a sharper rule than the default (elementwise union,
generic linear, conservative), by primitive object."""
for _prim, _rule in SPARSITY_RULES.items():
    _prim.sparsity = _rule


# ============================================================================
# drivers: Jacobian and Hessian patterns
# ============================================================================
# Patterns up to this many entries (n_out x n_in) come back as dense boolean
# arrays (as they always did); larger ones as scipy.sparse CSR matrices.
DENSE_MAX = 2**22


def _seed(x, level) -> Pattern:
    """``x`` as a Pattern whose element i depends on input i alone."""
    return Pattern(x, seed(shape_of(x)), level)


def _out_csr(out, level, n: int):
    """CSR ``(n_out, n_in)`` booleans from the output leaves."""
    leaves = tree_flatten(out)[0]
    sets = [leaf.pattern if level_of(leaf) is level else None for leaf in leaves]
    return to_csr(sets, [shape_of(leaf) for leaf in leaves], n)


def _result(m):
    """Dense booleans for a small pattern, the CSR matrix for a large one."""
    return m.toarray() if m.shape[0] * m.shape[1] <= DENSE_MAX else m


def jacobian_pattern(fn: Callable, x, reads: list | None = None):
    """Boolean (n_out, n_in) dependency pattern of ``fn`` at ``x``: a dense
    array up to :data:`DENSE_MAX` entries, else a ``scipy.sparse`` CSR
    matrix. ``reads``: a list that receives a note per observed read of a
    traced value (then the pattern may hold at ``x`` only).

    >>> import numpy as np
    >>> jacobian_pattern(lambda x: x[1:] * x[:-1], np.ones(3)).astype(int)
    array([[1, 1, 0],
           [0, 1, 1]])
    """
    x = _as_float(x)
    n = _size(shape_of(x))
    with new_level(PatternLevel(reads if reads is not None else [])) as level:
        out = fn(_seed(x, level))
        check_outputs(out)
        return _result(_out_csr(out, level, n))


def hessian_pattern(fn: Callable, x, reads: list | None = None):
    """Boolean symmetric (n, n) pattern of the Hessian of scalar ``fn``: the
    Jacobian pattern of its reverse gradient (dense or CSR as
    :func:`jacobian_pattern`).

    >>> import numpy as np
    >>> hessian_pattern(lambda x: (x[0] * x[1]) + x[2] ** 3, np.ones(3)).astype(int)
    array([[0, 1, 0],
           [1, 0, 0],
           [0, 0, 1]])
    """
    x = _as_float(x)
    n = _size(shape_of(x))
    with new_level(PatternLevel(reads if reads is not None else [])) as level:
        out = grad(fn)(_seed(x, level))
        check_outputs(out)
        p = _out_csr(out, level, n)
    p = (p + p.T).tocsr()
    p.sort_indices()
    return _result(p)


def _as_float(x):
    x = np.asarray(peel(x)) if not hasattr(x, "shape") else x
    if np.asarray(peel(x)).dtype.kind not in "fc":
        raise TypeError("sparsity needs a floating input (pass e.g. np.asarray(x, dtype=float))")
    return x
