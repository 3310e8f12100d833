"""The code writer of :mod:`dualad.mixed.fuse_index`: each value of a fused
region as a scalar expression at an index (affine maps through slices,
transposes, reshapes and broadcasts; selects for scatters of basic keys;
inner loops for small sums; scratch arrays, written by loops of their own,
for scatters that repeat elements and for expensive values read across a
broadcast).
"""
from __future__ import annotations

import numpy as np

from dualad.mixed.fuse import _expression
from dualad.mixed.replay import _Const
from dualad.rules.indexing import _getitem, _scatter_add
from dualad.rules.reductions import _sum
from dualad.rules.shape import _broadcast_to, _reshape, _transpose, where_p

__all__ = ["Emitter", "MAX_INNER", "SHAPE_OPS", "WHERE", "basic_key", "gather_axis", "scalar_const",
           "from_broadcast", "squeeze", "affine"]

_F64 = np.dtype(np.float64)
WHERE = where_p.impl          # np.where(cond, x, y): a select


def basic_key(key) -> bool:
    return all(k is None or type(k) is slice or type(k) is int for k in key)


def scalar_const(v) -> bool:
    """A constant operand the kernel takes as a float: Python floats, ints that
    convert exactly, float64 NumPy scalars and 0-d arrays."""
    t = type(v)
    if t is float or t is np.float64:
        return True
    if t is int:
        return abs(v) < 2**53
    return t is np.ndarray and v.shape == () and v.dtype == _F64


# Sums over one axis of at most this many elements are fused: NumPy adds
# those in order (its pairwise summation starts at 8), so the kernel's
# sequential sum is the same sum.
MAX_INNER = 7
SHAPE_OPS = frozenset((_getitem, _scatter_add, _reshape, _transpose, _broadcast_to, _sum))


def gather_axis(key):
    """The position of the one 1-D integer index array in a key of slices
    (a gather of whole rows/columns), else None."""
    pos = None
    for k, e in enumerate(key):
        if type(e) is slice:
            continue
        if type(e) is not np.ndarray or e.ndim != 1 or e.dtype.kind not in "iu" or pos is not None:
            return None
        pos = k
    return pos


# -- index expressions: an axis index is an int, or (variable, mul, add) -------
def affine(var: str, mul: int = 1, add: int = 0):
    return (var, mul, add) if mul else add


def _render(ix) -> str:
    if type(ix) is int:
        return str(ix)
    var, mul, add = ix
    term = var if mul == 1 else f"-{var}" if mul == -1 else f"{mul} * {var}"
    return term if add == 0 else f"({term} + {add})" if add > 0 else f"({term} - {-add})"


def _shift(ix, mul: int, add: int):
    """``add + mul * ix``."""
    if type(ix) is int:
        return add + mul * ix
    var, m, a = ix
    return affine(var, m * mul, a * mul + add)


