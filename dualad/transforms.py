# transforms: open for planner integration
"""Composed transforms: ``hvp``, ``hessian`` (four modes) and ``jacobian``.

Every mode is a composition of the primitive transforms: the derivative rules
differentiate themselves, so forward-over-reverse needs no extra code. The
batched forward-over-reverse Hessian pushes a batch of identity tangents
through the reverse gradient in one pass per chunk; that works because Dual
tangents carry their lead axes through the tape's rules.

Example::

    >>> import numpy as np, dualad as da
    >>> da.hessian(lambda x: (x ** 3).sum())(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._api_util import as_array, as_tuple_positions, check_float_args, check_positions, materialize
from .backend import namespace_of, peel
from .forward.api import DEFAULT_CHUNK_THRESHOLD, jacfwd, jvp, jvp_flat, pick_chunk
from .primitive import shape_of
from .reverse.api import grad, jacrev

HESSIAN_MODES = ("auto", "fwd-rev", "rev-rev", "fwd-fwd", "hyperdual")
JACOBIAN_MODES = ("auto", "fwd", "rev")


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


def _identity_rows(x, start: int, stop: int):
    """Rows ``start:stop`` of the identity, shaped ``(k,) + x.shape``."""
    v = peel(x)
    xp = namespace_of(v)
    n = _size(x)
    seeds = xp.zeros((stop - start, n), dtype=v.dtype)
    seeds[xp.arange(stop - start), xp.arange(start, stop)] = 1
    return seeds.reshape((stop - start,) + shape_of(x))


def _concat(pieces: list):
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)


# ============================================================================
# hvp
# ============================================================================
def hvp(fn: Callable, primals: tuple, tangents: tuple) -> tuple:
    """``(grad, H @ tangents)`` of a scalar ``fn`` at ``primals``, both
    structured like ``primals`` (forward-over-reverse: one jvp of the grad).

    >>> import numpy as np, dualad as da
    >>> g, hv = da.hvp(lambda x: (x ** 3).sum(), (np.array([1.0, 2.0]),),
    ...                (np.array([1.0, 0.0]),))
    >>> g[0], hv[0]
    (array([ 3., 12.]), array([6., 0.]))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("hvp expects primals and tangents as tuples, e.g. hvp(f, (x,), (v,))")
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"hvp got {len(primals)} primals but {len(tangents)} tangents")
    positions = tuple(range(len(primals)))
    check_float_args(primals, positions)
    g = grad(_scalar_checked(fn, "hvp"), positions)
    return jvp(g, primals, tangents)


# ============================================================================
# Hessian modes: each returns blocks[i][j] of shape in_i.shape + in_j.shape
# ============================================================================
def _hess_fwd_rev(f, args, positions, chunk):
    """Batched forward-over-reverse: for each input j, ceil(n_j/chunk) jvps of
    the reverse gradient, each pushing a batch of identity tangents."""
    g = grad(f, positions)
    m = len(positions)
    blocks = [[None] * m for _ in range(m)]
    for j, pj in enumerate(positions):
        x = args[pj]
        n = _size(x)
        k = chunk or _default_chunk(n)
        f_j = _substitute(g, args, (pj,))
        pieces = [[] for _ in range(m)]
        for start in range(0, max(n, 1), k):
            stop = min(start + k, n)
            _, t = jvp_flat(f_j, (x,), (_identity_rows(x, start, stop),),
                            lead_shape=(stop - start,))
            for i in range(m):
                pieces[i].append(materialize(t[i], args[positions[i]], (stop - start,)))
        for i in range(m):
            # Row b of the stacked tangents is d g_i / d x_j[b]: block i,j is
            # its transpose, shaped (n_i, n_j).
            col = np.reshape(_concat(pieces[i]), (n, _size(args[positions[i]])))
            blocks[i][j] = np.transpose(col)
    return blocks


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
        from .forward.hessians import hessian_fwd_fwd
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
    from .forward.hessians import hessian_hyperdual
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


def _choose_mode(fn: Callable, args: tuple, positions: tuple) -> str:
    """The Hessian mode for ``mode="auto"``.

    For now always ``"fwd-rev"``: one reverse sweep per batch of directions
    costs O(n/chunk) passes over a tape of the function, which is the
    best general default (rev-rev re-records the tape per output row;
    fwd-fwd and hyper-dual cost O(n^2) directions). The planner
    (``dualad.planner``) will replace this with a cost model.
    """
    return "fwd-rev"


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


def hessian(fn: Callable, argnums=0, mode: str = "auto", chunk: int | None = None) -> Callable:
    """A function computing the Hessian of scalar ``fn``, shaped
    ``in.shape + in.shape`` (a nested tuple of blocks when ``argnums`` is a
    tuple, as in JAX). Modes: ``"fwd-rev"`` (batched forward-over-reverse),
    ``"rev-rev"``, ``"fwd-fwd"``, ``"hyperdual"``, ``"auto"``. The result is
    exactly symmetric.

    >>> import numpy as np, dualad as da
    >>> f = lambda x, y: (x * x * y).sum()
    >>> da.hessian(f, argnums=(0, 1), mode="rev-rev")(np.array(1.0), np.array(2.0))[0][1]
    array(2.)
    """
    _check_mode(mode, HESSIAN_MODES, "hessian")
    positions, tuple_out = as_tuple_positions(argnums)
    f = _scalar_checked(fn, "hessian")

    def hess(*args):
        args, pos = _prepare(args, positions)
        chosen = _choose_mode(fn, args, pos) if mode == "auto" else mode
        blocks = _symmetrize(_HESSIANS[chosen](f, args, pos, chunk), args, pos)
        return tuple(tuple(row) for row in blocks) if tuple_out else blocks[0][0]

    return hess


# ============================================================================
# jacobian
# ============================================================================
def _choose_jacobian_mode(fn: Callable, args: tuple, positions: tuple) -> str:
    """``"fwd"`` when there are no more inputs than outputs (one forward pass
    per input direction is then cheapest), else ``"rev"``. The planner will
    refine this with probe costs."""
    n_in = sum(_size(args[p]) for p in positions)
    out = fn(*args)
    n_out = sum(_size(o) for o in (out if isinstance(out, (tuple, list)) else [out]))
    return "fwd" if n_in <= n_out else "rev"


def jacobian(fn: Callable, argnums=0, mode: str = "auto", *,
             chunk: int | None = None) -> Callable:
    """A function computing the Jacobian of ``fn``, shaped
    ``out.shape + in.shape`` (a tuple of them for tuple ``argnums``).
    ``mode``: ``"fwd"`` (jacfwd), ``"rev"`` (jacrev) or ``"auto"`` (forward
    when the input is no larger than the output).

    >>> import numpy as np, dualad as da
    >>> da.jacobian(lambda x: np.sin(x) * 2.0, mode="rev")(np.zeros(2))
    array([[2., 0.],
           [0., 2.]])
    """
    _check_mode(mode, JACOBIAN_MODES, "jacobian")

    def jac(*args):
        positions, _ = as_tuple_positions(argnums)
        args_p, pos = _prepare(args, positions)
        chosen = _choose_jacobian_mode(fn, args_p, pos) if mode == "auto" else mode
        transform = jacfwd if chosen == "fwd" else jacrev
        return transform(fn, argnums, chunk=chunk)(*args)

    return jac
