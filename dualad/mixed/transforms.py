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

from collections.abc import Callable

import numpy as np

from dualad.core.args import as_array, as_tuple_positions, check_float_args, check_positions
from dualad.core.backend import namespace_of, peel
from dualad.core.registry import shape_of
from dualad.core.tree import tree_leaves
from dualad.forward.api import DEFAULT_CHUNK_THRESHOLD, jacfwd, jvp, pick_chunk
from dualad.mixed import planner
from dualad.mixed.chunked import (
    hessian_fwd_rev_chunks,
    hvp_chunks,
    jacobian_fwd_chunks,
    jacobian_rev_chunks,
)
from dualad.mixed.coloring import sparse_hessian, sparse_jacobian
from dualad.reverse.api import grad, jacrev

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


def _scalar_checked(fn: Callable, what: str) -> Callable:
    """``fn``, raising ``ValueError`` (with the shape) unless it returns one
    number: grad would otherwise silently sum a vector output."""
    def scalar_fn(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, (tuple, list, dict)):
            raise ValueError(f"{what} needs a scalar function; fn returned a "
                             f"{type(out).__name__}")
        shape = shape_of(out)
        if int(np.prod(shape, dtype=np.int64)) != 1:
            raise ValueError(f"{what} needs a scalar function; fn returned an output of "
                             f"shape {shape}")
        return out
    return scalar_fn


def _size(x) -> int:
    return int(np.prod(shape_of(x), dtype=np.int64))


def _prepare(args: tuple, positions: tuple) -> tuple[tuple, tuple]:
    """Normalised (non-negative) positions and args with float arrays there."""
    check_positions(positions, len(args))
    positions = tuple(p % len(args) for p in positions)
    check_float_args(args, positions, {p: f"argument {p} (argnums={p})" for p in positions})
    return tuple(as_array(a) if i in positions else a for i, a in enumerate(args)), positions


def _substitute(fn: Callable, args: tuple, positions: tuple) -> Callable:
    """``fn`` as a function of the arguments at ``positions`` only."""
    def inner(*xs):
        call = list(args)
        for p, x in zip(positions, xs):
            call[p] = x
        return fn(*call)
    return inner


def _default_chunk(n: int) -> int:
    # As jacfwd: up to 1024 directions per pass, within a memory cap.
    return pick_chunk(n, max(DEFAULT_CHUNK_THRESHOLD, min(n, 1024)),
                      bytes_per_direction=max(1, n) * 8 * 16)


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

    >>> import numpy as np, dualad as da
    >>> g, hv = da.hvp(lambda x: (x ** 3).sum(), (np.array([1.0, 2.0]),),
    ...                (np.array([1.0, 0.0]),))
    >>> g[0], hv[0]
    (array([ 3., 12.]), array([6., 0.]))
    >>> da.hvp(lambda x: (x ** 3).sum(), (np.array([1.0, 2.0]),), (np.eye(2),))[1][0]
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("hvp expects primals and tangents as tuples, e.g. hvp(f, (x,), (v,))")
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"hvp got {len(primals)} primals but {len(tangents)} tangents")
    positions = tuple(range(len(primals)))
    check_float_args(primals, positions)
    f = _scalar_checked(fn, "hvp")
    n_dirs = _batch_of(primals, tangents)
    if n_dirs is None:
        return jvp(grad(f, positions), primals, tangents)
    primals = tuple(as_array(p) for p in primals)
    tangents = tuple(namespace_of(peel(p)).asarray(t, dtype=peel(p).dtype)
                     for p, t in zip(primals, tangents))
    if chunk is None:
        chunk = planner.plan(fn, *primals, kind="hessian", argnums=positions, mode="fwd-rev",
                     memory_budget=memory_budget).chunk
    return hvp_chunks(f, primals, tangents, n_dirs, chunk, progress=progress, executor=executor)


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
# Hessian modes: each returns blocks[i][j] of shape in_i.shape + in_j.shape
# ============================================================================
def _hess_fwd_rev(f, args, positions, chunk, progress=False, executor=None):
    """Batched forward-over-reverse: for each input j, ceil(n_j/chunk) jvps of
    the reverse gradient, each pushing a batch of identity tangents (run by
    :func:`dualad.mixed.chunked.hessian_fwd_rev_chunks`)."""
    return hessian_fwd_rev_chunks(f, args, positions, chunk, _default_chunk,
                                  progress=progress, executor=executor)