class Emitter:
    """Writes the kernel body: one loop per root shape; each value is
    computed once per (slot, index) in a scope (a scatter's branch is a
    nested scope)."""

    def __init__(self, producers, meta):
        self.producers, self.meta = producers, meta
        self.args: list = []           # spec entries (slots, _Const)
        self.arg_names: dict = {}      # ("s", slot) or ("c", id) -> name
        self.scalar_args: set = set()  # names passed as floats
        self.lines: list = []
        self.n_vars = 0
        # the outer loop variable's range where it is known (p, q), and the
        # points where a range condition on it changes (loop splitting)
        self.known: tuple | None = None
        self.breaks: set = set()
        # scatters that repeat elements: accumulated into a scratch array
        # (zeros from the caller) by a loop of their own, before the roots
        self.scratch: dict = {}        # slot -> name
        self.store: set = set()        # slots to hold in scratch arrays
        self.pending: dict = {}        # squeezed shape -> guards not yet counted
        self.needs: dict = {}
        self.phases: list = []         # lines of those loops, in order

    def fresh(self, prefix: str = "t") -> str:
        self.n_vars += 1
        return f"{prefix}{self.n_vars}"

    def arg(self, a) -> str:
        if a.__class__ is int:
            k = ("s", a)
        else:
            k = ("c", id(a.value))
        name = self.arg_names.get(k)
        if name is None:
            name = self.arg_names[k] = f"a{len(self.args)}"
            if a.__class__ is int:
                self.args.append(a)
                if self.meta[a][0] == ():
                    self.scalar_args.add(name)
            elif scalar_const(a.value):
                self.args.append(_Const(float(a.value)))
                self.scalar_args.add(name)
            else:
                self.args.append(a)
        return name

    def read(self, name: str, shape: tuple, idx: tuple, out_shape: tuple) -> str:
        """``name`` (an array argument of ``shape``) at ``idx`` (an index of
        ``out_shape``), broadcast."""
        if name in self.scalar_args:
            return name
        if not shape:
            return f"{name}[()]"
        lead = len(out_shape) - len(shape)
        parts = [_render(idx[lead + d]) if n != 1 or out_shape[lead + d] == 1 else "0"
                 for d, n in enumerate(shape)]
        return f"{name}[{', '.join(parts)}]"

    def value(self, slot: int, idx: tuple, memo: dict, ind: str) -> str:
        """An expression for ``slot`` at ``idx`` (lines go to ``self.lines``
        at indent ``ind``)."""
        key = (slot, idx)
        got = memo.get(key)
        if got is not None:
            return got
        op = self.producers.get(slot)
        if op is None:                       # an input of the region
            name = self.arg(slot)
            return self.read(name, self.meta[slot][0], idx, self.meta[slot][0])
        if slot in self.store:
            return f"{self._stored(slot)}[{', '.join(_render(i) for i in idx) or '()'}]"
        impl, spec, params = op[0], op[1], op[2]
        shape = self.meta[slot][0]
        if impl is _getitem:
            k = params["key"]
            if basic_key(k):
                got = self.value(spec[0], self._gather_index(k, idx), memo, ind)
            else:
                pos = gather_axis(k)
                rows = self.arg(_Const(k[pos]))
                sub = list(self._gather_index(k[:pos] + (slice(0, 1, 1),) + k[pos + 1:], idx))
                sub[pos] = affine(f"{rows}[{_render(idx[pos])}]")
                got = self.value(spec[0], tuple(sub), memo, ind)
        elif impl is _scatter_add:
            if basic_key(params["key"]):
                got = self._scatter(spec[0], params["key"], params["in_shape"], idx, memo, ind)
            else:
                got = f"{self._accumulate(slot, op)}[{', '.join(_render(i) for i in idx)}]"
        elif impl is _broadcast_to or impl is _reshape and _unit_axes(self.meta[spec[0]][0], shape):
            got = self.value(spec[0], from_broadcast(self.meta[spec[0]][0], shape, idx), memo, ind)
        elif impl is _reshape:
            got = self.value(spec[0], self._reshape_index(self.meta[spec[0]][0], shape, idx, ind),
                             memo, ind)
        elif impl is _transpose:
            sub = [0] * len(shape)
            for d, a in enumerate(params["axes"]):
                sub[a] = idx[d]
            got = self.value(spec[0], tuple(sub), memo, ind)
        elif impl is _sum:
            got = self._sum(spec[0], params["axis"][0], params.get("keepdims", False), idx,
                            memo, ind)
        else:
            operands = []
            for a in spec:
                if a.__class__ is int:
                    s = self.meta[a][0]
                    lead = len(shape) - len(s)
                    sub = tuple(idx[lead + d] if n != 1 or shape[lead + d] == 1 else 0
                                for d, n in enumerate(s))
                    operands.append(self.value(a, sub, memo, ind))
                else:
                    name = self.arg(a)
                    operands.append(self.read(name, np.shape(a.value), idx, shape))
            var = self.fresh()
            expr = (f"({operands[1]} if {operands[0]} else {operands[2]})" if impl is WHERE
                    else _expression(impl, params, operands))
            self.lines.append(f"{ind}{var} = {expr}")
            got = var
        memo[key] = got
        return got

    def _reshape_index(self, in_shape, out_shape, idx, ind) -> tuple:
        """The input index of a C-order reshape at ``idx``: through the flat
        position (one integer line)."""
        flat = " + ".join(_render(i) if d == len(idx) - 1 else
                          f"{_render(i)} * {int(np.prod(out_shape[d + 1:]))}"
                          for d, i in enumerate(idx)) or "0"
        f = self.fresh("f")
        self.lines.append(f"{ind}{f} = {flat}")
        out = []
        for d, n in enumerate(in_shape):
            stride = int(np.prod(in_shape[d + 1:]))
            e = f if stride == 1 else f"({f} // {stride})"
            # (the first axis needs no modulo: the flat position is in range)
            out.append(affine(e if d == 0 else f"({e} % {n})"))
        return tuple(out)

    def _sum(self, x, axis, keepdims, idx, memo, ind) -> str:
        """``sum(x, axis)`` at ``idx``: an inner loop adding in NumPy's order
        (from -0.0, which keeps an all-(-0.0) sum's sign as NumPy does)."""
        n = self.meta[x][0][axis]
        r = self.fresh("r")
        sub = list(idx)
        if keepdims:
            sub[axis] = affine(r)
        else:
            sub.insert(axis, affine(r))
        acc = self.fresh("acc")
        self.lines.append(f"{ind}{acc} = -0.0")
        self.lines.append(f"{ind}for {r} in range({n}):")
        got = self.value(x, tuple(sub), dict(memo), ind + "    ")
        self.lines.append(f"{ind}    {acc} += {got}")
        return acc

    def guards_here(self, shape, idx, memo, ind, current) -> None:
        """Count the pending guards on values of ``shape`` (up to unit axes)
        in the loop being written for the scratch value ``current`` (they
        then need no loop of their own); only guards whose values need no
        scratch array still to be written (nor ``current`` elsewhere)."""
        group = self.pending.get(squeeze(shape))
        if not group:
            return
        done = set(self.scratch) - {current}
        for k, g in list(group):
            if g != current and not self._needs(g) <= done:
                continue
            group.remove((k, g))
            v = self.value(g, from_broadcast(self.meta[g][0], shape, idx), memo, ind)
            self.lines.append(f"{ind}if not np.isfinite({v}):")
            self.lines.append(f"{ind}    g{k} += 1")
        if not group:
            del self.pending[squeeze(shape)]

    def _needs(self, slot) -> frozenset:
        """The scratch-held slots (stored or accumulated) ``slot`` reads."""
        got = self.needs.get(slot)
        if got is None:
            op = self.producers.get(slot)
            if op is None:
                got = frozenset()
            elif slot in self.store or op[0] is _scatter_add and not basic_key(op[2]["key"]):
                got = frozenset((slot,))
            else:
                got = frozenset().union(*(self._needs(a) for a in op[1] if a.__class__ is int))
            self.needs[slot] = got
        return got

    def _stored(self, slot) -> str:
        """The scratch array holding ``slot`` (an expensive value read
        across a broadcast: computed once by a loop of its own)."""
        name = self.scratch.get(slot)
        if name is not None:
            return name
        shape = self.meta[slot][0]
        saved, self.lines = self.lines, []
        ind, idx = self._loop_nest(shape, "q")
        self.store.discard(slot)
        memo: dict = {}
        v = self.value(slot, idx, memo, ind)
        self.store.add(slot)
        name = self.scratch[slot] = f"m{len(self.scratch)}"
        self.lines.append(f"{ind}{name}[{', '.join(_render(i) for i in idx) or '()'}] = {v}")
        self.guards_here(shape, idx, memo, ind, slot)
        self.phases += self.lines
        self.lines = saved
        return name

    def _loop_nest(self, shape: tuple, var: str) -> tuple[str, tuple]:
        """Open a serial loop nest over ``shape`` (loop variables ``var0``,
        ``var1``, ...): the indentation inside and the index it visits."""
        ind = "    "
        for d, n in enumerate(shape):
            self.lines.append(f"{ind}for {var}{d} in range({n}):")
            ind += "    "
        return ind, tuple(affine(f"{var}{d}") for d in range(len(shape)))

    def _accumulate(self, slot, op) -> str:
        """The scratch array holding ``scatter_add(ct, key)`` for a key with
        an index array (repeats accumulate, in the order NumPy's add.at and
        bincount add them: by position in ``ct``); its loop is emitted once."""
        name = self.scratch.get(slot)
        if name is not None:
            return name
        ct, key = op[1][0], op[2]["key"]
        pos = gather_axis(key)
        rows = self.arg(_Const(key[pos]))
        shape = self.meta[ct][0]
        saved, self.lines = self.lines, []
        ind, idx = self._loop_nest(shape, "p")
        memo: dict = {}
        v = self.value(ct, idx, memo, ind)
        self.guards_here(shape, idx, memo, ind, None)     # (not the sum being made)
        target = [_render(_shift(idx[d], k.step, k.start)) if type(k) is slice else None
                  for d, k in enumerate(key)]
        target[pos] = f"{rows}[p{pos}]"
        name = self.scratch[slot] = f"m{len(self.scratch)}"
        self.lines.append(f"{ind}{name}[{', '.join(target)}] += {v}")
        self.phases += self.lines
        self.lines = saved
        return name

    @staticmethod
    def _gather_index(key, idx) -> tuple:
        """The input index of ``x[key]`` at output index ``idx``."""
        out, p = [], 0
        for k in key:
            if k is None:
                p += 1
            elif type(k) is int:
                out.append(k)
            else:
                out.append(_shift(idx[p], k.step, k.start))
                p += 1
        return tuple(out)

    def _decide(self, ix, lo: int, hi: int) -> bool | None:
        """Whether ``lo <= ix <= hi`` holds everywhere (True), nowhere (False)
        in the current loop range, or depends on the index (None; the range
        ends are then noted as places to split the outer loop)."""
        if type(ix) is int:
            return lo <= ix <= hi
        var, m, a = ix
        if var != "i0" or m not in (1, -1):
            return None
        i_lo, i_hi = (lo - a, hi - a) if m == 1 else (a - hi, a - lo)
        if self.known is None:
            self.breaks.update((i_lo, i_hi + 1))
            return None
        p, q = self.known
        if i_lo <= p and q <= i_hi:
            return True
        if q < i_lo or i_hi < p:
            return False
        return None

    def _scatter(self, ct, key, in_shape, idx, memo, ind) -> str:
        """``zeros(in_shape)`` with ``ct`` assigned at ``key`` (a basic key picks
        each element once), at ``idx``: the cotangent inside the key's range,
        else 0.0; the cotangent is computed only in that branch."""
        conds, src = [], []
        d = 0
        for k in key:
            if k is None:
                src.append(0)
                continue
            ix, n = idx[d], in_shape[d]
            d += 1
            r = _render(ix)
            if type(k) is int:
                known = self._decide(ix, k, k)
                if known is False:
                    return "0.0"
                if known is None:
                    conds.append(f"{r} == {k}")
                continue
            start, stop, step = k.indices(n)
            length = len(range(start, stop, step))
            if length == 0:
                return "0.0"
            if step == 1 and start == 0 and length == n:
                src.append(ix)                                 # the whole axis
            elif step == 1 or step == -1:
                src.append(_shift(ix, step, -start * step))    # (ix - start) * step
                lo, hi = (start, start + length - 1) if step == 1 else (start - length + 1, start)
                known = self._decide(ix, lo, hi)
                if known is False:
                    return "0.0"
                if known is None:
                    conds.append(f"{lo} <= {r} <= {hi}")
            else:
                j = self.fresh("j")
                conds.append(f"({r} - {start}) % {step} == 0 and "
                             f"0 <= ({r} - {start}) // {step} < {length}")
                self.lines.append(f"{ind}{j} = ({r} - {start}) // {step}")
                src.append(affine(j))
        src = tuple(src)
        if not conds:
            return self.value(ct, src, memo, ind)
        var = self.fresh("s")
        self.lines.append(f"{ind}{var} = 0.0")
        self.lines.append(f"{ind}if {' and '.join(conds)}:")
        inner = ind + "    "
        got = self.value(ct, src, dict(memo), inner)
        self.lines.append(f"{inner}{var} = {got}")
        return var


def squeeze(shape: tuple) -> tuple:
    return tuple(n for n in shape if n != 1)


def _unit_axes(a: tuple, b: tuple) -> bool:
    """Whether shapes ``a`` and ``b`` differ only by axes of length 1."""
    return tuple(n for n in a if n != 1) == tuple(n for n in b if n != 1)


def from_broadcast(in_shape: tuple, out_shape: tuple, idx: tuple) -> tuple:
    """The index into ``in_shape`` of ``idx`` (an index of ``out_shape``),
    when ``out_shape`` is ``in_shape`` broadcast or with unit axes added or
    removed: matching axes in order, 0 on unit axes."""
    if len(in_shape) <= len(out_shape) and all(
            m in (1, n) for m, n in zip(in_shape[::-1], out_shape[::-1])):
        lead = len(out_shape) - len(in_shape)
        return tuple(idx[lead + d] if n != 1 or out_shape[lead + d] == 1 else 0
                     for d, n in enumerate(in_shape))
    real = iter(i for i, n in zip(idx, out_shape) if n != 1)
    return tuple(0 if n == 1 else next(real) for n in in_shape)


