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

Beyond basic keys (the code writer is :mod:`dualad.mixed.fuse_emit`):
``reshape``, ``transpose`` and ``broadcast_to`` are index maps too; a
gather by one integer index array reads through it; a ``scatter_add`` whose
key holds an index array (elements repeat: the pair forces of Lennard-Jones
summed onto atoms) accumulates into a scratch array by a loop of its own,
in the order of ``np.add.at``/``bincount``; a sum over one axis of at most
:data:`~dualad.mixed.fuse_emit.MAX_INNER` elements is an inner loop; a value
costing :data:`STORE_COST` operations or more that is read across a
broadcast (one pair term used for x, y and z) is computed once into a
scratch array, and the guards of its shape are counted in that loop.

Accuracy: every operation is evaluated as NumPy does (the scalar templates
of :mod:`dualad.mixed.fuse`), the scatter's unselected entries are the
exact 0.0 NumPy's ``zeros`` holds, additions and sums keep the program's
and NumPy's order: results agree with the unfused program to the last bit
(an ulp or two where Numba's ``sin``/``cos`` differ from NumPy's;
``da.jit`` checks the fused program against the recording to 1e-14 and
keeps the unfused one otherwise). Sums over longer axes (NumPy's pairwise
order) stay NumPy calls, as do the ops no kernel template covers.

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

from dualad.mixed.fuse import (
    MIN_RUN,
    MIN_SIZE,
    PARALLEL_SIZE,
    PARALLEL_WORK,
    _expression,
    _load,
    _parallel_lock,
    _threads,
    fuse_runs,
)
from dualad.mixed.fuse_emit import (
    MAX_INNER,
    SHAPE_OPS,
    WHERE,
    Emitter,
    affine,
    basic_key,
    from_broadcast,
    gather_axis,
    scalar_const,
    squeeze,
)
from dualad.rules.indexing import _getitem, _scatter_add
from dualad.rules.reductions import _sum
from dualad.rules.shape import _broadcast_to, _transpose

__all__ = ["fuse_region_ops", "Region", "region_op_kind"]

_F64 = np.dtype(np.float64)
_BOOL = np.dtype(np.bool_)


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
    if impl in SHAPE_OPS:
        a = spec[0]
        if params.get("lead", 0) or a.__class__ is not int or meta[a][1] != _F64:
            return None
        if impl is _getitem or impl is _scatter_add:
            key = params["key"]
            if not basic_key(key) and gather_axis(key) is None:
                return None
        elif impl is _sum:
            axis = params["axis"]
            if len(axis) != 1 or not 0 < meta[a][0][axis[0]] <= MAX_INNER:
                return None
        return "index"
    where = impl is WHERE
    if where and (params or len(spec) != 3):
        return None
    for pos, a in enumerate(spec):
        want = _BOOL if where and pos == 0 else _F64     # where's condition
        if a.__class__ is int:
            s, d = meta[a]
            if d != want or s is None or len(s) > len(shape) or any(
                    m != 1 and m != n for m, n in zip(s[::-1], shape[::-1])):
                return None
        else:
            v = a.value
            if not (want is _F64 and scalar_const(v) or want is _BOOL and type(v) is bool) \
                    and not (type(v) is np.ndarray and v.dtype == want and v.ndim <= len(shape)
                             and all(m in (1, n) for m, n in zip(v.shape[::-1], shape[::-1]))):
                return None
    if where:
        return "elem"
    names = [f"a{i}" for i in range(len(spec))]
    return "elem" if _expression(impl, params, names) is not None else None


class Region:
    """A callable running one fused region: takes the region's inputs
    (arrays; floats for 0-d values), returns its outputs and, last, whether
    every finiteness guard of the region holds as recorded. A ``parallel``
    region compiles its source both ways (``prange`` is ``range`` in the
    serial one) and runs the parallel variant under the rules of
    :meth:`dualad.mixed.fuse._Fused.run` (Numba's thread count, one parallel
    kernel at a time)."""

    __slots__ = ("kern", "shapes", "scalars", "source", "scratch", "parallel", "_par",
                 "__name__")
    guarded = True

    def __init__(self, kern, shapes, scalars, source, scratch=(), parallel=False):
        self.kern, self.shapes, self.scalars, self.source = kern, shapes, scalars, source
        self.scratch, self.parallel, self._par = scratch, parallel, None
        self.__name__ = "fused_region"

    def __call__(self, *inputs):
        if self.scalars:
            inputs = list(inputs)
            for i in self.scalars:
                inputs[i] = float(inputs[i])
        outs = [np.empty(s) for s in self.shapes]
        args = (*inputs, *outs, *[np.zeros(s) for s in self.scratch])
        if self.parallel and _threads() > 1 and _parallel_lock.acquire(blocking=False):
            try:
                if self._par is None:
                    self._par = _load(self.source, "fused", True)
                ok = self._par(*args)
            finally:
                _parallel_lock.release()
        else:
            ok = self.kern(*args)
        return (*outs, ok)


def _work(run) -> int:
    """A region's work per element (vector ``sin``/``cos``/``exp``/``tanh``
    about 8 operations, the rest 1), as :func:`dualad.mixed.fuse._cost`."""
    return sum(8 if op[0] in _VECTOR_IMPLS else 1 for op in run)


_VECTOR_IMPLS = (np.sin, np.cos, np.exp, np.tanh)


