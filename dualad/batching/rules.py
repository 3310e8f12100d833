"""Batching rules, one table keyed by :class:`Primitive` object.

A rule is ``rule(prim, level, vals, batched, params) -> out`` (a tuple for
multi-output primitives): ``vals`` are the arguments one level down, the
batched ones with the batch axis first; the output has it first too. Rules
bind primitives through dispatched NumPy calls, so a batched computation is
still differentiated by the levels below (``grad(vmap(f))``) and a batched
value can be a tracer of a level below (``vmap(grad(f))``).

* elementwise primitives (``partials``): lift ranks, bind once;
* linear primitives with a ``lead`` parameter (getitem, reshape, sum, ...):
  bind with ``lead + 1``, the batch axis is one more leading axis;
* reductions: shift ``axis`` by one; linalg that NumPy broadcasts over leading
  axes (inv, det, eigh, svd, ...): bind unchanged; matmul, solve, einsum,
  concatenate, where: explicit rules;
* :data:`FALLBACK`: primitives batched by a loop over the examples (correct,
  ``size`` times slower); also any primitive registered later without a rule
  (``custom_jvp``/``custom_vjp`` functions unless elementwise).

>>> import numpy as np, dualad as da
>>> da.vmap(lambda a, b: a @ b)(np.ones((4, 2, 3)), np.ones((4, 3))).shape
(4, 2)
"""
from __future__ import annotations

import string

import numpy as np

from dualad.core.registry import bind, ndim_of, registry, shape_of
from dualad.rules.complex import conj_p, imag_p, real_p, to_complex_p
from dualad.rules.contractions import einsum_p, matmul_p
from dualad.rules.eig import eig_p
from dualad.rules.fft import fft_p, irfft_p
from dualad.rules.indexing import getitem_p, scatter_add_p
from dualad.rules.joins import concatenate_p
from dualad.rules.linalg import det_p, inv_p, pinv_p, slogdet_p, solve_p
from dualad.rules.linalg_decomp import cholesky_p, eigh_p, qr_p, svd_p
from dualad.rules.reductions import (
    cumsum_p,
    lane_shift_p,
    norm2_p,
    norm_svals_p,
    prod_p,
    reduce_max_p,
    reduce_min_p,
    sum_p,
)
from dualad.rules.shape import broadcast_to_p, reshape_p, transpose_p, where_p
from dualad.rules.ufuncs import astype_p


def lift(v, core_ndim: int):
    """A batch-first value with unit axes inserted after the batch axis so that
    its per-example rank is ``core_ndim`` (NumPy aligns shapes on the right;
    the batch axis must stay outermost)."""
    s = shape_of(v)
    extra = core_ndim - (len(s) - 1)
    if extra <= 0:
        return v
    return np.reshape(v, s[:1] + (1,) * extra + s[1:])


def loop_rule(prim, level, vals, batched, params):
    """The fallback: bind ``prim`` once per example and stack (correct, slower)."""
    outs = [bind(prim, *[v[i] if b else v for v, b in zip(vals, batched)], **params)
            for i in range(level.size)]
    if prim.n_outputs == 1:
        return np.stack(outs)
    return tuple(np.stack(list(o)) for o in zip(*outs))


def _core(v, b: bool) -> int:
    """Per-example rank of an argument."""
    return ndim_of(v) - 1 if b else ndim_of(v)


def elementwise_rule(prim, level, vals, batched, params):
    r = max(_core(v, b) for v, b in zip(vals, batched))
    return bind(prim, *[lift(v, r) if b else v for v, b in zip(vals, batched)], **params)


def _broadcasting(prim, level, vals, batched, params):
    """Primitives NumPy already maps over leading axes (inv, det, eigh, ...)."""
    return bind(prim, *vals, **params)


def _linear_lead(prim, level, vals, batched, params):
    """Linear primitives taking ``lead`` leading axes that they leave alone."""
    if any(batched[1:]):
        return loop_rule(prim, level, vals, batched, params)
    params = dict(params)
    params["lead"] = params.get("lead", 0) + 1
    return bind(prim, *vals, **params)


def _indexing(prim, level, vals, batched, params):
    """getitem/scatter_add: a key batched by this vmap (an index computed from
    mapped values, e.g. by argmax or argsort) becomes one gather/scatter with
    an ``arange`` over the batch when the key holds only integers and index
    arrays; other batched keys are applied per example. An unbatched key: the
    batch is one more lead axis."""
    key = params["key"]
    if not any(getattr(k, "_level", None) is level for k in key):
        return _linear_lead(prim, level, vals, batched, params)
    if not params.get("lead", 0) and all(isinstance(k, int) or hasattr(k, "shape")
                                         for k in key):
        return _batched_gather(prim, level, vals, batched, params)
    outs = []
    for i in range(level.size):
        k_i = tuple(k.front()[i] if getattr(k, "_level", None) is level else k for k in key)
        outs.append(bind(prim, *[v[i] if b else v for v, b in zip(vals, batched)],
                         **dict(params, key=k_i)))
    return np.stack(outs)


