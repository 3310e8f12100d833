"""Fused kernels across basic indexing (``da.jit``): elementwise runs that
read shifted or strided views (``x[1:]``, ``x[:-1]``, ``x[::-2]``, ``x[0]``),
broadcast operands, and the transposes of those slices (``scatter_add`` of a
basic key into zeros: how a gradient returns to the sliced input) become one
Numba function.

Each value of the region is an expression *at an index*: a basic slice maps
the loop index affinely (``x[1:]`` at ``i`` is ``x`` at ``i + 1``), a
broadcast axis reads index 0, and the scatter of a slice is a select (at
``k`` the cotangent at ``k - 1`` where ``k`` lies in the slice, else 0.0,
read only inside that branch). So the Rosenbrock gradient, 19 NumPy calls in
the recorded program, is one loop over the 1000 outputs that evaluates the
999-element intermediates at ``k`` and ``k - 1`` (a few flops recomputed,
no temporaries, no calls). Values the rest of the program needs are written
out by one loop per distinct shape; each finiteness guard of the region is
counted over its whole value in the loop of its shape.

Accuracy: every operation is evaluated as NumPy does (the scalar templates
of :mod:`dualad.mixed.fuse`), the scatter's unselected entries are the
exact 0.0 NumPy's ``zeros`` holds, and additions keep the program's order:
results agree with the unfused program to the last bit (an ulp or two
where Numba's ``sin``/``cos`` differ from NumPy's). Index keys with arrays
(gathers, scatters that repeat an element) and reductions stay NumPy calls.

>>> import numpy as np
>>> from dualad.mixed.replay import record
>>> x = np.linspace(0.0, 1.0, 600)
>>> _, rep = record(lambda x: (x[1:] - x[:-1]) * 2.0 + x[1:], (x,))
>>> ops = fuse_region_ops(rep.ops, rep.outputs, rep.meta)
>>> [type(op[0]).__name__ for op in ops]
['Region']
"""
from __future__ import annotations

import numpy as np

from dualad.mixed.fuse import MIN_RUN, MIN_SIZE, PARALLEL_SIZE, _expression, _load
from dualad.mixed.replay import _Const
from dualad.rules.indexing import _getitem, _scatter_add

__all__ = ["fuse_region_ops", "Region", "region_op_kind"]

_F64 = np.dtype(np.float64)


def _basic_key(key) -> bool:
    return all(k is None or type(k) is slice or type(k) is int for k in key)


def _scalar_const(v) -> bool:
    """A constant operand the kernel takes as a float: Python floats, ints that
    convert exactly, float64 NumPy scalars and 0-d arrays."""
    t = type(v)
    if t is float or t is np.float64:
        return True
    if t is int:
        return abs(v) < 2**53
    return t is np.ndarray and v.shape == () and v.dtype == _F64


def region_op_kind(op, meta) -> str | None:
    """``"elem"`` (an elementwise float64 operation, operands broadcast to its
    shape), ``"index"`` (a basic-key ``getitem`` or ``scatter_add`` of a
    float64 value), or ``None`` (not fusable here)."""
    impl, spec, params, slots, multi, guards = op
    if multi or any(type(want) is not bool for _, want in guards):
        return None
    shape, dtype = meta[slots[0]]
    if dtype != _F64 or shape is None:
        return None
    if impl is _getitem or impl is _scatter_add:
        if params.get("lead", 0) or not _basic_key(params["key"]):
            return None
        a = spec[0]
        return "index" if a.__class__ is int and meta[a][1] == _F64 else None
    for a in spec:
        if a.__class__ is int:
            s, d = meta[a]
            if d != _F64 or s is None or len(s) > len(shape) or any(
                    m != 1 and m != n for m, n in zip(s[::-1], shape[::-1])):
                return None
        else:
            v = a.value
            if not _scalar_const(v) and not (
                    type(v) is np.ndarray and v.dtype == _F64 and v.ndim <= len(shape)
                    and all(m in (1, n) for m, n in zip(v.shape[::-1], shape[::-1]))):
                return None
    names = [f"a{i}" for i in range(len(spec))]
    return "elem" if _expression(impl, params, names) is not None else None


# -- index expressions: an axis index is an int, or (variable, mul, add) -------
def _affine(var: str, mul: int = 1, add: int = 0):
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
    return _affine(var, m * mul, a * mul + add)


class _Emitter:
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
            elif _scalar_const(a.value):
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
        impl, spec, params = op[0], op[1], op[2]
        shape = self.meta[slot][0]
        if impl is _getitem:
            got = self.value(spec[0], self._gather_index(params["key"], idx), memo, ind)
        elif impl is _scatter_add:
            got = self._scatter(spec[0], params["key"], params["in_shape"], idx, memo, ind)
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
            self.lines.append(f"{ind}{var} = {_expression(impl, params, operands)}")
            got = var
        memo[key] = got
        return got

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
                src.append(_affine(j))
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


class Region:
    """A callable running one fused region: takes the region's inputs
    (arrays; floats for 0-d values), returns its outputs and, last, whether
    every finiteness guard of the region holds as recorded."""

    __slots__ = ("kern", "shapes", "scalars", "source", "__name__")
    guarded = True

    def __init__(self, kern, shapes, scalars, source):
        self.kern, self.shapes, self.scalars, self.source = kern, shapes, scalars, source
        self.__name__ = "fused_region"

    def __call__(self, *inputs):
        if self.scalars:
            inputs = list(inputs)
            for i in self.scalars:
                inputs[i] = float(inputs[i])
        outs = [np.empty(s) for s in self.shapes]
        ok = self.kern(*inputs, *outs)
        return (*outs, ok)


