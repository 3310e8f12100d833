"""The structured interpreter: :class:`StructuredDual` and :class:`StructuredLevel`.

``StructuredLevel.process`` runs every primitive on the primal (one level down)
and moves the tangent with a *structural rule* when the tangent is sparse
(:class:`Structured` or :class:`Coo`); when no rule applies it densifies the
tangents and runs the registry's own ``jvp`` on the dense batch, so no
primitive needs a new rule and the result is always exact. Here live the
rules that combine several tangents: elementwise primitives (values times the
partials, terms with equal maps merged), ``where`` (a select per term, so the
branch not taken never leaks inf/NaN) and ``concatenate``; the one-input
shape, indexing and reduction rules are in :mod:`.rules`.

Example::

    >>> import numpy as np
    >>> from dualad.structured import hessian_structured
    >>> hessian_structured(lambda x: np.sum(np.where(x > 0, x ** 3, 1.0 / x)),
    ...                    np.array([2.0, -1.0]))
    array([[12.,  0.],
           [ 0., -2.]])
"""
from __future__ import annotations

import numpy as np

from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, split_at
from dualad.core.registry import bind, eval_with_partials, shape_of
from dualad.core.zero import Zero
from dualad.forward.dual import TangentTracer
from dualad.rules.joins import concatenate_p
from dualad.rules.shape import where_p
from dualad.structured.rules import RULES
from dualad.structured.tangents import (
    Context,
    Coo,
    Structured,
    align_terms,
    coo_broadcast,
    coo_map_cols,
    coo_scale,
    coo_select,
    densify,
    merge_terms,
    scale_terms,
    to_coo,
)

_SPARSE = (Structured, Coo)


class StructuredDual(TangentTracer):
    """A primal with a structured (or COO, or dense ``(n,) + shape``) tangent."""

    __slots__ = ()


# ============================================================================
# the interpreter
# ============================================================================
def _no_complex(prim, primals, params) -> None:
    """Structured tangents are real; complex intermediates are refused (the
    dense Hessian modes support them)."""
    dtype = params.get("dtype")
    if dtype is not None and np.dtype(dtype).kind == "c" or any(
            isinstance(p, complex) or getattr(getattr(p, "dtype", None), "kind", "") == "c"
            for p in primals):
        raise TypeError(f"hessian(mode='structured') does not support complex values (at "
                        f"{prim.name}); use mode='fwd-rev' or another dense mode.")


class StructuredLevel(Level):
    """The structured interpreter: primal one level down; tangent by a
    structural rule on index-map tangents, else densely. ``ctx``: the pass
    context (dimension, dtype, statistics, a short common-subexpression cache)."""

    __slots__ = ("ctx",)
    kind = "structured"

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx

    def process(self, prim, args, params):
        level = self
        ctx: Context = self.ctx
        key = None
        if prim.elementwise and not params and all(
                isinstance(a, (Tracer, float, int)) for a in args):
            # Common subexpressions: the reverse rule of ``d * d`` multiplies the
            # same cotangent by the same partial twice; a short cache of the last
            # elementwise calls (by argument identity; tracers are immutable, so
            # plain arrays, which could be changed in place, are left out) does
            # that work once.
            key = (prim,) + tuple(map(id, args))
            for k, keep, res in ctx.recent:
                if k == key and all(a is b for a, b in zip(keep, args)):
                    return res
        primals, tangents = split_at(level, args, "tangent", Zero)
        _no_complex(prim, primals, params)
        sparse = any(isinstance(t, _SPARSE) for t in tangents)
        out = t_out = None
        if sparse:
            rule = STRUCTURED_RULES.get(prim)
            if rule is None and prim.elementwise:
                rule = _elementwise
            if rule is None:
                reason = "rule:" + prim.name
            elif params.get("lead"):
                # Why: a primal with batch axes of its own (a batched cotangent)
                # breaks the "maps cover the whole primal" invariant.
                reason = "lead"
            else:
                out, t_out = rule(ctx, prim, primals, tangents, params)
                if isinstance(t_out, str):
                    reason, t_out = t_out, None
                else:
                    ctx.count_op()
            if t_out is None:
                tangents = [densify(ctx, t, reason) for t in tangents]
        if t_out is None:
            if out is None:
                out = bind(prim, *primals, **params)
            t_out = prim.jvp(primals, tangents, out, **params)
        res = _wrap(level, ctx, prim, out, t_out)
        if key is not None:
            ctx.recent.append((key, args, res))
            if len(ctx.recent) > 2:
                del ctx.recent[0]
        return res


def _wrap(level, ctx, prim, out, t_out):
    if prim.n_outputs == 1:
        if isinstance(t_out, Structured) and not t_out.terms:
            t_out = Zero
        if t_out is Zero:
            return out
        if not isinstance(t_out, _SPARSE):
            _note_dense(ctx, t_out)
        return StructuredDual._make(out, t_out, level)
    res = []
    for o, t in zip(out, t_out):
        if t is Zero:
            res.append(o)
        else:
            _note_dense(ctx, t)
            res.append(StructuredDual._make(o, t, level))
    return tuple(res)


def _note_dense(ctx, t) -> None:
    size = getattr(t, "size", 1)
    for s in (ctx.stats, ctx.local):
        if s is not None and size > s.max_dense:
            s.max_dense = size


def _plain(tangents, prim) -> str | None:
    """The fallback reason when a dense tangent meets sparse ones, else None."""
    for t in tangents:
        if t is not Zero and not isinstance(t, _SPARSE):
            return "mixed:" + prim.name
    return None