def _batched_gather(prim, level, vals, batched, params):
    """x[i1, ..., ik] per example as X[arange(B), I1, ..., Ik] on the batch
    (all indices advanced and adjacent: NumPy keeps their axes in front)."""
    key = params["key"]
    front = [k.front() if getattr(k, "_level", None) is level else k for k in key]
    is_b = [getattr(k, "_level", None) is level for k in key]
    m = max(ndim_of(k) - 1 if b else ndim_of(k) for k, b in zip(front, is_b))
    new_key = (np.arange(level.size).reshape((level.size,) + (1,) * m),) + tuple(
        lift(k, m) if b else k for k, b in zip(front, is_b))
    v = vals[0] if batched[0] else np.broadcast_to(vals[0], (level.size,) + shape_of(vals[0]))
    extra = {"in_shape": (level.size,) + tuple(params["in_shape"])} if "in_shape" in params else {}
    return bind(prim, v, *vals[1:], **dict(params, key=new_key, **extra))


def _reduction(prim, level, vals, batched, params):
    nd = _core(vals[0], batched[0])
    axis = params.get("axis")
    params = dict(params)
    params["axis"] = (tuple(range(1, nd + 1)) if axis is None
                      else tuple(a % nd + 1 for a in axis) if isinstance(axis, tuple)
                      else axis % nd + 1)
    return bind(prim, *vals, **params)


def _squeeze_axis(v, axis: int):
    s = shape_of(v)
    axis %= len(s)
    return np.reshape(v, s[:axis] + s[axis + 1:])


def _expand_axis(v, axis: int):
    s = shape_of(v)
    axis = axis % (len(s) + 1)
    return np.reshape(v, s[:axis] + (1,) + s[axis:])


def _matmul(prim, level, vals, batched, params):
    (a, b), (ba, bb) = vals, batched
    na, nb = _core(a, ba), _core(b, bb)
    if na == 1:                      # a vector: a row, removed after
        a = _expand_axis(a, -2)
    if nb == 1:                      # b vector: a column
        b = _expand_axis(b, -1)
    stack = max(max(na, 2), max(nb, 2))
    a = lift(a, stack) if ba else a
    b = lift(b, stack) if bb else b
    out = bind(prim, a, b, **params)
    if nb == 1:
        out = _squeeze_axis(out, -1)
    if na == 1:
        out = _squeeze_axis(out, -1 if nb == 1 else -2)
    return out


def _solve(prim, level, vals, batched, params):
    (a, b), (ba, bb) = vals, batched
    vector = _core(b, bb) == 1       # NumPy 2: b is a vector only when 1-d
    if vector:
        b = _expand_axis(b, -1)
    stack = max(_core(a, ba), _core(b, bb) + (1 if vector else 0))
    a = lift(a, stack) if ba else a
    b = lift(b, stack) if bb else b
    out = bind(prim, a, b, **params)
    return _squeeze_axis(out, -1) if vector else out


def _einsum(prim, level, vals, batched, params):
    subs = params["subscripts"]
    ins, rhs = subs.split("->")
    letter = next(c for c in string.ascii_letters if c not in subs)
    ins = [letter + s if b else s for s, b in zip(ins.split(","), batched)]
    return bind(prim, *vals, subscripts=",".join(ins) + "->" + letter + rhs)


def _concatenate(prim, level, vals, batched, params):
    nd = max(_core(v, b) for v, b in zip(vals, batched))
    vals = [v if b else np.broadcast_to(v, (level.size,) + shape_of(v))
            for v, b in zip(vals, batched)]
    return bind(prim, *vals, axis=params["axis"] % nd + 1)


# primitive -> rule (elementwise primitives get theirs generically below)
RULES: dict = {
    getitem_p: _indexing, scatter_add_p: _indexing, reshape_p: _linear_lead,
    transpose_p: _linear_lead, broadcast_to_p: _linear_lead, sum_p: _linear_lead,
    cumsum_p: _linear_lead, lane_shift_p: _linear_lead, astype_p: _linear_lead,
    prod_p: _reduction, reduce_max_p: _reduction, reduce_min_p: _reduction,
    norm2_p: _reduction,
    inv_p: _broadcasting, det_p: _broadcasting, slogdet_p: _broadcasting,
    pinv_p: _broadcasting, cholesky_p: _broadcasting, eigh_p: _broadcasting,
    qr_p: _broadcasting, svd_p: _broadcasting, norm_svals_p: _broadcasting,
    matmul_p: _matmul, solve_p: _solve, einsum_p: _einsum,
    concatenate_p: _concatenate, where_p: elementwise_rule,
    real_p: _linear_lead, imag_p: _linear_lead, conj_p: _linear_lead,
    to_complex_p: _linear_lead, fft_p: _linear_lead, irfft_p: _linear_lead,
    eig_p: _broadcasting,
}
RULES.update((p, elementwise_rule) for p in list(registry.values()) if p.elementwise)

#: primitives that deliberately use the per-example loop
FALLBACK: frozenset = frozenset()

#: the rule for primitives that act on each example independently and that
#: NumPy already maps over leading axes (used by rooms above: custom.py)
broadcasting_rule = _broadcasting


def register_rule(prim, rule) -> None:
    """Give ``prim`` (declared outside rules/, e.g. ``stop_gradient_p``) a
    batching rule."""
    RULES[prim] = rule


def rule_for(prim):
    """The batching rule of ``prim`` (the loop fallback when it has none)."""
    rule = RULES.get(prim)
    if rule is None:
        rule = RULES[prim] = elementwise_rule if prim.elementwise else loop_rule
    return rule


def uses_fallback(prim) -> bool:
    """Whether ``prim`` is batched by the per-example loop."""
    return rule_for(prim) is loop_rule



