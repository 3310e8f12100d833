"""Composed transforms: ``hvp``, ``hessian`` and ``jacobian``, planned by
:mod:`dualad.mixed.planner` in ``mode="auto"``.

Every mode is a composition of the primitive transforms: the derivative rules
differentiate themselves, so forward-over-reverse needs no extra code. The
batched forward-over-reverse Hessian pushes a batch of identity tangents
through the reverse gradient in one pass per chunk; that works because Dual
tangents carry their lead axes through the tape's rules. Chunks of
directions are sized by the memory budget, run through
:func:`dualad.mixed.chunked.run_chunks` (``progress=True``, ``executor=``), and
sparse problems are compressed by coloring (:mod:`dualad.mixed.coloring`).

Example::

    >>> import numpy as np, dualad as da
    >>> da.hessian(lambda x: (x ** 3).sum())(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from dualad.core.args import (
    as_array,
    as_result,
    as_tuple_positions,
    at_positions,
    check_chunk,
    check_float_args,
    check_positions,
    scalar_checked,
    size_of,
)
from dualad.core.backend import dtype_of, namespace_of, peel
from dualad.core.registry import shape_of
from dualad.core.tree import tree_leaves
from dualad.forward.api import DEFAULT_CHUNK_THRESHOLD, jacfwd, jvp, pick_chunk
from dualad.forward.hessians import hessian_fwd_fwd, hessian_hyperdual
from dualad.mixed import budget, planner
from dualad.mixed.chunked import (
    hessian_fwd_rev_chunks,
    hvp_chunks,
    jacobian_fwd_chunks,
    jacobian_rev_chunks,
)
from dualad.mixed.compressed import sparse_hessian, sparse_jacobian, structured_hessian
from dualad.mixed.patterns import volatile_reads
from dualad.mixed.replay import recorded_values, refuse_recording
from dualad.mixed.runner import ExecOptions
from dualad.reverse.api import grad, jacrev
from dualad.structured.api import cannot_structure, keep_probe

HESSIAN_MODES = ("auto", "fwd-rev", "rev-rev", "fwd-fwd", "hyperdual", "sparse", "structured")
JACOBIAN_MODES = ("auto", "fwd", "rev", "sparse")
# Modes that run as chunks of directions (what executor= and progress= drive).
_CHUNKED = {"fwd-rev", "sparse", "fwd", "rev"}


# ============================================================================
# argument helpers
# ============================================================================
def _check_mode(mode: str, valid: tuple, what: str) -> None:
    if mode not in valid:
        raise ValueError(f"unknown {what} mode {mode!r}; valid modes are "
                         + ", ".join(repr(m) for m in valid))


def _csr_flag(csr: bool, sparse, what: str) -> bool:
    """The CSR-output flag; ``sparse=`` is its old name (deprecated: it read
    like ``mode="sparse"``, an algorithm, while it only picks the format)."""
    if sparse is None:
        return csr
    warnings.warn(f"{what}(..., sparse=...) is deprecated: it only selects the output "
                  f"format; use {what}(..., csr=True) (and mode='sparse' for the algorithm)",
                  DeprecationWarning, stacklevel=3)
    return bool(sparse) or csr


def _prepare(args: tuple, positions: tuple) -> tuple[tuple, tuple]:
    """Normalised (non-negative) positions and args with float arrays there."""
    check_positions(positions, len(args))
    positions = tuple(p % len(args) for p in positions)
    check_float_args(args, positions, {p: f"argument {p} (argnums={p})" for p in positions})
    return tuple(as_array(a) if i in positions else a for i, a in enumerate(args)), positions


def _default_chunk(n: int) -> int:
    # As jacfwd: up to 1024 directions per pass, within a memory cap.
    return pick_chunk(n, max(DEFAULT_CHUNK_THRESHOLD, min(n, 1024)),
                      bytes_per_direction=max(1, n) * 8 * 16)


def _options(chunk, progress, executor, memory_budget) -> ExecOptions:
    return ExecOptions(chunk, progress, executor, memory_budget)


def _traced(args: tuple) -> bool:
    """True inside another transform (some argument is a tracer): the
    planner's probes and replays need plain arrays, so the defaults apply."""
    return any(hasattr(leaf, "_level") for a in args for leaf in tree_leaves(a))


