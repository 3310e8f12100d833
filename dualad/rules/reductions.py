"""Reductions: sum (linear), and the rest built on it or declared with rules."""
from __future__ import annotations

import numpy as np

from ..backend import namespace_of
from ..dispatch import REDUCERS, implements
from ..primitive import defprimitive, registry, shape_of
from .shape import normalize_axes


# ============================================================================
# sum: linear; its transpose broadcasts the cotangent back
# ============================================================================
def _sum(x, axis, keepdims=False, lead=0):
    return namespace_of(x).sum(x, axis=tuple(a + lead for a in axis), keepdims=keepdims)


def _expand_back(ct, in_shape, lead, axis, keepdims):
    """Broadcast a reduced cotangent/tangent back to ``lead + in_shape``."""
    shape = shape_of(ct)
    if not keepdims:
        kept = list(shape[lead:])
        for a in axis:
            kept.insert(a, 1)
        ct = registry["reshape"](ct, shape=tuple(kept), lead=lead)
    return registry["broadcast_to"](ct, shape=tuple(in_shape), lead=lead)


defprimitive("sum", _sum, transpose=lambda ct, primals, lead, axis, keepdims: _expand_back(
    ct, shape_of(primals[0]), lead, axis, keepdims))


@implements(np.sum)
def sum_(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    axes = normalize_axes(axis, len(shape_of(x)))
    return registry["sum"](x, axis=axes, keepdims=bool(keepdims))


REDUCERS[(np.add, "reduce")] = lambda x, axis=0, **k: sum_(x, axis=axis, **k)


@implements(np.mean)
def mean(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    axes = normalize_axes(axis, len(shape_of(x)))
    count = int(np.prod([shape_of(x)[a] for a in axes], dtype=np.int64))
    return sum_(x, axis=axes, keepdims=keepdims) / count