def _hess_rev_rev(f, args, positions, chunk):
    """Reverse-over-reverse: jacrev of each gradient output."""
    g = grad(f, positions)
    blocks = []
    for i in range(len(positions)):
        g_i = lambda *a, i=i: g(*a)[i]
        row = jacrev(g_i, positions, chunk=chunk)(*args)
        blocks.append(list(row))
    return blocks


def _hess_fwd_fwd(f, args, positions, chunk):
    """Forward-over-forward: the forward.hessians kernel for one input,
    jacfwd of jacfwd for the cross blocks of several."""
    if len(positions) == 1:
        from dualad.forward.hessians import hessian_fwd_fwd
        p = positions[0]
        return [[hessian_fwd_fwd(_substitute(f, args, (p,)), args[p])]]
    blocks = []
    for pi in positions:
        g_i = jacfwd(f, pi)
        blocks.append(list(jacfwd(g_i, positions, chunk=chunk)(*args)))
    return blocks


def _hess_hyperdual(f, args, positions, chunk):
    """Hyper-dual numbers (exact second derivatives, one pass per pair chunk).
    Several inputs are packed into one vector so cross blocks come out too."""
    from dualad.forward.hessians import hessian_hyperdual
    if len(positions) == 1:
        p = positions[0]
        return [[hessian_hyperdual(_substitute(f, args, (p,)), args[p], chunk=chunk)]]
    xs = [args[p] for p in positions]
    sizes = [_size(x) for x in xs]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    packed = np.concatenate([np.ravel(peel(x)) for x in xs])

    def f_packed(z):
        parts = [np.reshape(z[offsets[i]:offsets[i + 1]], shape_of(x)) for i, x in enumerate(xs)]
        return _substitute(f, args, positions)(*parts)

    full = np.reshape(hessian_hyperdual(f_packed, packed, chunk=chunk),
                      (offsets[-1], offsets[-1]))
    return [[full[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]]
             for j in range(len(xs))] for i in range(len(xs))]


_HESSIANS = {"fwd-rev": _hess_fwd_rev, "rev-rev": _hess_rev_rev,
             "fwd-fwd": _hess_fwd_fwd, "hyperdual": _hess_hyperdual}


def _traced(args: tuple) -> bool:
    """True inside another transform (some argument is a tracer): the
    planner's probes and replays need plain arrays, so the defaults apply."""
    return any(hasattr(leaf, "_level") for a in args for leaf in tree_leaves(a))


def _plan(fn, args, positions, kind, mode, memory_budget, chunked, csr=False):
    """The planner's Plan, or None inside another transform. ``csr``: a
    sparse result was asked for (``"auto"`` then computes sparsely)."""
    if _traced(args):
        if mode in ("sparse", "structured"):
            raise ValueError(f"mode={mode!r} needs plain array arguments; it cannot run "
                             "inside another transform")
        return None
    return planner.plan(fn, *args, kind=kind, argnums=positions, mode=mode,
                        memory_budget=memory_budget, chunked_only=chunked, csr=csr)


def _check_dense_fits(n_rows: int, n_cols: int, itemsize: int, what: str) -> None:
    """Refuse up front a dense result that cannot fit in this process's
    memory (:func:`dualad.mixed.planner.memory_limit`: free RAM, cgroup
    limit, RLIMIT_AS), instead of failing after minutes of work."""
    need = 2 * n_rows * n_cols * itemsize          # the result and one working copy
    limit = planner.memory_limit()
    if need > limit:
        raise MemoryError(
            f"the dense {what} is {n_rows} x {n_cols} "
            f"({planner.format_bytes(n_rows * n_cols * itemsize)}); with a working copy "
            f"that is over the {planner.format_bytes(limit)} this process can use. Ask for a "
            f"sparse result (sparse=True: CSR, computed by coloring or structured tangents) "
            f"or use Hessian-vector products (dualad.hvp) / jvp / vjp instead")