def _plan(fn, args, positions, kind, mode, opts: ExecOptions, csr: bool = False):
    """The planner's Plan, or None inside another transform (where the
    structured mode falls back to fwd-rev, see ``_hess_structured``).
    ``csr``: a sparse result was asked for (``"auto"`` then computes it
    sparsely).

    Under a ``da.jit`` recording the planner runs on the recorded values:
    its choice depends on shapes and on the sparsity pattern, which holds for
    every value unless it is volatile (then the recording is refused: the
    replay could need another plan)."""
    raw = recorded_values(args) if _traced(args) else None
    if raw is not None:
        p = planner.plan(fn, *raw, kind=kind, argnums=positions, mode=mode,
                         memory_budget=opts.memory_budget, chunked_only=opts.chunked,
                         csr=csr)
        if volatile_reads(fn, raw, positions, "hessian" if kind == "hessian" else "jacobian"):
            refuse_recording(args)          # the plan holds at this point only
        return p
    if _traced(args):
        if mode == "sparse":
            raise ValueError(f"mode={mode!r} needs plain array arguments; it cannot run "
                             "inside another transform")
        return None
    return planner.plan(fn, *args, kind=kind, argnums=positions, mode=mode,
                        memory_budget=opts.memory_budget, chunked_only=opts.chunked, csr=csr)


def _empty_hessian(args, pos, tuple_out, csr):
    """The Hessian with respect to empty inputs (zeros; CSR with ``csr``)."""
    import scipy.sparse as sp
    blocks = tuple(tuple(sp.csr_matrix((size_of(args[i]), size_of(args[j]))) if csr
                         else np.zeros(shape_of(args[i]) + shape_of(args[j]),
                                       dtype=dtype_of(args[i]))
                         for j in pos) for i in pos)
    return blocks if tuple_out else blocks[0][0]


# ============================================================================
# hvp
# ============================================================================
def hvp(fn: Callable, primals: tuple, tangents: tuple, *, chunk: int | None = None,
        progress: bool = False, executor=None, memory_budget=None) -> tuple:
    """``(grad, H @ tangents)`` of a scalar ``fn`` at ``primals``, both
    structured like ``primals`` (forward-over-reverse: one jvp of the grad).

    Tangents with one more (leading) axis than their primals are a batch of
    directions: ``H @ tangents`` then has that axis too, computed in chunks
    of ``chunk`` directions (default: what the memory budget allows), with a
    progress bar (``progress=True``) or farmed out (``executor=``).

    With one primal the result is two arrays ``(grad, H @ v)``; with several,
    two tuples structured like ``primals``.

    >>> import numpy as np, dualad as da
    >>> g, hv = da.hvp(lambda x: (x ** 3).sum(), (np.array([1.0, 2.0]),),
    ...                (np.array([1.0, 0.0]),))
    >>> g, hv
    (array([ 3., 12.]), array([6., 0.]))
    >>> da.hvp(lambda x: (x ** 3).sum(), (np.array([1.0, 2.0]),), (np.eye(2),))[1]
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("hvp expects primals and tangents as tuples, e.g. hvp(f, (x,), (v,))")
    check_chunk(chunk)
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"hvp got {len(primals)} primals but {len(tangents)} tangents")
    positions = tuple(range(len(primals)))
    check_float_args(primals, positions)
    f = scalar_checked(fn, "hvp")
    n_dirs = _batch_of(primals, tangents)
    if n_dirs is None:
        return _one_or_tuples(jvp(grad(f, positions), primals, tangents), len(primals))
    opts = _options(chunk, progress, executor, memory_budget)
    primals = tuple(as_array(p) for p in primals)
    tangents = tuple(namespace_of(p).asarray(t, dtype=dtype_of(p))
                     for p, t in zip(primals, tangents))
    if opts.chunk is None:
        opts = opts.with_chunk(planner.plan(fn, *primals, kind="hessian", argnums=positions,
                                            mode="fwd-rev",
                                            memory_budget=opts.memory_budget).chunk)
    return _one_or_tuples(hvp_chunks(f, primals, tangents, n_dirs, opts), len(primals))


def _one_or_tuples(res, n: int):
    """hvp's result: two arrays for one primal (as jvp), tuples for several."""
    g, hv = res
    return (g[0], hv[0]) if n == 1 else (tuple(g), tuple(hv))