def _build_region(run, needed, meta):
    """The fused op replacing ``run``: ``(Region, args, {}, out slots, True, ())``."""
    producers = {op[3][0]: op for op in run}
    em = Emitter(producers, meta)
    em.store = _to_store(run, meta)
    out_slots = [op[3][0] for op in run if op[3][0] in needed]
    guards = [(s, want) for op in run for s, want in op[5]]
    roots: dict = {}                      # shape -> [("o", k, slot) | ("g", k, slot)]
    for k, s in enumerate(out_slots):
        roots.setdefault(meta[s][0], []).append(("o", k, s))
    for k, (s, _) in enumerate(guards):
        em.pending.setdefault(squeeze(meta[s][0]), []).append((k, s))
    init = [f"    g{k} = 0" for k in range(len(guards))]
    parallel, work = False, _work(run)
    shapes = list(roots)
    while shapes or em.pending:
        if not shapes:
            # guards no scratch loop counted: a loop of their own
            group = em.pending.pop(next(iter(em.pending)))
            shape = meta[group[0][1]][0]
            roots[shape] = [("g", k, g) if meta[g][0] == shape else ("G", k, g)
                            for k, g in group]
            shapes.append(shape)
        shape = shapes.pop(0)
        items = roots[shape]
        size = int(np.prod(shape))
        # threads only where the work pays (see dualad.mixed.fuse): a cheap
        # loop waits on its slowest thread, and the spinning pool takes the
        # cores from the BLAS calls around it (W3: 2x slower)
        big = size >= PARALLEL_SIZE and size * work >= PARALLEL_WORK
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
                       + [f"o{k}" for k in range(len(out_slots))] + list(em.scratch.values()))
    source = (f"def fused({params}):\n" + "\n".join(init + em.phases + em.lines)
              + f"\n    return {verdict}\n")
    kern = _load(source, "fused", False)
    scalars = tuple(i for i, a in enumerate(em.args)
                    if a.__class__ is int and meta[a][0] == ())
    shapes = tuple(meta[s][0] for s in out_slots)
    scratch = tuple(meta[s][0] for s in em.scratch)
    return (Region(kern, shapes, scalars, source, scratch, parallel), tuple(em.args), {},
            tuple(out_slots), True, ())


# A value read across a broadcast (the same element for many iterations)
# whose expression costs at least this many operations is computed once into
# a scratch array (the pair term of Lennard-Jones, broadcast over x, y, z).
STORE_COST = 4


def _to_store(run, meta) -> set:
    """The region's slots to hold in scratch arrays (see :data:`STORE_COST`)."""
    producers = {op[3][0]: op for op in run}
    cost: dict = {}

    def c(slot) -> int:
        if slot not in producers:
            return 0
        got = cost.get(slot)
        if got is None:
            impl, spec, params = producers[slot][:3]
            inner = sum(c(a) for a in spec if a.__class__ is int)
            got = (inner * meta[spec[0]][0][params["axis"][0]] + 1 if impl is _sum
                   else inner if impl in SHAPE_OPS else inner + 1)
            cost[slot] = got
        return got

    store = set()
    for impl, spec, _, slots, *_ in run:
        shape = meta[slots[0]][0]
        for a in spec:
            if a.__class__ is not int or a not in producers:
                continue
            s = meta[a][0]
            broadcast = impl is _broadcast_to or impl not in SHAPE_OPS and (
                len(s) < len(shape) or any(m == 1 and n != 1
                                           for m, n in zip(s[::-1], shape[::-1])))
            if broadcast and c(a) >= STORE_COST:
                store.add(a)
    return store


def _emit_loops(em: Emitter, shape: tuple, items: list, outer, big: bool) -> None:
    """The loop nest over ``shape`` computing ``items`` (outputs and guard
    counts); ``outer``: the outer loop's ``(start, stop)``, else all of it."""
    nd = len(shape)
    ind = "    "
    for d, n in enumerate(shape):
        rng = f"{outer[0]}, {outer[1]}" if d == 0 and outer is not None else f"{n}"
        em.lines.append(f"{ind}for i{d} in {'prange' if d == 0 and big else 'range'}({rng}):")
        ind += "    "
    idx = tuple(affine(f"i{d}") for d in range(nd))
    memo: dict = {}
    for kind, k, s in items:
        # (a "G" guard is on a value of another unit-axis shape)
        v = em.value(s, from_broadcast(em.meta[s][0], shape, idx) if kind == "G" else idx,
                     memo, ind)
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
    kinds = [region_op_kind(op, meta) for op in ops]
    # A transpose that a matrix product (or another unfusable op) reads stays
    # a NumPy view: BLAS takes it by its transpose flag, whereas a region
    # would write it out with strided stores (W3 gradient: a 3.7 ms region
    # in place of a 0.03 ms view).
    unfused_reads = {a for op, kind in zip(ops, kinds) if kind is None
                     for a in op[1] if a.__class__ is int}
    fusable = {id(op) for op, kind in zip(ops, kinds) if kind is not None and not (
        op[0] is _transpose and op[3][0] in unfused_reads)}
    return fuse_runs(
        ops, outputs,
        lambda first, op: id(op) in fusable,
        # (a tanh pays with one more op: the bias add of a layer, W3/W5)
        lambda run: ((len(run) >= MIN_RUN or len(run) == 2 and any(
                         op[0] is np.tanh for op in run))
                     and _region_size(run, meta) >= MIN_SIZE and _mixed(run, meta)),
        lambda run, needed: _build_region(run, needed, meta))


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
