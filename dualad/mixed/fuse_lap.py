"""Fold a layer's bias add into the fused forward-Laplacian update that
reads it, in a program recorded by ``da.jit``.

``z = h @ W + b`` then ``tanh`` under :func:`dualad.laplacian`: the recorded
program holds ``v = add(z0, b)`` and ``LapUpdate(v, g, lap)``; when nothing
else reads ``v``, the update adds ``b`` itself as it reads ``z0`` (one pass
over memory fewer, no ``(M, N)`` temporary; the same IEEE additions, so the
same bits). See :class:`dualad.kernels.second.LapUpdate`.

>>> import numpy as np, dualad as da
>>> X = np.random.default_rng(0).normal(size=(512, 2))
>>> W, b = np.ones((2, 64)), np.full(64, 0.5)
>>> lap = da.laplacian(lambda X: np.tanh(X @ W + b).sum(axis=1), batch_axis=0)
>>> f = da.jit(lap)
>>> bool(np.array_equal(f(X), lap(X))), bool(np.array_equal(f(X), lap(X)))
(True, True)
>>> f.stats["replays"]
1
"""
from __future__ import annotations

import numpy as np

from dualad.kernels.second import LapUpdate, can_fold

__all__ = ["fold_bias"]


def _meta_of(a, meta):
    if a.__class__ is int:
        return meta.get(a, (None, None))
    v = a.value
    return (np.shape(v), getattr(v, "dtype", None))


def fold_bias(ops: list, outputs, meta: dict) -> list:
    """``ops`` (``(impl, spec, params, slots, multi, guards)``) with each
    foldable ``add`` + :class:`LapUpdate` pair made one ``LapUpdate`` call."""
    uses: dict = {}
    for op in ops:
        for a in op[1]:
            if a.__class__ is int:
                uses[a] = uses.get(a, 0) + 1
        for s, _ in op[5]:
            uses[s] = uses.get(s, 0) + 1
    for o in outputs:
        if o.__class__ is int:
            uses[o] = uses.get(o, 0) + 1
    adds = {}
    for k, (impl, spec, params, slots, multi, guards) in enumerate(ops):
        if impl is np.add and not params and not multi and not guards and len(spec) == 2 \
                and spec[0].__class__ is int and uses.get(slots[0]) == 1 \
                and meta.get(slots[0]) == meta.get(spec[0]) \
                and can_fold(meta[spec[0]], _meta_of(spec[1], meta)):
            adds[slots[0]] = k
    out, dropped = [], set()
    for k, op in enumerate(ops):
        impl, spec = op[0], op[1]
        if type(impl) is LapUpdate and not impl.biased and spec and spec[0] in adds:
            j = adds[spec[0]]
            x, b = ops[j][1]
            dropped.add(j)
            op = (impl.with_bias(), (x,) + tuple(spec[1:]) + (b,)) + tuple(op[2:])
        out.append((k, op))
    return [op for k, op in out if k not in dropped]