def _batch_of(primals: tuple, tangents: tuple) -> int | None:
    """The number of directions when every tangent carries a leading batch
    axis over its primal (``None`` for one direction per primal)."""
    counts = set()
    for p, t in zip(primals, tangents):
        ps, ts = shape_of(p), shape_of(t)
        if len(ts) == len(ps) + 1 and ts[1:] == ps:
            counts.add(ts[0])
        else:
            return None
    if len(counts) != 1:
        raise ValueError(f"batched hvp tangents must share one batch size, got {sorted(counts)}")
    return counts.pop()


# ============================================================================
# Hessian modes. Every mode takes (fn, f, args, positions, opts): ``fn`` the
# user's function (it keys the caches), ``f`` the scalar-checked one the
# passes evaluate, ``opts`` the execution options whole. Dense modes return
# blocks[i][j] of shape in_i.shape + in_j.shape (symmetrised by the caller);
# single-argument modes return the finished Hessian (dense or CSR).
# ============================================================================
def _hess_fwd_rev(fn, f, args, positions, opts):
    """Batched forward-over-reverse: for each input j, ceil(n_j/chunk) jvps of
    the reverse gradient, each pushing a batch of identity tangents."""
    return hessian_fwd_rev_chunks(f, args, positions, _default_chunk, opts)


def _hess_rev_rev(fn, f, args, positions, opts):
    """Reverse-over-reverse: jacrev of each gradient output."""
    g = grad(f, positions)
    return [list(jacrev(lambda *a, i=i: g(*a)[i], positions, chunk=opts.chunk)(*args))
            for i in range(len(positions))]


def _hess_fwd_fwd(fn, f, args, positions, opts):
    """Forward-over-forward: the forward.hessians kernel for one input,
    jacfwd of jacfwd for the cross blocks of several."""
    if len(positions) == 1:
        p = positions[0]
        return [[hessian_fwd_fwd(at_positions(f, args, (p,)), args[p])]]
    return [list(jacfwd(jacfwd(f, pi), positions, chunk=opts.chunk)(*args))
            for pi in positions]


def _hess_hyperdual(fn, f, args, positions, opts):
    """Hyper-dual numbers (exact second derivatives, one pass per pair chunk).
    Several inputs are packed into one vector so cross blocks come out too."""
    if len(positions) == 1:
        p = positions[0]
        return [[hessian_hyperdual(at_positions(f, args, (p,)), args[p], chunk=opts.chunk)]]
    xs = [args[p] for p in positions]
    offsets = np.concatenate([[0], np.cumsum([size_of(x) for x in xs])]).astype(int)
    packed = np.concatenate([np.ravel(peel(x)) for x in xs])
    f_at = at_positions(f, args, positions)

    def f_packed(z):
        return f_at(*[np.reshape(z[offsets[i]:offsets[i + 1]], shape_of(x))
                      for i, x in enumerate(xs)])

    full = np.reshape(hessian_hyperdual(f_packed, packed, chunk=opts.chunk),
                      (offsets[-1], offsets[-1]))
    return [[full[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]]
             for j in range(len(xs))] for i in range(len(xs))]


def _hess_sparse(fn, f, args, p, opts, csr):
    """Sparsity detection + star coloring (cached per ``fn``)."""
    return sparse_hessian(fn, args[p], args=args, argnum=p, csr=csr, options=opts)


def _hess_structured(fn, f, args, p, opts, csr):
    """Structured forward-over-reverse where the structured interpreter can
    run; where it cannot (a traced or CuPy input) mixed/ falls back to the
    dense fwd-rev Hessian."""
    if cannot_structure(args[p]) is None:
        return structured_hessian(fn, f, args, p, csr)      # recorded once, then replayed
    block = _symmetrize(_hess_fwd_rev(fn, f, args, (p,), opts), args, (p,))[0][0]
    return _as_csr(block, args[p], args[p]) if csr else block


_DENSE = {"fwd-rev": _hess_fwd_rev, "rev-rev": _hess_rev_rev,
          "fwd-fwd": _hess_fwd_fwd, "hyperdual": _hess_hyperdual}
