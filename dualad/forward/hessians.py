"""Forward-mode Hessians: forward-over-forward and hyper-dual.

Both take a scalar function of ONE array and return ``in.shape + in.shape``
(a size-1 output counts as scalar). :func:`dualad.hessian` picks between these
and the reverse-mode compositions; call these directly to force a mode.

Example::

    >>> import numpy as np
    >>> from dualad.forward.hessians import hessian_hyperdual
    >>> hessian_hyperdual(lambda x: (x ** 3).sum(), np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dualad.core.args import as_array, identity_rows
from dualad.core.backend import check_differentiable, namespace_of, result_float_dtype
from dualad.core.levels import is_traced, level_of
from dualad.core.registry import shape_of
from dualad.core.zero import Zero
from dualad.forward.api import DEFAULT_CHUNK_THRESHOLD, DEFAULT_MEMORY_CAP, jacfwd, pick_chunk
from dualad.forward.hyperdual import HyperDual, hyperdual_level

__all__ = ["hessian_fwd_fwd", "hessian_hyperdual", "pair_chunk"]

# Live (k1, k2) + S arrays in one pass, as a multiple of one such array: a
# generous bound on the intermediates an elementwise composition keeps alive.
_LIVE_ARRAYS = 16


# ============================================================================
# shared helpers
# ============================================================================
def pair_chunk(n: int, itemsize: int = 8, memory_cap: int = DEFAULT_MEMORY_CAP) -> int:
    """Directions per block when a pass carries ``k * k`` pairs of directions
    over ``n`` entries: ``k**2 * n * itemsize * 16`` bytes stay within
    ``memory_cap``, and ForwardDiff's chunk rule (``pick_chunk``) splits evenly.

    >>> pair_chunk(10), pair_chunk(100), pair_chunk(384)
    (10, 50, 64)
    """
    per_pair = max(1, n) * itemsize * _LIVE_ARRAYS
    k_max = max(1, math.isqrt(memory_cap // per_pair))
    return pick_chunk(n, min(DEFAULT_CHUNK_THRESHOLD, k_max))


def _prepare(x):
    x = as_array(x)
    check_differentiable(x, "x")
    return x


def _scalar_out(out):
    """The output as a 0-d value; ``ValueError`` naming its shape otherwise."""
    shape = shape_of(out)
    if isinstance(out, (tuple, list, dict)) or math.prod(shape) != 1:
        what = f"a {type(out).__name__}" if isinstance(out, (tuple, list, dict)) else (
            f"an output of shape {shape}")
        raise ValueError(f"a Hessian needs a scalar function; fn returned {what}")
    return out if shape == () else out.reshape(())


# ============================================================================
# forward over forward
# ============================================================================
def hessian_fwd_fwd(fn: Callable, x) -> np.ndarray:
    """Hessian of scalar ``fn`` at ``x`` as ``jacfwd(jacfwd(fn))``: batched
    tangents at both levels, chunked so a pass holds at most ``k * k``
    direction pairs (see :func:`pair_chunk`).

    >>> import numpy as np
    >>> hessian_fwd_fwd(lambda x: (x[0] * x[1]) ** 2, np.array([1.0, 2.0]))
    array([[8., 8.],
           [8., 2.]])
    """
    x = _prepare(x)
    k = pair_chunk(math.prod(shape_of(x)), result_float_dtype(x).itemsize)
    scalar_fn = lambda v: _scalar_out(fn(v))
    return jacfwd(jacfwd(scalar_fn, chunk=k), chunk=k)(x)


# ============================================================================
# hyper-dual
# ============================================================================
def hessian_hyperdual(fn: Callable, x, chunk: int | None = None) -> np.ndarray:
    """Hessian of scalar ``fn`` at ``x`` by hyper-dual numbers: one pass per
    block of direction pairs, ``e1`` = identity rows of chunk I, ``e2`` of
    chunk J, ``e12 = 0``; the pass's ``e12`` is the block ``H[I, J]``. Only
    blocks with ``I <= J`` are computed (``H[J, I] = H[I, J].T``), so with
    several chunks the work is about half of a full pass; diagonal blocks are
    averaged with their transposes, so the result is exactly symmetric.
    ``chunk`` directions per block (default: :func:`pair_chunk`, one block for
    small inputs).

    >>> import numpy as np
    >>> hessian_hyperdual(lambda x: np.exp(x).sum(), np.zeros(3), chunk=2)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    x = _prepare(x)
    shape = shape_of(x)
    n = math.prod(shape)
    if chunk is not None and (not isinstance(chunk, (int, np.integer)) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    k = int(chunk) if chunk else pair_chunk(n, result_float_dtype(x).itemsize)
    starts = list(range(0, max(n, 1), k))
    spans = [(s, min(s + k, n)) for s in starts]
    blocks = {}
    with hyperdual_level() as level:
        for i, (si, ei) in enumerate(spans):
            row_i = identity_rows(x, si, ei)     # seeds made per block: O(k n) memory
            for j in range(i, len(spans)):
                sj, ej = spans[j]
                row_j = row_i if j == i else identity_rows(x, sj, ej)
                h = HyperDual._make(x, row_i, row_j, Zero, (ei - si,), (ej - sj,), level)
                out = _scalar_out(fn(h))
                if level_of(out) is not level:
                    blocks[i, j] = None     # fn does not depend on x
                elif i == j:
                    # e12[a, b] and e12[b, a] come from different operation
                    # orders: average them so the result is exactly symmetric.
                    blocks[i, j] = (out.e12 + np.transpose(out.e12)) * 0.5
                else:
                    blocks[i, j] = out.e12
    return _assemble(blocks, spans, x, shape)


def _assemble(blocks: dict, spans: list, x, shape: tuple):
    """The (n, n) matrix from its upper blocks (mirrored), shaped ``S + S``."""
    n = math.prod(shape)
    xp = namespace_of(x)                 # metadata only: not a read of x's values
    dtype = result_float_dtype(x)
    if not any(is_traced(b) for b in blocks.values()):
        H = xp.zeros((n, n), dtype=dtype)
        for (i, j), b in blocks.items():
            if b is None:
                continue
            (si, ei), (sj, ej) = spans[i], spans[j]
            H[si:ei, sj:ej] = b
            if i != j:
                H[sj:ej, si:ei] = b.T
        return H.reshape(shape + shape)
    # A Hessian taken inside another transform: build it from traced blocks.
    m = len(spans)

    def block(i, j):
        if i > j:
            return np.transpose(block(j, i))
        b = blocks[i, j]
        if b is None:
            return xp.zeros((spans[i][1] - spans[i][0], spans[j][1] - spans[j][0]), dtype=dtype)
        return b

    rows = [np.concatenate([block(i, j) for j in range(m)], axis=1) if m > 1 else block(i, 0)
            for i in range(m)]
    full = np.concatenate(rows, axis=0) if m > 1 else rows[0]
    return np.reshape(full, shape + shape)

