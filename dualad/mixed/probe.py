"""The planner's probe: one evaluation of the function under a counting
interpreter (how many primitives touch the inputs, how large their results
are). The cost model in :mod:`dualad.mixed.planner` prices every mode from it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dualad.core.args import check_outputs, size_of
from dualad.core.backend import dtype_of
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, new_level
from dualad.core.registry import bind
from dualad.core.tree import tree_flatten, tree_unflatten

__all__ = ["Probe", "ProbeLevel", "probe"]


@dataclass(frozen=True)
class Probe:
    """What one evaluation of the function costs."""

    n_ops: int                 # primitive calls that touched the inputs
    n_elems: int               # elements of their results, summed
    n_bytes: int               # bytes of their results, summed
    n_in: int
    n_out: int
    itemsize: int = 8
    out_leaves: int = 1        # arrays in the output (reverse mode needs one)


class _Counted(Tracer):
    __slots__ = ("primal", "_level")

    def __init__(self, primal, level):
        self.primal, self._level = primal, level


class ProbeLevel(Level):
    """Counts the primitives that depend on the traced inputs and the sizes
    of their results (the planner's probe)."""

    __slots__ = ("ops", "elems", "bytes")
    kind = "probe"

    def __init__(self):
        super().__init__()
        self.ops = self.elems = self.bytes = 0

    def process(self, prim, args, params):
        primals = [a.primal if getattr(a, "_level", None) is self else a for a in args]
        out = bind(prim, *primals, **params)
        outs = out if prim.n_outputs > 1 else (out,)
        self.ops += 1
        for o in outs:
            size = size_of(o)
            self.elems += size
            self.bytes += size * dtype_of(o).itemsize
        if prim.n_outputs > 1:
            return tuple(_Counted(o, self) for o in out)
        return _Counted(out, self)


def probe(fn: Callable, args: tuple, positions: tuple = (0,)) -> Probe:
    """Run ``fn(*args)`` once, counting the primitives that depend on
    ``args[positions]`` and the size of their results.

    >>> import numpy as np
    >>> p = probe(lambda x: np.sum(np.sin(x) * x), (np.ones(10),))
    >>> p.n_ops, p.n_in, p.n_out
    (3, 10, 1)
    """
    n_in = 0
    itemsize = 8
    with new_level(ProbeLevel()) as level:
        call = list(args)
        for p in positions:
            leaves, td = tree_flatten(args[p])
            n_in += sum(size_of(v) for v in leaves)
            itemsize = max([dtype_of(v).itemsize for v in leaves] or [8])
            call[p] = tree_unflatten(td, [_Counted(v, level) for v in leaves])
        out = fn(*call)
        check_outputs(out)
        leaves = tree_flatten(out)[0]
        n_out = sum(size_of(o) for o in leaves)
    return Probe(level.ops, level.elems, level.bytes, n_in, n_out, itemsize,
                 len(leaves))