def _empty_hessian(args, pos, tuple_out, sparse):
    """The Hessian of a function of empty inputs (zeros; CSR with sparse)."""
    import scipy.sparse as sp
    blocks = tuple(tuple(sp.csr_matrix((_size(args[i]), _size(args[j])))
                         if sparse else np.zeros(shape_of(args[i]) + shape_of(args[j]),
                                                 dtype=peel(args[i]).dtype)
                         for j in pos) for i in pos)
    return blocks if tuple_out else blocks[0][0]


def _choose_mode(fn: Callable, args: tuple, positions: tuple) -> str:
    """The Hessian mode for ``mode="auto"``: the planner's choice
    (``dualad.plan(fn, *args, kind="hessian")``); ``"fwd-rev"`` inside
    another transform.
    """
    p = _plan(fn, args, positions, "hessian", "auto", None, False)
    return "fwd-rev" if p is None else p.mode


def _symmetrize(blocks: list, args: tuple, positions: tuple) -> list:
    """``(H + H.T) / 2`` block-wise, shaped ``in_i.shape + in_j.shape``; the
    (j, i) block is the exact transpose of the (i, j) block."""
    m = len(positions)
    shapes = [shape_of(args[p]) for p in positions]
    sizes = [_size(args[p]) for p in positions]
    flat = [[np.reshape(blocks[i][j], (sizes[i], sizes[j])) for j in range(m)]
            for i in range(m)]
    out = [[None] * m for _ in range(m)]
    for i in range(m):
        for j in range(i, m):
            s = (flat[i][j] + np.transpose(flat[j][i])) * 0.5
            out[i][j] = _plain(np.reshape(s, shapes[i] + shapes[j]))
            if j != i:
                out[j][i] = _plain(np.reshape(np.transpose(s), shapes[j] + shapes[i]))
    return out


def _plain(x):
    # A contiguous ndarray for results outside any transform; tracers (a
    # Hessian taken inside another transform) pass through unchanged.
    if hasattr(x, "_level"):
        return x
    # (not ascontiguousarray: it turns a 0-d Hessian into shape (1,))
    return x if x.flags.c_contiguous else x.copy()


def hessian(fn: Callable, argnums=0, mode: str = "auto", chunk: int | None = None, *,
            sparse: bool = False, memory_budget=None, progress: bool = False,
            executor=None) -> Callable:
    """A function computing the Hessian of scalar ``fn``, shaped
    ``in.shape + in.shape`` (a nested tuple of blocks when ``argnums`` is a
    tuple, as in JAX). Exactly symmetric.

    Modes: ``"fwd-rev"`` (batched forward-over-reverse), ``"rev-rev"``,
    ``"fwd-fwd"``, ``"hyperdual"``, ``"sparse"`` (sparsity detection and star
    coloring: one batched pass over the colors), ``"structured"`` (see
    :mod:`dualad.structured`), ``"auto"`` (the planner's choice, see
    :func:`dualad.plan`). ``chunk``: directions per batched pass (default:
    what ``memory_budget`` allows, see :func:`dualad.set_memory_budget`).
    ``sparse=True`` returns a ``scipy.sparse.csr_matrix`` ``(n, n)``.
    ``progress=True`` shows a bar over the chunks; ``executor=`` (any
    ``concurrent.futures.Executor``) runs them there.

    >>> import numpy as np, dualad as da
    >>> f = lambda x, y: (x * x * y).sum()
    >>> da.hessian(f, argnums=(0, 1), mode="rev-rev")(np.array(1.0), np.array(2.0))[0][1]
    array(2.)
    >>> da.hessian(lambda x: np.sum(x[1:] * x[:-1] ** 2), sparse=True)(np.ones(4)).nnz
    9
    """
    _check_mode(mode, HESSIAN_MODES, "hessian")
    positions, tuple_out = as_tuple_positions(argnums)
    f = _scalar_checked(fn, "hessian")
    chunked = progress or executor is not None

    def hess(*args):
        args, pos = _prepare(args, positions)
        n_total = sum(_size(args[q]) for q in pos)
        if n_total == 0 and not _traced(args):
            return _empty_hessian(args, pos, tuple_out, sparse)
        if not sparse and not _traced(args):
            _check_dense_fits(n_total, n_total, peel(args[pos[0]]).dtype.itemsize, "Hessian")
        p = _plan(fn, args, pos, "hessian", mode, memory_budget, chunked, csr=sparse)
        chosen = p.mode if p is not None else ("fwd-rev" if mode == "auto" else mode)
        k = chunk or (p.chunk if p is not None else None)
        if chunked and chosen not in _CHUNKED:
            raise ValueError(f"progress=/executor= need a chunked Hessian mode ('fwd-rev' or "
                             f"'sparse'), not {chosen!r}")
        if chosen in ("sparse", "structured"):
            if len(pos) != 1:
                raise ValueError(f"mode={chosen!r} takes one differentiated argument")
            h = _hess_single(chosen, f, fn, args, pos[0], k, sparse, progress, executor)
            return ((h,),) if tuple_out else h
        if chosen == "fwd-rev":
            raw = _hess_fwd_rev(f, args, pos, k, progress, executor)
        else:
            raw = _HESSIANS[chosen](f, args, pos, k)
        blocks = _symmetrize(raw, args, pos)
        if sparse:
            blocks = [[_as_csr(b, args[pi], args[pj]) for b, pj in zip(row, pos)]
                      for row, pi in zip(blocks, pos)]
        return tuple(tuple(row) for row in blocks) if tuple_out else blocks[0][0]

    return hess


