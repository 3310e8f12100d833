"""Dual tensors: a primal and one or a batch of tangents.

A :class:`Dual` at level ``L`` interprets every primitive by running it on
the primal (one level down) and pushing the tangents through the primitive's
``jvp`` rule. Tangents have the primal's shape, or a leading batch axis of
several directions at once (``lead = 1``).

Example::

    >>> import numpy as np
    >>> from dualad.forward import Dual
    >>> d = np.sin(Dual(0.0, 1.0))
    >>> float(d.primal), float(d.tangent)
    (0.0, 1.0)
"""
from __future__ import annotations

import numpy as np

from dualad.core.backend import peel
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, persistent_level, split_at
from dualad.core.registry import eval_with_partials, shape_of
from dualad.core.zero import Zero, safe_mul


class TangentTracer(Tracer):
    """A primal with a tangent of some kind at one level: the storage shared by
    every forward interpreter's values (Dual, the structured tangents)."""

    __slots__ = ("primal", "tangent", "_level")

    @classmethod
    def _make(cls, primal, tangent, level):
        d = cls.__new__(cls)
        d.primal, d.tangent, d._level = primal, tangent, level
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}(primal={peel(self.primal)!r}, tangent={self.tangent!r})"


class Dual(TangentTracer):
    """A primal value with a tangent (``shape == primal.shape``) or a batch of
    tangents (``shape == (k,) + primal.shape``)."""

    __slots__ = ()

    def __init__(self, primal, tangent, level=None):
        if isinstance(tangent, (int, float)):      # rules reshape tangents
            tangent = np.asarray(tangent, dtype=getattr(peel(primal), "dtype", np.float64))
        ps, ts = shape_of(primal), shape_of(tangent)
        if ts != ps and ts[1:] != ps:
            raise ValueError(
                f"tangent shape {ts} must equal the primal shape {ps} "
                f"(or be (k,) + {ps} for a batch of k directions)")
        self.primal = primal
        self.tangent = tangent
        self._level = level if level is not None else persistent_level("dual", DualLevel)


class DualLevel(Level):
    """The forward-mode interpreter: primal one level down, tangent by ``jvp``."""

    __slots__ = ()
    kind = "fwd"

    def process(self, prim, args, params):
        primals, tangents = split_at(self, args, "tangent", Zero)
        out, parts = eval_with_partials(prim, primals, params)
        if parts is not None:        # value and partial from one kernel pass
            return Dual._make(out, safe_mul(parts[0], tangents[0], prim.singular), self)
        t_out = prim.jvp(primals, tangents, out, **params)
        if prim.n_outputs == 1:
            return out if t_out is Zero else Dual._make(out, t_out, self)
        return tuple(o if t is Zero else Dual._make(o, t, self) for o, t in zip(out, t_out))
