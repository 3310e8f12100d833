"""Structured Hessians: ``hessian_structured`` and the planner's probe.

Forward-over-reverse with sparse tangents: the input is seeded with all ``n``
directions at once as ONE structured term (``idx = arange(n)``, ``val = 1``),
the reverse gradient runs on :class:`StructuredDual` values, and the tangent
of the gradient (``H`` times the seeds) comes out as COO entries, which are
assembled into a dense array or a ``scipy.sparse`` matrix. On a pair
potential every pair-level tangent has a handful of slots (the coordinates of
the two atoms), so the work is ``O(pairs)`` instead of the ``O(n * pairs)`` of
dense batched tangents.

Example::

    >>> import numpy as np
    >>> from dualad.structured import hessian_structured
    >>> hessian_structured(lambda x: (x ** 3).sum(), np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from dualad.core.args import as_array, scalar_checked
from dualad.core.backend import check_differentiable, result_float_dtype
from dualad.core.levels import level_of, lower_to, new_level
from dualad.core.registry import shape_of
from dualad.core.zero import Zero
from dualad.reverse.api import grad
from dualad.structured.assemble import entries_to_csr, symmetrize
from dualad.structured.interpreter import StructuredDual, StructuredLevel
from dualad.structured.tangents import (
    Context,
    Coo,
    Stats,
    Structured,
    TooDense,
    to_coo,
)

__all__ = ["hessian_structured", "structured_fits", "structured_estimate", "cannot_structure",
           "keep_probe"]


# ============================================================================
# the Hessian
# ============================================================================
def _run(fn: Callable, x, local: Stats | None, dense_limit: int | None = None):
    """One structured pass: the gradient's tangent and the pass context."""
    n = math.prod(shape_of(x))
    ctx = Context(n, result_float_dtype(x), local, dense_limit)
    ctx.stats.passes += 1
    if local is not None:
        local.passes += 1
    with new_level(StructuredLevel(ctx)) as level:
        shape = shape_of(x)
        # All n directions in one term: element e has one slot, direction e.
        seed = Structured(shape, [(np.arange(n, dtype=np.intp).reshape((1,) + shape),
                                   np.ones((1,) * (len(shape) + 1), dtype=ctx.dtype))])
        g = grad(scalar_checked(fn, "hessian"))(StructuredDual._make(x, seed, level))
        g = lower_to(g, level)
        tangent = g.tangent if level_of(g) is level else Zero
    # The pass is over: drop what only the pass needed (the recent results
    # hold whole tracers; the match and support tables, masks), so the
    # assembly's peak memory is the entries' alone.
    ctx.recent.clear()
    ctx.same_memo.clear()
    ctx.support.clear()
    return tangent, ctx


def _t_csr(ctx: Context, t, n: int):
    """``T`` as CSR (duplicates summed): ``T[e, d]`` is the tangent of gradient
    entry ``e`` in direction ``d``, ``H[e, d]`` up to rounding (see
    :mod:`.assemble`)."""
    if t is Zero:
        return entries_to_csr([], n, ctx.dtype)
    if isinstance(t, (Structured, Coo)):
        # A chunk (d, e, v) holds T[e, d] = v: rows and cols swap.
        return entries_to_csr([(e, d, v) for d, e, v in to_coo(ctx, t).chunks], n, ctx.dtype)
    import scipy.sparse as sp
    return sp.csr_matrix(np.reshape(t, (n, n)).T)