def _hess_single(mode, f, fn, args, p, chunk, sparse, progress, executor):
    """A sparse or structured Hessian of one argument."""
    if mode == "sparse":
        return sparse_hessian(f, args[p], args=args, argnum=p, sparse=sparse, chunk=chunk,
                              progress=progress, executor=executor, cache_key=fn)
    from dualad.structured import hessian_structured
    return hessian_structured(_substitute(f, args, (p,)), args[p], sparse=sparse)


def _as_csr(block, xi, xj):
    import scipy.sparse as sp
    return sp.csr_matrix(np.reshape(block, (_size(xi), _size(xj))))


# ============================================================================
# jacobian
# ============================================================================
def _choose_jacobian_mode(fn: Callable, args: tuple, positions: tuple) -> str:
    """The Jacobian mode for ``mode="auto"``: the planner's choice (forward
    when there are no more inputs than outputs unless the cost model finds
    reverse or sparse 2x cheaper); the textbook rule inside a transform."""
    p = _plan(fn, args, positions, "jacobian", "auto", None, False)
    if p is not None:
        return p.mode
    n_in = sum(_size(args[q]) for q in positions)
    out = fn(*args)
    n_out = sum(_size(o) for o in (out if isinstance(out, (tuple, list)) else [out]))
    return "fwd" if n_in <= n_out else "rev"