def _build_region(run, needed, meta):
    """The fused op replacing ``run``: ``(Region, args, {}, out slots, True, ())``."""
    producers = {op[3][0]: op for op in run}
    em = _Emitter(producers, meta)
    out_slots = [op[3][0] for op in run if op[3][0] in needed]
    guards = [(s, want) for op in run for s, want in op[5]]
    roots: dict = {}                      # shape -> [("o", k, slot) | ("g", k, slot)]
    for k, s in enumerate(out_slots):
        roots.setdefault(meta[s][0], []).append(("o", k, s))
    for k, (s, _) in enumerate(guards):
        roots.setdefault(meta[s][0], []).append(("g", k, s))
    init = [f"    g{k} = 0" for k in range(len(guards))]
    parallel = False
    for shape, items in roots.items():
        big = int(np.prod(shape)) >= PARALLEL_SIZE
        parallel = parallel or big
        mark = len(em.lines)
        em.known, em.breaks = None, set()
        _emit_loops(em, shape, items, None, big)
        if shape and em.breaks and not big:
            # Split the outer loop where a scatter's range test changes: each
            # piece then has no branch (LLVM vectorises it).
            del em.lines[mark:]
            cuts = sorted({0, shape[0]} | {b for b in em.breaks if 0 < b < shape[0]})
            for p, q in zip(cuts, cuts[1:]):
                em.known = (p, q - 1)
                _emit_loops(em, shape, items, (p, q), False)
            em.known = None
    verdict = " and ".join(f"g{k} == 0" if want else f"g{k} > 0"
                           for k, (_, want) in enumerate(guards)) or "True"
    params = ", ".join([f"a{i}" for i in range(len(em.args))]
                       + [f"o{k}" for k in range(len(out_slots))])
    source = (f"def fused({params}):\n" + "\n".join(init + em.lines)
              + f"\n    return {verdict}\n")
    kern = _load(source, "fused", parallel)
    scalars = tuple(i for i, a in enumerate(em.args)
                    if a.__class__ is int and meta[a][0] == ())
    shapes = tuple(meta[s][0] for s in out_slots)
    return (Region(kern, shapes, scalars, source), tuple(em.args), {}, tuple(out_slots),
            True, ())


def _emit_loops(em: _Emitter, shape: tuple, items: list, outer, big: bool) -> None:
    """The loop nest over ``shape`` computing ``items`` (outputs and guard
    counts); ``outer``: the outer loop's ``(start, stop)``, else all of it."""
    nd = len(shape)
    ind = "    "
    for d, n in enumerate(shape):
        rng = f"{outer[0]}, {outer[1]}" if d == 0 and outer is not None else f"{n}"
        em.lines.append(f"{ind}for i{d} in {'prange' if d == 0 and big else 'range'}({rng}):")
        ind += "    "
    idx = tuple(_affine(f"i{d}") for d in range(nd))
    memo: dict = {}
    for kind, k, s in items:
        v = em.value(s, idx, memo, ind)
        if kind == "o":
            em.lines.append(f"{ind}o{k}[{', '.join(f'i{d}' for d in range(nd)) or '()'}] = {v}")
        else:
            em.lines.append(f"{ind}if not np.isfinite({v}):")
            em.lines.append(f"{ind}    g{k} += 1")


def _region_size(run, meta) -> int:
    return max(int(np.prod(meta[op[3][0]][0])) for op in run)


def fuse_region_ops(ops, outputs, meta) -> list:
    """``ops`` with each run of at least :data:`MIN_RUN` consecutive
    region-fusable operations (see :func:`region_op_kind`) that holds an
    indexing operation or a broadcast, on arrays of :data:`MIN_SIZE` elements
    or more, replaced by one :class:`Region`; other runs are left as they
    are (the flat fuser of :mod:`dualad.mixed.fuse` takes those)."""
    ops = list(ops)
    readers: dict = {}
    for k, op in enumerate(ops):
        for a in op[1]:
            if a.__class__ is int:
                readers.setdefault(a, []).append(k)
    outs = {o for o in outputs if o.__class__ is int}
    result, k = [], 0
    while k < len(ops):
        if region_op_kind(ops[k], meta) is None:
            result.append(ops[k])
            k += 1
            continue
        j = k
        while j < len(ops) and region_op_kind(ops[j], meta) is not None:
            j += 1
        run = ops[k:j]
        if len(run) < MIN_RUN or _region_size(run, meta) < MIN_SIZE or not _mixed(run, meta):
            result.extend(run)
            k = j
            continue
        needed = {op[3][0] for op in run
                  if op[3][0] in outs or any(r >= j for r in readers.get(op[3][0], ()))}
        result.append(_build_region(run, needed, meta))
        k = j
    return result


def _mixed(run, meta) -> bool:
    """Whether a run needs the index machinery (an indexing op, or operands
    of more than one shape); a plain same-shape run is the flat fuser's."""
    shapes = set()
    for op in run:
        if op[0] is _getitem or op[0] is _scatter_add:
            return True
        shapes.add(meta[op[3][0]][0])
        shapes.update(meta[a][0] for a in op[1] if a.__class__ is int)
    return len(shapes) > 1
