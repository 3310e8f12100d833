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

import dualad.rules  # noqa: F401  (fills the registry)
from dualad.batching.interpreter import lift, loop_rule
from dualad.core.registry import bind, ndim_of, registry, shape_of


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


# name -> rule; resolved to Primitive objects once, at import (a missing name
# is an error here, never a silently unbatched primitive)
_RULES_BY_NAME = {
    "getitem": _indexing, "scatter_add": _indexing, "reshape": _linear_lead,
    "transpose": _linear_lead, "broadcast_to": _linear_lead, "sum": _linear_lead,
    "cumsum": _linear_lead, "lane_shift": _linear_lead, "astype": _linear_lead,
    "prod": _reduction, "reduce_max": _reduction, "reduce_min": _reduction,
    "norm2": _reduction,
    "inv": _broadcasting, "det": _broadcasting, "slogdet": _broadcasting,
    "pinv": _broadcasting, "cholesky": _broadcasting, "eigh": _broadcasting,
    "qr": _broadcasting, "svd": _broadcasting, "norm_svals": _broadcasting,
    "matmul": _matmul, "solve": _solve, "einsum": _einsum,
    "concatenate": _concatenate, "where": elementwise_rule,
}
# Registered outside the rules package (dualad.custom): resolved on first use.
_LATE_BY_NAME = {"stop_gradient": _broadcasting}

#: primitives that deliberately use the per-example loop
FALLBACK: frozenset = frozenset()

RULES: dict = {registry[name]: rule for name, rule in _RULES_BY_NAME.items()}
RULES.update((p, elementwise_rule) for p in list(registry.values()) if p.elementwise)


def rule_for(prim):
    """The batching rule of ``prim`` (the loop fallback when it has none)."""
    rule = RULES.get(prim)
    if rule is None:
        rule = _LATE_BY_NAME.get(prim.name) if registry.get(prim.name) is prim else None
        if rule is None:
            rule = elementwise_rule if prim.elementwise else loop_rule
        RULES[prim] = rule
    return rule


def uses_fallback(prim) -> bool:
    """Whether ``prim`` is batched by the per-example loop."""
    return rule_for(prim) is loop_rule