def _dense(ctx: Context, t, n: int):
    """The Hessian up to symmetrisation: ``T`` with ``(T + T.T) / 2 == H``."""
    if t is Zero:
        return np.zeros((n, n), dtype=ctx.dtype)
    if isinstance(t, (Structured, Coo)):
        # T[d, e] = H[e, d] at rows * n + cols: consecutive entries are
        # neighbouring positions e, so the writes stay local. The caller
        # symmetrises, and (T + T.T) / 2 is the same for T as for H = T.T.
        # Bincount in batches of about 2 * n * n entries (each bincount
        # fills a fresh n * n array, so fewer, larger batches are faster;
        # their keys and values take 4x the Hessian's memory): the peak
        # memory stays a few times the Hessian's instead of growing with all
        # the entries.
        h = None
        batch: list = []
        filled = 0
        chunks = to_coo(ctx, t).chunks
        for c, (rows, cols, v) in enumerate(chunks):
            f = rows * n + cols
            shape = np.broadcast_shapes(f.shape, v.shape)
            batch.append((np.broadcast_to(f, shape).ravel(), np.broadcast_to(v, shape).ravel()))
            filled += batch[-1][0].size
            if filled >= 2 * n * n or c == len(chunks) - 1:
                flat = batch[0][0] if len(batch) == 1 else np.concatenate([b[0] for b in batch])
                val = batch[0][1] if len(batch) == 1 else np.concatenate([b[1] for b in batch])
                batch, filled = [], 0
                part = np.bincount(flat, weights=val, minlength=n * n)
                del flat, val
                h = part if h is None else np.add(h, part, out=h)
        if h is None:
            return np.zeros((n, n), dtype=ctx.dtype)
        return (h if h.dtype == ctx.dtype else h.astype(ctx.dtype)).reshape(n, n)
    return np.reshape(t, (n, n))                  # T[d, e], symmetrised by the caller


def cannot_structure(x) -> str | None:
    """Why a structured pass cannot run at ``x`` (``None`` when it can): the
    index maps need a plain NumPy primal, not a traced value (a Hessian
    inside another transform) or a CuPy array. The caller (mixed/) decides
    what to do instead.

    >>> cannot_structure(np.ones(2)) is None
    True
    """
    if hasattr(x, "_level"):
        if getattr(x._level, "stage_call", None) is not None:
            return None     # recorded by da.jit: the assembly is recorded (_assembled)
        return "a traced input (inside another transform)"
    if not isinstance(x, (np.ndarray, np.generic)):
        return f"a {type(x).__module__}.{type(x).__name__} input (needs a NumPy array)"
    return None


# ============================================================================
# the planner's probe pass, kept for the compute of the same call
# ============================================================================
class _Kept:
    """A structured pass run by the planner's probe (:func:`structured_estimate`)
    inside :func:`keep_probe`: the input it ran at and its result, either the
    tangent with its context or (a CSR probe) the assembled ``T``."""

    __slots__ = ("x", "tangent", "ctx", "t_csr")

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.x = self.tangent = self.ctx = self.t_csr = None


_KEPT: ContextVar = ContextVar("dualad_structured_kept", default=None)


@contextmanager
def keep_probe():
    """Within this block a structured probe keeps its pass, and the next
    :func:`hessian_structured` at the very same input object takes it instead
    of running the pass again. The block's owner guarantees that this is the
    same function: ``dualad.hessian`` opens one block per call (plan, then
    compute that function, with nothing in between that could change it or
    its input; nested transforms open blocks of their own). What is kept is
    dropped when the block ends.

    >>> f = lambda x: np.sum((x[1:] - x[:-1]) ** 2)
    >>> x = np.zeros(3)
    >>> with keep_probe():
    ...     fits = structured_estimate(f, x)["fits"]
    ...     h = hessian_structured(f, x)          # no second pass
    >>> fits, h[1, 1]
    (True, np.float64(4.0))
    """
    box = _Kept()
    token = _KEPT.set(box)
    try:
        yield box
    finally:
        _KEPT.reset(token)
        box.clear()


def _take_kept(x):
    """The kept probe pass at ``x`` (the same object), once; else None."""
    box = _KEPT.get()
    if box is None or box.x is None or box.x is not x:
        return None
    kept = (box.tangent, box.ctx, box.t_csr)
    box.clear()
    return kept