# ============================================================================
# elementwise primitives: values times partials
# ============================================================================
def _elementwise(ctx, prim, primals, tangents, params):
    reason = _plain(tangents, prim)
    if reason:
        return None, reason
    out, parts = eval_with_partials(prim, primals, params)
    if parts is None:
        parts = prim.partials(out, *primals, **params)
    out_shape = shape_of(out)
    nd = len(out_shape)
    if any(isinstance(t, Coo) for t in tangents):
        return out, _elementwise_coo(ctx, parts, tangents, out_shape)
    terms = []
    for p, t in zip(parts, tangents):
        if t is Zero or p is None:
            continue
        terms.extend(scale_terms(align_terms(ctx, t.terms, len(t.shape), nd), p,
                                 prim.singular))
    terms = merge_terms(ctx, terms)
    res = Structured(out_shape, terms)
    if res.slots() > ctx.n:
        return out, densify(ctx, res, "slots")
    return out, res


def _as_coo(ctx, t, out_shape, nd):
    """A Structured or COO tangent as COO over the (broadcast) output shape."""
    if isinstance(t, Coo):
        return coo_broadcast(ctx, t, out_shape)
    return to_coo(ctx, Structured(out_shape, align_terms(ctx, t.terms, len(t.shape), nd)))


def _elementwise_coo(ctx, parts, tangents, out_shape):
    nd = len(out_shape)
    chunks = []
    for p, t in zip(parts, tangents):
        if t is Zero or p is None:
            continue
        chunks.extend(coo_scale(_as_coo(ctx, t, out_shape, nd), p, out_shape).chunks)
    return Coo(out_shape, chunks)


# ============================================================================
# where: a select per term; concatenate: terms joined slot by slot
# ============================================================================
def _where(ctx, prim, primals, tangents, params):
    reason = _plain(tangents, prim)
    if reason:
        return None, reason
    cond, x, y = primals
    out = bind(prim, cond, x, y)
    out_shape = shape_of(out)
    nd = len(out_shape)
    c = np.asarray(cond, dtype=bool)     # broadcasts over the leading slot axis
    if any(isinstance(t, Coo) for t in tangents):
        chunks = []
        for t, keep in ((tangents[1], True), (tangents[2], False)):
            if t is not Zero:
                coo = coo_select(_as_coo(ctx, t, out_shape, nd), c if keep else ~c, out_shape)
                chunks.extend(coo.chunks)
        return out, Coo(out_shape, chunks)
    terms = []
    for t, keep in ((tangents[1], True), (tangents[2], False)):
        if t is Zero:
            continue
        for i, v in align_terms(ctx, t.terms, len(t.shape), nd):
            # Select, never multiply: an inf/NaN value in the branch that is
            # not taken must not leak (0 * inf = NaN).
            terms.append((i, np.where(c, v, 0.0) if keep else np.where(c, 0.0, v)))
    return out, Structured(out_shape, merge_terms(ctx, terms))


def _concatenate(ctx, prim, primals, tangents, params):
    reason = _plain(tangents, prim)
    if reason:
        return None, reason
    out = bind(prim, *primals, **params)
    axis = params["axis"]
    if any(isinstance(t, Coo) for t in tangents):
        return out, _concatenate_coo(ctx, primals, tangents, shape_of(out), axis)
    n_terms = max(len(t.terms) for t in tangents if t is not Zero)
    terms = []
    for j in range(n_terms):
        k = max(t.terms[j][0].shape[0] for t in tangents
                if t is not Zero and j < len(t.terms))
        idx_parts, val_parts = [], []
        for x, t in zip(primals, tangents):
            full = (k,) + shape_of(x)
            if t is Zero or j >= len(t.terms):
                idx_parts.append(np.zeros(full, dtype=np.intp))
                val_parts.append(np.zeros(full, dtype=ctx.dtype))
                continue
            i, v = t.terms[j]
            kk = i.shape[0]
            own = (kk,) + shape_of(x)
            i, v = np.broadcast_to(i, own), np.broadcast_to(v, own)
            if kk < k:   # pad the slots with zero values (direction 0, harmless)
                pad = (k - kk,) + shape_of(x)
                i = np.concatenate([i, np.zeros(pad, dtype=np.intp)], axis=0)
                v = np.concatenate([v, np.zeros(pad, dtype=v.dtype)], axis=0)
            idx_parts.append(i)
            val_parts.append(v)
        terms.append((np.concatenate(idx_parts, axis=axis + 1),      # behind the slots
                      np.concatenate(val_parts, axis=axis + 1)))
    return out, Structured(shape_of(out), terms)


def _concatenate_coo(ctx, primals, tangents, out_shape, axis):
    """Each input's entries moved to its block of the output."""
    pos = ctx.positions(out_shape)
    chunks, start = [], 0
    for x, t in zip(primals, tangents):
        size = shape_of(x)[axis]
        if t is not Zero:
            block = (slice(None),) * axis + (slice(start, start + size),)
            coo = _as_coo(ctx, t, shape_of(x), len(shape_of(x)))
            chunks.extend(coo_map_cols(coo, np.ravel(pos[block]), out_shape).chunks)
        start += size
    return Coo(out_shape, chunks)


STRUCTURED_RULES = {**RULES, where_p: _where, concatenate_p: _concatenate}
"""Every structural rule by primitive object; elementwise primitives without
one use :func:`_elementwise`, anything else densifies."""