def jacobian(fn: Callable, argnums=0, mode: str = "auto", *, chunk: int | None = None,
             sparse: bool = False, memory_budget=None, progress: bool = False,
             executor=None) -> Callable:
    """A function computing the Jacobian of ``fn``, shaped
    ``out.shape + in.shape`` (a tuple of them for tuple ``argnums``).
    ``mode``: ``"fwd"`` (jacfwd), ``"rev"`` (jacrev), ``"sparse"``
    (sparsity detection and coloring: one batched pass over the colors) or
    ``"auto"`` (the planner's choice, see :func:`dualad.plan`). ``chunk``,
    ``memory_budget``, ``progress``, ``executor`` as for :func:`hessian`;
    ``sparse=True`` returns a ``scipy.sparse.csr_matrix`` ``(n_out, n_in)``.

    >>> import numpy as np, dualad as da
    >>> da.jacobian(lambda x: np.sin(x) * 2.0, mode="rev")(np.zeros(2))
    array([[2., 0.],
           [0., 2.]])
    """
    _check_mode(mode, JACOBIAN_MODES, "jacobian")
    chunked = progress or executor is not None

    def jac(*args):
        positions, tuple_out = as_tuple_positions(argnums)
        args_p, pos = _prepare(args, positions)
        if (mode == "sparse" or sparse) and not _traced(args_p):
            if sum(_size(args_p[q]) for q in pos) == 0:
                return _empty_jacobian(fn, args_p, pos, tuple_out, sparse)
        p = _plan(fn, args_p, pos, "jacobian", mode, memory_budget, chunked, csr=sparse)
        if p is not None and not sparse:
            _check_dense_fits(p.n_out, p.n_in, peel(args_p[pos[0]]).dtype.itemsize, "Jacobian")
        if p is not None and p.mode == "sparse" and p.probe is not None \
                and p.probe.out_leaves != 1:
            return _sparse_jacobian_leaves(fn, args_p, pos, p, sparse, chunk, tuple_out,
                                           progress, executor)
        if p is None:
            chosen = _choose_jacobian_mode(fn, args_p, pos) if mode == "auto" else mode
        else:
            chosen = p.mode
        k = chunk or (p.chunk if p is not None else None)
        if chosen == "sparse":
            if len(pos) != 1:
                raise ValueError("mode='sparse' takes one differentiated argument")
            j = sparse_jacobian(fn, args_p[pos[0]], args=args_p, argnum=pos[0],
                                direction=p.direction or "auto", sparse=sparse, chunk=k,
                                progress=progress, executor=executor, cache_key=fn)
            return (j,) if tuple_out else j
        if chunked:
            run = jacobian_fwd_chunks if chosen == "fwd" else jacobian_rev_chunks
            blocks = tuple(run(fn, args_p, q, k or _default_chunk(_size(args_p[q])),
                               progress=progress, executor=executor) for q in pos)
            res = blocks if tuple_out else blocks[0]
        else:
            transform = jacfwd if chosen == "fwd" else jacrev
            res = transform(fn, argnums, chunk=k)(*args)
        if not sparse:
            return res
        blocks = res if tuple_out else (res,)
        out = tuple(_jac_csr(b, args_p[q]) for b, q in zip(blocks, pos))
        return out if tuple_out else out[0]

    return jac


def _empty_jacobian(fn, args, pos, tuple_out, sparse):
    """The Jacobian with respect to empty inputs (zeros; CSR with sparse)."""
    import scipy.sparse as sp
    out = fn(*args)
    leaves = tree_leaves(out)
    if len(leaves) != 1:
        raise ValueError("a sparse Jacobian of empty inputs needs a single array output")
    o = shape_of(leaves[0])
    blocks = tuple(sp.csr_matrix((_size(leaves[0]), 0)) if sparse
                   else np.zeros(o + shape_of(args[q]), dtype=peel(args[q]).dtype) for q in pos)
    return blocks if tuple_out else blocks[0]


def _sparse_jacobian_leaves(fn, args, pos, p, sparse, chunk, tuple_out, progress, executor):
    """mode='sparse' for a function with several output arrays: the colored
    Jacobian of their concatenation, split back per output (CSR blocks with
    ``sparse=True``, else ``out_k.shape + x.shape`` arrays)."""
    if len(pos) != 1:
        raise ValueError("mode='sparse' takes one differentiated argument")
    q = pos[0]
    out = fn(*args)
    leaves = tree_leaves(out)
    shapes = [shape_of(leaf) for leaf in leaves]
    xp = namespace_of(peel(args[q]))

    def flat(*a):
        return xp.concatenate([xp.reshape(leaf, (-1,)) for leaf in tree_leaves(fn(*a))])
    j = sparse_jacobian(flat, args[q], args=args, argnum=q, direction=p.direction or "auto",
                        sparse=True, chunk=chunk, progress=progress, executor=executor)
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    parts = [j[bounds[k]:bounds[k + 1]] for k in range(len(shapes))]
    if not sparse:
        parts = [np.reshape(b.toarray(), s + shape_of(args[q])) for b, s in zip(parts, shapes)]
    res = tuple(parts) if isinstance(out, (tuple, list)) else parts
    return (res,) if tuple_out else res


def _jac_csr(block, x):
    import scipy.sparse as sp
    if not hasattr(block, "shape"):
        raise ValueError("sparse=True needs a function with a single array output")
    n = _size(x)
    return sp.csr_matrix(np.reshape(block, (-1, n)))
