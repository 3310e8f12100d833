"""The batching interpreter: :class:`BatchLevel` and :class:`BatchTracer`.

Every batching rule receives the values one level down with the batch axis
moved to the front (``batched[i]`` says which arguments carry it) and returns
outputs with the batch axis in front: one convention, so the rules stay short.

Example::

    >>> import numpy as np
    >>> from dualad.core.levels import new_level
    >>> with new_level(BatchLevel(3)) as level:
    ...     x = BatchTracer(np.arange(6.0).reshape(3, 2), 0, level)
    ...     y = np.sin(x).sum()
    ...     x.shape, y.shape, np.round(y.primal, 3).tolist()
    ((2,), (), [0.841, 1.05, -1.716])
"""
from __future__ import annotations

import numpy as np

from dualad.batching.rules import lift, rule_for
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level
from dualad.core.registry import ndim_of, shape_of


class BatchTracer(Tracer):
    """A batch of values: ``primal`` (one level down) mapped along ``bdim``."""

    __slots__ = ("primal", "bdim", "_level")
    _batched = True          # dispatch stops peeling here (see dispatch.peel_keep_batch)

    def __init__(self, value, bdim: int, level: BatchLevel):
        self.primal, self.bdim, self._level = value, bdim, level

    @classmethod
    def _make(cls, value, level):
        t = cls.__new__(cls)
        t.primal, t.bdim, t._level = value, 0, level
        return t

    @property
    def shape(self) -> tuple:
        s = shape_of(self.primal)
        return s[:self.bdim] + s[self.bdim + 1:]

    def front(self):
        """The value with its batch axis first."""
        return to_front(self.primal, self.bdim)

    # comparisons and integer casts are batched too (they carry no derivative)
    def __lt__(self, o): return self._level.nondiff(np.less, (self, o), {})
    def __le__(self, o): return self._level.nondiff(np.less_equal, (self, o), {})
    def __gt__(self, o): return self._level.nondiff(np.greater, (self, o), {})
    def __ge__(self, o): return self._level.nondiff(np.greater_equal, (self, o), {})
    def __eq__(self, o): return self._level.nondiff(np.equal, (self, o), {})
    def __ne__(self, o): return self._level.nondiff(np.not_equal, (self, o), {})
    def __invert__(self): return self._level.nondiff(np.invert, (self,), {})
    def __and__(self, o): return self._level.nondiff(np.bitwise_and, (self, o), {})
    def __rand__(self, o): return self._level.nondiff(np.bitwise_and, (o, self), {})
    def __or__(self, o): return self._level.nondiff(np.bitwise_or, (self, o), {})
    def __ror__(self, o): return self._level.nondiff(np.bitwise_or, (o, self), {})
    def __xor__(self, o): return self._level.nondiff(np.bitwise_xor, (self, o), {})
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TypeError(
            "vmap: a Python branch (if/while/bool()) on a batched value has no single "
            "answer for the whole batch; use np.where(cond, a, b) instead.")

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "vmap: a batched value cannot become a plain NumPy array (np.asarray, or "
            "indexing a plain array with it: table[i]). For a lookup write "
            "np.take_along_axis(table, i[None], 0)[0]; for a selection np.where.")

    def astype(self, dtype, copy=True):
        if np.dtype(dtype).kind in "fc":
            return Tracer.astype(self, dtype)
        return BatchTracer(self.primal.astype(dtype), self.bdim, self._level)

    def __repr__(self) -> str:
        return f"BatchTracer(shape={self.shape}, batch={shape_of(self.primal)[self.bdim]})"


def _shift_axis(axis, nd: int):
    return tuple(a % nd + 1 for a in axis) if isinstance(axis, tuple) else axis % nd + 1


def to_front(v, bdim: int):
    """``v`` with axis ``bdim`` moved to the front (a dispatched NumPy call)."""
    return v if bdim == 0 else np.moveaxis(v, bdim, 0)


class BatchLevel(Level):
    """The batching interpreter for one ``vmap``: ``size`` examples."""

    __slots__ = ("size",)
    kind = "batch"

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def broadcast(self, x) -> BatchTracer:
        """``x`` (a value below this level) as the same value for every example."""
        return BatchTracer._make(np.broadcast_to(x, (self.size,) + shape_of(x)), self)

    def split(self, args) -> tuple[list, list]:
        vals, batched = [], []
        for a in args:
            if getattr(a, "_level", None) is self:
                vals.append(a.front())
                batched.append(True)
            else:
                vals.append(a)
                batched.append(False)
        return vals, batched

    def process(self, prim, args, params):
        vals, batched = self.split(args)
        out = rule_for(prim)(prim, self, vals, batched, params)
        if prim.n_outputs == 1:
            return BatchTracer._make(out, self)
        return tuple(BatchTracer._make(o, self) for o in out)

    def _shifted_axis(self, fn, v, kwargs):
        nd = ndim_of(v) - 1
        axis = kwargs.get("axis", _AXIS_FUNCS[fn])
        if axis is None or nd == 0:
            if kwargs.get("keepdims"):
                return fn(np.reshape(v, (self.size,) + (1,) * max(nd - 1, 0) + (-1,)),
                          **dict(kwargs, axis=-1))
            return fn(np.reshape(v, (self.size, -1)), **dict(kwargs, axis=1))
        return fn(v, **dict(kwargs, axis=_shift_axis(axis, nd)))

    def nondiff(self, fn, args, kwargs):
        """Run a derivative-free NumPy callable (comparison, sign, argmax, ...)
        on batched arguments: ufuncs at once, anything else per example."""
        vals, batched = self.split(args)
        if isinstance(fn, np.ufunc):
            r = max(ndim_of(v) - b for v, b in zip(vals, batched))
            return BatchTracer._make(
                fn(*[lift(v, r) if b else v for v, b in zip(vals, batched)], **kwargs), self)
        if fn in _AXIS_FUNCS and len(vals) == 1 and batched[0] \
                and set(kwargs) <= {"axis", "keepdims", "kind", "stable"}:
            return BatchTracer._make(self._shifted_axis(fn, vals[0], kwargs), self)
        if fn in _METADATA:          # the same for every example: ask the first
            return fn(*[v[0] if b else v for v, b in zip(vals, batched)], **kwargs)
        outs = [fn(*[v[i] if b else v for v, b in zip(vals, batched)], **kwargs)
                for i in range(self.size)]
        if isinstance(outs[0], tuple):
            return tuple(BatchTracer._make(np.stack(o), self) for o in zip(*outs))
        return BatchTracer._make(np.stack(outs), self)


# derivative-free functions whose answer (dtype, shape) is per-example metadata
_METADATA = frozenset({np.result_type, np.shape, np.ndim, np.size, np.iscomplexobj,
                       np.isrealobj, np.can_cast, np.min_scalar_type})


# derivative-free functions with an ``axis`` argument (its default): run on
# the whole batch with the axis shifted past the batch axis
_AXIS_FUNCS = {np.argmax: None, np.argmin: None, np.argsort: -1, np.all: None, np.any: None}