def hessian_structured(fn: Callable, x, csr: bool = False):
    """Hessian of scalar ``fn`` at ``x`` by structured forward-over-reverse,
    shaped ``x.shape + x.shape`` (or, with ``csr=True``, a
    ``scipy.sparse.csr_matrix`` of shape ``(x.size, x.size)``). Exactly
    symmetric. Exact for any ``fn``; fast when the coupling between input
    entries goes through index maps (pair potentials, bonded chains,
    stencils), with dense fallbacks where it does not (see ``stats``).
    Raises ``ValueError`` where it cannot run (:func:`cannot_structure`);
    ``dualad.hessian(fn, mode="structured")`` falls back to fwd-rev there.

    >>> import numpy as np
    >>> f = lambda x: np.sum((x[1:] - x[:-1]) ** 2)
    >>> hessian_structured(f, np.zeros(3))
    array([[ 2., -2.,  0.],
           [-2.,  4., -2.],
           [ 0., -2.,  2.]])
    >>> hessian_structured(f, np.zeros(3), csr=True).nnz
    7
    """
    x = as_array(x)
    check_differentiable(x, "x")
    if isinstance(x, np.generic):
        x = np.asarray(x)
    why = cannot_structure(x)
    if why is not None:
        raise ValueError(f"hessian_structured cannot run on {why}; use "
                         "dualad.hessian(fn, mode='structured'), which falls back to fwd-rev")
    kept = _take_kept(x)
    if kept is not None and kept[2] is not None:        # the probe assembled T already
        t = kept[2]
        del kept
        if csr:
            return symmetrize(t)
        h = t.toarray()
        del t
        return ((h + h.T) * 0.5).reshape(shape_of(x) + shape_of(x))
    tangent, ctx = _run(fn, x, None) if kept is None else kept[:2]
    del kept
    n = ctx.n
    staged = _assembled(ctx, tangent, n, csr)
    if staged is not None:
        return staged if csr else staged.reshape(shape_of(x) + shape_of(x))
    return _assemble(ctx, tangent, n, csr, shape_of(x))


def _assembled(ctx, tangent, n: int, csr: bool):
    """Under a ``da.jit`` recording (the entries' values are being recorded):
    the scatter of the entries into the matrix as one recorded operation of
    the values (index maps are constants); else None."""
    if not isinstance(tangent, (Structured, Coo)):
        return None
    chunks = to_coo(ctx, tangent).chunks
    stage = next((getattr(v._level, "stage_call", None) for _, _, v in chunks
                  if hasattr(v, "_level")), None)
    if stage is None:
        return None
    idx = [(r, c) for r, c, _ in chunks]
    shape = to_coo(ctx, tangent).shape

    def assemble(*values):
        t = Coo(shape, [(r, c, v) for (r, c), v in zip(idx, values)])
        return _assemble(ctx, t, n, csr, None)
    if not csr:
        assemble = _dense_assembler(ctx, chunks, n)
    return stage(assemble, *[v for _, _, v in chunks])


def _dense_assembler(ctx, chunks, n: int):
    """``_assemble(..., csr=False)`` for one recorded structure, the index
    work done once: the flat positions (``rows * n + cols``, broadcast and
    batched as :func:`_dense` does) are constants of the recording, so a
    replay only gathers the values and bincounts them (the same batches,
    the same order: the same bits as :func:`_dense`)."""
    plan, flats, members, filled = [], [], [], 0
    for c, (rows, cols, v) in enumerate(chunks):
        f = rows * n + cols
        shp = np.broadcast_shapes(np.shape(f), shape_of(v))
        flats.append(np.broadcast_to(f, shp).ravel())
        members.append((c, shp))
        filled += flats[-1].size
        if 4 * filled >= n * n or c == len(chunks) - 1:
            plan.append((flats[0] if len(flats) == 1 else np.concatenate(flats), members))
            flats, members, filled = [], [], 0
    dtype = ctx.dtype

    def assemble(*values):
        h = None
        for flat, group in plan:
            parts = [np.broadcast_to(values[c], shp).ravel() for c, shp in group]
            val = parts[0] if len(parts) == 1 else np.concatenate(parts)
            part = np.bincount(flat, weights=val, minlength=n * n)
            h = part if h is None else np.add(h, part, out=h)
        if h is None:
            h = np.zeros(n * n, dtype=dtype)
        h = (h if h.dtype == dtype else h.astype(dtype)).reshape(n, n)
        return (h + h.T) * 0.5
    return assemble


def _assemble(ctx, tangent, n: int, csr: bool, shape):
    if csr:
        # (T + T.T) / 2 sums a_ij + a_ji on both sides: exactly symmetric.
        return symmetrize(_t_csr(ctx, tangent, n))
    h = _dense(ctx, tangent, n)
    h = h + h.T
    h *= 0.5
    return h if shape is None else h.reshape(shape + shape)