_SINGLE = {"sparse": _hess_sparse, "structured": _hess_structured}


def _choose_mode(fn: Callable, args: tuple, positions: tuple) -> str:
    """The Hessian mode for ``mode="auto"``: the planner's choice
    (``dualad.plan(fn, *args, kind="hessian")``); ``"fwd-rev"`` inside
    another transform.
    """
    p = _plan(fn, args, positions, "hessian", "auto", ExecOptions())
    return "fwd-rev" if p is None else p.mode


def _symmetrize(blocks: list, args: tuple, positions: tuple) -> list:
    """``(H + H.T) / 2`` block-wise, shaped ``in_i.shape + in_j.shape``; the
    (j, i) block is the exact transpose of the (i, j) block."""
    m = len(positions)
    shapes = [shape_of(args[p]) for p in positions]
    sizes = [size_of(args[p]) for p in positions]
    flat = [[np.reshape(blocks[i][j], (sizes[i], sizes[j])) for j in range(m)]
            for i in range(m)]
    out = [[None] * m for _ in range(m)]
    for i in range(m):
        for j in range(i, m):
            s = (flat[i][j] + np.transpose(flat[j][i])) * 0.5
            out[i][j] = as_result(np.reshape(s, shapes[i] + shapes[j]))
            if j != i:
                out[j][i] = as_result(np.reshape(np.transpose(s), shapes[j] + shapes[i]))
    return out


def hessian(fn: Callable, argnums=0, mode: str = "auto", chunk: int | None = None, *,
            csr: bool = False, sparse: bool | None = None, memory_budget=None,
            progress: bool = False, executor=None) -> Callable:
    """A function computing the Hessian of scalar ``fn``, shaped
    ``in.shape + in.shape`` (a nested tuple of blocks when ``argnums`` is a
    tuple, as in JAX). Exactly symmetric.

    Modes: ``"fwd-rev"`` (batched forward-over-reverse), ``"rev-rev"``,
    ``"fwd-fwd"``, ``"hyperdual"``, ``"sparse"`` (sparsity detection and star
    coloring: one batched pass over the colors), ``"structured"`` (see
    :mod:`dualad.structured`), ``"auto"`` (the planner's choice, see
    :func:`dualad.plan`). ``chunk``: directions per batched pass (default:
    what ``memory_budget`` allows, see :func:`dualad.set_memory_budget`).
    ``csr=True`` returns a ``scipy.sparse.csr_matrix`` ``(n, n)``
    (``sparse=True`` is its deprecated old name); with ``mode="auto"`` it is
    then computed sparsely (coloring or structured), or ``ValueError`` says
    why neither applies. A dense result that cannot fit in memory is refused
    up front (``MemoryError``, see :func:`dualad.mixed.budget.check_dense_fits`).
    ``progress=True`` shows a bar over the chunks; ``executor=`` (any
    ``concurrent.futures.Executor``) runs them there.

    >>> import numpy as np, dualad as da
    >>> f = lambda x, y: (x * x * y).sum()
    >>> da.hessian(f, argnums=(0, 1), mode="rev-rev")(np.array(1.0), np.array(2.0))[0][1]
    array(2.)
    >>> da.hessian(lambda x: np.sum(x[1:] * x[:-1] ** 2), csr=True)(np.ones(4)).nnz
    9
    """
    _check_mode(mode, HESSIAN_MODES, "hessian")
    check_chunk(chunk)
    csr = _csr_flag(csr, sparse, "hessian")
    positions, tuple_out = as_tuple_positions(argnums)
    f = scalar_checked(fn, "hessian")
    opts = _options(chunk, progress, executor, memory_budget)

    @keep_probe()           # a structured probe run while planning serves the compute
    def hess(*args):
        args, pos = _prepare(args, positions)
        n_total = sum(size_of(args[q]) for q in pos)
        if n_total == 0 and not _traced(args):
            return _empty_hessian(args, pos, tuple_out, csr)
        if not csr and not _traced(args):
            budget.check_dense_fits(n_total, n_total, dtype_of(args[pos[0]]).itemsize,
                                    "Hessian")
        p = _plan(fn, args, pos, "hessian", mode, opts, csr)
        chosen = p.mode if p is not None else ("fwd-rev" if mode == "auto" else mode)
        run = opts.with_chunk(p.chunk if p is not None else None)
        if opts.chunked and chosen not in _CHUNKED:
            raise ValueError(f"progress=/executor= need a chunked Hessian mode ('fwd-rev' or "
                             f"'sparse'), not {chosen!r}")
        if chosen in _SINGLE:
            if len(pos) != 1:
                raise ValueError(f"mode={chosen!r} takes one differentiated argument")
            h = _SINGLE[chosen](fn, f, args, pos[0], run, csr)
            return ((h,),) if tuple_out else h
        blocks = _symmetrize(_DENSE[chosen](fn, f, args, pos, run), args, pos)
        if csr:
            blocks = [[_as_csr(b, args[pi], args[pj]) for b, pj in zip(row, pos)]
                      for row, pi in zip(blocks, pos)]
        return tuple(tuple(row) for row in blocks) if tuple_out else blocks[0][0]

    return hess


