"""Cached sparsity patterns and colorings of a function: the layer above
detection (:mod:`dualad.mixed.sparsity`) and the coloring algorithms
(:mod:`dualad.mixed.coloring`), storing into :mod:`dualad.mixed.cache`.

A pattern found while the function read a traced value (a branch, a sort, a
data-dependent index) holds at that point only: it is *volatile*, never
reused, and so is its coloring (see the contract in
:mod:`dualad.mixed.replay`).

Example::

    >>> import numpy as np, dualad as da
    >>> f = lambda x: np.sum((x[1:] - x[:-1] ** 2) ** 2)
    >>> da.sparsity(f, np.ones(4), kind="hessian").toarray().astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 1, 0],
           [0, 1, 1, 1],
           [0, 0, 1, 1]])
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.args import at_positions
from dualad.mixed.cache import cache_for, content_key, signature_key
from dualad.mixed.coloring import Coloring, column_coloring, row_coloring, star_coloring
from dualad.mixed.fingerprint import fingerprint, self_contained
from dualad.mixed.replay import recorded_values, refuse_recording
from dualad.mixed.sparsity import hessian_pattern, jacobian_pattern

__all__ = ["sparsity", "pattern", "volatile_reads", "coloring_for", "pattern_key"]

_COLORINGS = {"hessian": star_coloring, "jacobian-fwd": column_coloring,
              "jacobian-rev": row_coloring}


def pattern_key(kind: str, args: tuple, positions: tuple, fn=None, *,
                value: list | None = None) -> tuple:
    """Cache key for what the values may change (patterns, colorings,
    recorded passes): the kind, each differentiated argument's shape and
    dtype, a digest of the others; with ``fn``, also ``fn``'s structure
    fingerprint, so a changed closure or global never reuses a stale entry
    (``value``: receives ``fn(*args)`` from the fingerprint's evaluation)."""
    sig = signature_key(kind, args, positions)[2]
    parts = tuple(sig[i] if i in positions else content_key(a) for i, a in enumerate(args))
    key = (kind, tuple(positions), parts)
    if fn is None:
        return key
    # A function that can only see its arguments needs no fingerprint.
    if self_contained(fn):
        return key + (("self-contained",),)
    return key + (fingerprint(fn, args, positions, value=value),)


def sparsity(fn: Callable, x, kind: str = "jacobian", *, cache: bool = True):
    """The sparsity pattern of ``fn``'s Jacobian (``(n_out, n_in)``) or, for a
    scalar ``fn``, of its Hessian (``(n, n)``, symmetric) at ``x``, as a boolean
    ``scipy.sparse.csr_matrix`` (inputs and outputs flattened in C order).

    >>> import numpy as np, dualad as da
    >>> da.sparsity(lambda x: np.cumsum(x), np.ones(3)).toarray().astype(int)
    array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 1]])
    """
    import scipy.sparse as sp
    if kind not in ("jacobian", "hessian"):
        raise ValueError(f"unknown sparsity kind {kind!r}; valid kinds are 'jacobian', 'hessian'")
    return sp.csr_matrix(pattern(fn, (x,), (0,), kind, cache=cache))


def _cached(fn: Callable, store_name: str, kind: str, args: tuple, positions: tuple,
            cache: bool, value: list | None = None) -> tuple:
    """``(store, key, hit)``: ``fn``'s store of that name, the key of this
    call and the entry under it (``None`` when absent or ``cache`` is off);
    ``value`` as for :func:`pattern_key`."""
    key = pattern_key(kind, args, positions, fn, value=value)
    store = getattr(cache_for(fn), store_name)
    return store, key, (store.get(key) if cache else None)


def pattern(fn: Callable, args: tuple, positions: tuple, kind: str, *,
            cache: bool = True) -> np.ndarray:
    """Cached dense boolean pattern of ``fn`` w.r.t. ``args[positions[0]]``
    (one differentiated argument, the others held fixed).

    >>> import numpy as np
    >>> pattern(lambda x, c: x * c, (np.ones(2), np.array([0.0, 2.0])), (0,), "jacobian")
    array([[False, False],
           [False,  True]])
    """
    if len(positions) != 1:
        raise ValueError("sparsity detection takes one differentiated argument")
    store, key, hit = _cached(fn, "patterns", "pattern-" + kind, args, positions, cache)
    if hit is not None:
        return hit
    finder = hessian_pattern if kind == "hessian" else jacobian_pattern
    reads: list = []
    result = finder(at_positions(fn, args, positions), args[positions[0]], reads)
    if hasattr(result, "setflags"):      # a large pattern is a CSR matrix
        result.setflags(write=False)
    if cache:
        if reads:
            # The function read a traced value: the pattern holds at this
            # point only. Not reused; the reads are kept for Plan.reason.
            store.put(("volatile",) + key, tuple(dict.fromkeys(reads)))
        else:
            store.put(key, result)
    return result


def volatile_reads(fn: Callable, args: tuple, positions: tuple, kind: str) -> tuple:
    """Notes on the reads of traced values seen when the pattern was last
    found (empty when it holds at every point with the same structure).

    >>> import numpy as np
    >>> f = lambda x: np.sort(x) * 2.0
    >>> _ = pattern(f, (np.ones(3),), (0,), "jacobian")
    >>> volatile_reads(f, (np.ones(3),), (0,), "jacobian")
    ('a read of a traced value of shape (3,)',)
    """
    key = pattern_key("pattern-" + kind, args, positions, fn)
    return cache_for(fn).patterns.get(("volatile",) + key, ())


def coloring_for(fn: Callable, args: tuple, positions: tuple, kind: str, *,
                 cache: bool = True, value: list | None = None) -> Coloring:
    """Cached coloring of ``fn``'s pattern: ``kind`` ``"hessian"`` (star),
    ``"jacobian-fwd"`` (columns) or ``"jacobian-rev"`` (rows). Its recorded
    passes (``Coloring.programs``) live and go with it. ``value``: a list
    that receives ``fn(*args)`` when the cache key's fingerprint evaluated it.

    >>> import numpy as np
    >>> coloring_for(lambda x: np.sum(x[1:] * x[:-1]), (np.ones(9),), (0,), "hessian").n_colors
    3
    """
    if kind not in _COLORINGS:
        raise ValueError(f"unknown coloring kind {kind!r}")
    raw = recorded_values(args)
    if raw is not None and raw is not args:
        # Under a da.jit recording: detect on the recorded values; a pattern
        # that holds at this point only refuses the recording.
        col = coloring_for(fn, raw, positions, kind, cache=cache)
        pkind = "hessian" if kind == "hessian" else "jacobian"
        if volatile_reads(fn, raw, positions, pkind):
            refuse_recording(args)
        return col
    store, key, hit = _cached(fn, "colorings", "coloring-" + kind, args, positions, cache,
                              value)
    if hit is not None:
        return hit
    pkind = "hessian" if kind == "hessian" else "jacobian"
    col = _COLORINGS[kind](pattern(fn, args, positions, pkind, cache=cache))
    if cache and not volatile_reads(fn, args, positions, pkind):
        store.put(key, col)
    return col
