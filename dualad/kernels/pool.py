"""Reused output buffers for the large arrays the kernels and matmuls write.

Why: glibc serves allocations of a few MB with fresh pages (mmap, or a heap
top it trims back to the OS after each call), so every pass re-faults its
temporaries: in a process that repeats a W5 Laplacian, ~2400 page faults
per call took ~7 of its ~20 ms of CPU time (bench/NOTES.md, h13w5). JAX's
allocator keeps its buffers; this pool does the same for dualad's largest
outputs. A pooled array is handed out again only when nothing but the pool
refers to it any more (its reference count says so: every view, slice or
reshape of it holds a reference to it), so a result the caller keeps is
never overwritten.

Bounded: arrays of at least :data:`MIN_BYTES` only, at most :data:`SLOTS`
per shape and dtype and :data:`MAX_BYTES` in all per thread (one pool per
thread, so threads never share a buffer). ``DUALAD_POOL_MB=0`` turns it off.

>>> import numpy as np
>>> from dualad.kernels.pool import empty
>>> a = empty((512, 128), np.float64)
>>> a.shape, a.dtype == np.float64
((512, 128), True)
>>> b = empty((512, 128), np.float64)     # a is alive: a different buffer
>>> a is b
False
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

__all__ = ["empty", "MIN_BYTES", "MAX_BYTES", "SLOTS"]

MIN_BYTES = 1 << 18
MAX_BYTES = int(float(os.environ.get("DUALAD_POOL_MB", "128")) * (1 << 20))
SLOTS = 4


class _Pool(threading.local):
    def __init__(self):
        self.free: dict = {}
        self.nbytes = 0


_pool = _Pool()


def _only_pool_count() -> int:
    """``sys.getrefcount(a)`` of an object only a list holds, read exactly as
    :func:`empty` reads it (in a ``for`` loop over the list). 3 on CPython
    3.11 (the list, the loop variable, getrefcount's argument); measured, not
    assumed, because newer interpreters borrow references on the stack
    (3.14), and a count one lower would make a live buffer look free."""
    for a in [object()]:
        return sys.getrefcount(a)
    raise AssertionError("unreachable")


_ONLY_POOL = _only_pool_count()


def empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, reusing a pooled buffer of the
    same shape and dtype that nothing else refers to any more."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize * _prod(shape)
    if nbytes < MIN_BYTES or MAX_BYTES <= 0:
        return np.empty(shape, dtype)
    key = (shape, dtype)
    bufs = _pool.free.get(key)
    if bufs is None:
        bufs = _pool.free[key] = []
    for a in bufs:
        if sys.getrefcount(a) == _ONLY_POOL:
            return a
    a = np.empty(shape, dtype)
    if len(bufs) < SLOTS and _pool.nbytes + nbytes <= MAX_BYTES:
        bufs.append(a)
        _pool.nbytes += nbytes
    return a


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