def _as_csr(block, xi, xj):
    import scipy.sparse as sp
    if not hasattr(block, "shape"):
        raise ValueError("csr=True needs a function with a single array output")
    stage = getattr(getattr(block, "_level", None), "stage_call", None)
    if stage is not None:           # recorded by da.jit: the conversion is one more operation
        return stage(lambda b: _as_csr(b, xi, xj), block)
    return sp.csr_matrix(np.reshape(block, (size_of(xi) if xi is not None else -1,
                                            size_of(xj))))


# ============================================================================
# jacobian
# ============================================================================
def _choose_jacobian_mode(fn: Callable, args: tuple, positions: tuple) -> str:
    """The Jacobian mode for ``mode="auto"``: the planner's choice (forward
    when there are no more inputs than outputs unless the cost model finds
    reverse or sparse 2x cheaper); the textbook rule inside a transform."""
    p = _plan(fn, args, positions, "jacobian", "auto", ExecOptions())
    if p is not None:
        return p.mode
    n_in = sum(size_of(args[q]) for q in positions)
    out = fn(*args)
    n_out = sum(size_of(o) for o in (out if isinstance(out, (tuple, list)) else [out]))
    return "fwd" if n_in <= n_out else "rev"


def _jac_dense(fn, args, pos, argnums, tuple_out, chosen, opts):
    """A dense Jacobian: chunked passes when the caller controls the chunks
    (progress/executor), else jacfwd/jacrev."""
    if opts.chunked:
        run = jacobian_fwd_chunks if chosen == "fwd" else jacobian_rev_chunks
        blocks = tuple(run(fn, args, q, _default_chunk(size_of(args[q])), opts) for q in pos)
        return blocks if tuple_out else blocks[0]
    transform = jacfwd if chosen == "fwd" else jacrev
    return transform(fn, argnums, chunk=opts.chunk)(*args)


