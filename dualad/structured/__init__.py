"""Structured Hessians: forward-over-reverse with sparse tangents.

``hessian_structured(fn, x)`` computes the exact Hessian of a scalar ``fn``;
when the coupling between input entries goes through index maps (pair
potentials written with ``np.triu_indices`` or ``r[:, None] - r[None, :]``,
bonded chains, stencils) it costs about the size of the result instead of
``n`` times the work of the gradient. ``structured_fits`` is the planner's
probe; ``stats`` counts fallbacks (see :class:`Stats`).

Modules: :mod:`.tangents` (the tangent forms), :mod:`.interpreter` (the
level's interpreter, elementwise/where/concatenate rules), :mod:`.rules`
(shape, indexing and reduction rules), :mod:`.api` (the Hessian and probe).
The interpreter answers "can" or "cannot"; mixed/ decides the fallback.

May import: core, rules, forward, reverse.

Example::

    >>> import numpy as np
    >>> from dualad.structured import hessian_structured
    >>> def springs(x):
    ...     r = x.reshape(-1, 2)
    ...     i, j = np.triu_indices(3, 1)
    ...     d = r[i] - r[j]
    ...     return 0.5 * np.sum(d * d)
    >>> h = hessian_structured(springs, np.arange(6.0))
    >>> h.shape, float(h[0, 0]), float(h[0, 2])
    ((6, 6), 2.0, -1.0)
"""
from __future__ import annotations

from dualad.structured.api import cannot_structure, hessian_structured, structured_fits
from dualad.structured.interpreter import StructuredDual, StructuredLevel
from dualad.structured.tangents import Coo, Stats, Structured, stats


def reset_stats() -> None:
    """Zero the module-wide fallback counters (:data:`stats`)."""
    stats.reset()


__all__ = ["cannot_structure", "Coo", "Stats", "Structured", "StructuredDual", "hessian_structured",
           "StructuredLevel", "reset_stats", "stats", "structured_fits"]
