"""batching: ``vmap`` as an interpreter at its own level.

A :class:`BatchTracer` holds a value one level down whose axis ``bdim`` is
the mapped (batch) axis; its ``.shape`` is the per-example shape, so user code
sees one example. Each primitive is run once on the whole batch through a
batching rule (``dualad.batching.rules``); a primitive without a rule falls
back to a loop over the batch (correct, slower).

May import: core, rules.
"""
from dualad.batching.api import vmap
from dualad.batching.interpreter import BatchLevel, BatchTracer

__all__ = ["vmap", "BatchLevel", "BatchTracer"]