def jacobian(fn: Callable, argnums=0, mode: str = "auto", *, chunk: int | None = None,
             csr: bool = False, sparse: bool | None = None, memory_budget=None,
             progress: bool = False, executor=None, holomorphic: bool = False) -> Callable:
    """A function computing the Jacobian of ``fn``, shaped
    ``out.shape + in.shape`` (a tuple of them for tuple ``argnums``).
    ``mode``: ``"fwd"`` (jacfwd), ``"rev"`` (jacrev), ``"sparse"``
    (sparsity detection and coloring: one batched pass over the colors) or
    ``"auto"`` (the planner's choice, see :func:`dualad.plan`). ``chunk``,
    ``memory_budget``, ``progress``, ``executor`` as for :func:`hessian`;
    ``csr=True`` returns a ``scipy.sparse.csr_matrix`` ``(n_out, n_in)``
    (``sparse=True``: its deprecated old name), with ``mode="auto"``
    computed by coloring. ``mode="sparse"`` also takes several output arrays
    (colored as their concatenation). Complex inputs or
    ``holomorphic=True`` (see :func:`dualad.grad`) use jacrev, or jacfwd for
    ``mode="fwd"``, without planning.

    >>> import numpy as np, dualad as da
    >>> da.jacobian(lambda x: np.sin(x) * 2.0, mode="rev")(np.zeros(2))
    array([[2., 0.],
           [0., 2.]])
    """
    _check_mode(mode, JACOBIAN_MODES, "jacobian")
    check_chunk(chunk)
    csr = _csr_flag(csr, sparse, "jacobian")
    opts = _options(chunk, progress, executor, memory_budget)

    def jac(*args):
        positions, tuple_out = as_tuple_positions(argnums)
        args_p, pos = _prepare(args, positions)
        if holomorphic or _any_complex([args_p[q] for q in pos]):
            transform = jacfwd if mode == "fwd" else jacrev
            return transform(fn, argnums, chunk=opts.chunk, holomorphic=holomorphic)(*args)
        if (mode == "sparse" or csr) and not _traced(args_p) \
                and sum(size_of(args_p[q]) for q in pos) == 0:
            return _empty_jacobian(fn, args_p, pos, tuple_out, csr)
        p = _plan(fn, args_p, pos, "jacobian", mode, opts, csr)
        if p is not None and not csr:
            budget.check_dense_fits(p.n_out, p.n_in, dtype_of(args_p[pos[0]]).itemsize,
                                    "Jacobian")
        if p is not None and p.mode == "sparse" and p.probe is not None \
                and p.probe.out_leaves != 1:
            return _sparse_jacobian_leaves(fn, args_p, pos, p, csr, tuple_out,
                                           opts.with_chunk(p.chunk))
        if p is None:
            chosen = _choose_jacobian_mode(fn, args_p, pos) if mode == "auto" else mode
        else:
            chosen = p.mode
        run = opts.with_chunk(p.chunk if p is not None else None)
        if chosen == "sparse":
            if len(pos) != 1:
                raise ValueError("mode='sparse' takes one differentiated argument")
            j = sparse_jacobian(fn, args_p[pos[0]], args=args_p, argnum=pos[0],
                                direction=p.direction or "auto", csr=csr, options=run)
            return (j,) if tuple_out else j
        res = _jac_dense(fn, args_p if opts.chunked else args, pos, argnums, tuple_out,
                         chosen, run)
        if not csr:
            return res
        blocks = res if tuple_out else (res,)
        out = tuple(_as_csr(b, None, args_p[q]) for b, q in zip(blocks, pos))
        return out if tuple_out else out[0]

    return jac


def _empty_jacobian(fn, args, pos, tuple_out, csr):
    """The Jacobian with respect to empty inputs (zeros; CSR with ``csr``)."""
    import scipy.sparse as sp
    leaves = tree_leaves(fn(*args))
    if len(leaves) != 1:
        raise ValueError("a sparse Jacobian of empty inputs needs a single array output")
    o = shape_of(leaves[0])
    blocks = tuple(sp.csr_matrix((size_of(leaves[0]), 0)) if csr
                   else np.zeros(o + shape_of(args[q]), dtype=dtype_of(args[q])) for q in pos)
    return blocks if tuple_out else blocks[0]


def _sparse_jacobian_leaves(fn, args, pos, p, csr, tuple_out, opts):
    """mode='sparse' for a function with several output arrays: the colored
    Jacobian of their concatenation, split back per output (CSR blocks with
    ``csr=True``, else ``out_k.shape + x.shape`` arrays)."""
    if len(pos) != 1:
        raise ValueError("mode='sparse' takes one differentiated argument")
    q = pos[0]
    out = fn(*args)
    shapes = [shape_of(leaf) for leaf in tree_leaves(out)]
    xp = namespace_of(peel(args[q]))

    def flat(*a):
        return xp.concatenate([xp.reshape(leaf, (-1,)) for leaf in tree_leaves(fn(*a))])
    j = sparse_jacobian(flat, args[q], args=args, argnum=q, direction=p.direction or "auto",
                        csr=True, options=opts)
    bounds = np.cumsum([0] + [int(np.prod(s, dtype=np.int64)) for s in shapes])
    parts = [j[bounds[k]:bounds[k + 1]] for k in range(len(shapes))]
    if not csr:
        parts = [np.reshape(b.toarray(), s + shape_of(args[q])) for b, s in zip(parts, shapes)]
    res = tuple(parts) if isinstance(out, (tuple, list)) else parts
    return (res,) if tuple_out else res


def _any_complex(values) -> bool:
    return any(np.iscomplexobj(peel(v)) for v in tree_leaves(values))