# ============================================================================
# the planner's probe
# ============================================================================
def structured_estimate(fn: Callable, x, dense_limit: int | None = None,
                        csr: bool = False) -> dict:
    """Run one structured pass as a probe and report what it cost: ``fits``
    (see :func:`structured_fits`), ``seconds`` (the pass, measured),
    ``entries`` (COO entries of the result: the CSR assembly's size),
    ``max_dense`` and ``why`` (a sentence for ``Plan.reason``). With
    ``dense_limit``, the probe stops (``fits`` False) before a dense
    fallback tangent of more elements, so probing a large function that
    has no structure stays cheap. With ``csr``, a pass that fits is also
    assembled into ``T`` (:mod:`.assemble`, the CSR result before its
    symmetrisation; included in ``seconds``), returned as ``pattern`` (the
    planner reads the row degrees off it, instead of detecting the pattern)
    and ``entries`` is its ``nnz``. Inside :func:`keep_probe` the pass (or
    ``T``) is kept for the compute.

    >>> import numpy as np
    >>> e = structured_estimate(lambda x: np.sum((x[1:] - x[:-1]) ** 2), np.zeros(5))
    >>> e["fits"], e["entries"] >= 13
    (True, True)
    """
    x = as_array(x)
    check_differentiable(x, "x")
    if isinstance(x, np.generic):
        x = np.asarray(x)
    n = math.prod(shape_of(x))
    why = cannot_structure(x)
    if why is not None:
        return {"fits": False, "why": f"structured: cannot run on {why}", "seconds": 0.0,
                "entries": 0, "max_dense": 0, "pattern": None}
    local = Stats()
    # CPU time, not wall time: on a loaded machine the wall time of this one
    # pass swung 2-14 ms (W4 N=32) against the model's fixed prices of the
    # other modes, so the plan (and a da.jit program recorded from it)
    # flipped between structured and fwd-rev from run to run; the process's
    # CPU time swung 2.1-3.7 ms.
    t0 = time.process_time()
    try:
        tangent, ctx = _run(fn, x, local, dense_limit)
    except TooDense as err:
        return {"fits": False, "why": f"structured skipped: {err}",
                "seconds": time.process_time() - t0, "entries": 0, "max_dense": dense_limit,
                "pattern": None}
    seconds = time.process_time() - t0
    if isinstance(tangent, (Structured, Coo)):
        entries = sum(math.prod(np.broadcast_shapes(np.shape(r), np.shape(c), np.shape(v)))
                      for r, c, v in to_coo(ctx, tangent).chunks)
    else:
        entries = 0 if tangent is Zero else n * n
    falls = sum(local.fallbacks.values())
    # A fallback is costly when its dense tangent outgrows the Hessian (n * n):
    # then some intermediate carries all n directions densely.
    fits = falls == 0 or local.max_dense <= n * n
    t_csr = None
    if fits and csr:
        t_csr = _t_csr(ctx, tangent, n)
        entries = t_csr.nnz
        tangent = None                  # (the entries' memory goes back now)
    seconds = time.process_time() - t0
    box = _KEPT.get()
    if fits and box is not None:
        box.x, box.tangent, box.ctx, box.t_csr = x, tangent, None if csr else ctx, t_csr
    detail = ", ".join(f"{k} x{v}" for k, v in sorted(local.fallbacks.items())) or "none"
    verdict = "fits" if fits else "falls back"
    why = (f"structured {verdict}: {local.structured_ops} structured ops, "
           f"fallbacks: {detail}; largest dense tangent {local.max_dense} "
           f"elements (Hessian {n * n})")
    return {"fits": fits, "why": why, "seconds": seconds, "entries": entries,
            "max_dense": local.max_dense, "pattern": t_csr}


def structured_fits(fn: Callable, x) -> tuple[bool, str]:
    """Whether ``fn``'s Hessian at ``x`` keeps its structure: one structured
    pass, counting the tangents that fell back to dense and the largest dense
    tangent. It fits when no fallback made a dense tangent larger than the
    Hessian itself (a scalar energy's dense gradient tangent is fine). The
    reason string is meant for ``Plan.reason``.

    >>> import numpy as np
    >>> structured_fits(lambda x: np.sum((x[1:] - x[:-1]) ** 2), np.zeros(4))[0]
    True
    >>> fits, reason = structured_fits(lambda x: np.sum(np.cumsum(x)[:, None] * x ** 2),
    ...                                np.ones(4))
    >>> fits, reason.split(";")[0]
    (False, 'structured falls back: 5 structured ops, fallbacks: mixed:multiply x2, rule:cumsum x2')
    """
    e = structured_estimate(fn, x)
    return e["fits"], e["why"]
