"""Reused output buffers for matrix products, and (opt-in) medium products
on one BLAS thread.

Every float product of at least ``2**20`` flops writes into a buffer from
:mod:`dualad.kernels.pool` (a repeated pass then re-faults no fresh pages),
and a contiguous stack times one matrix, ``(..., M, K) @ (K, N)``, runs as one
GEMM over the stacked rows (NumPy loops a call per matrix, and for ``N = 1``
its own C loop: the forward Laplacian's ``(3, 4096, 64) @ (64, 1)`` 0.52 ->
0.27 ms in the W5 pass).

Opt-in, for machines whose cores are oversubscribed (a shared box, several
processes per node): after each call OpenBLAS's helper threads busy-wait
for new work (up to its ``THREAD_TIMEOUT``, ~0.1 s) and take the cores that
the elementwise work in between needs. Measured on the 2-core bench machine
under load (bench/NOTES.md, h13w5): the hand-written NumPy W5 Laplacian
takes 25 ms with one BLAS thread and 87-149 ms with two. Setting
``DUALAD_BLAS_SERIAL_FLOPS=268435456`` (or :data:`SERIAL_FLOPS`) computes
products of up to that many flops with one OpenBLAS thread (bitwise the
``OPENBLAS_NUM_THREADS=1`` result); larger ones keep the threads. It is off by
default: on a machine with idle cores the threads help medium products, and
a library should not make results depend on anything but its inputs and
settings. Only NumPy's own OpenBLAS is touched (found among the loaded
libraries), only around the call; with any other BLAS nothing changes.

>>> import numpy as np
>>> from dualad.kernels.blas import serial_matmul
>>> a = np.arange(6.0).reshape(2, 3)
>>> serial_matmul(np.matmul)(a, a.T)
array([[ 5., 14.],
       [14., 50.]])
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

import numpy as np

__all__ = ["SERIAL_FLOPS", "serial_matmul", "blas_threads"]

SERIAL_FLOPS = int(os.environ.get("DUALAD_BLAS_SERIAL_FLOPS", "0"))   # 0: off
# below this OpenBLAS runs a GEMM on one thread by itself: no call needed
_SMALL_FLOPS = 1 << 20

_SYMBOLS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")


def _openblas():
    """``(set_num_threads, get_num_threads)`` of NumPy's OpenBLAS, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {ln.split()[-1] for ln in f if "openblas" in ln.lower()}
    except OSError:
        return None
    for path in sorted(paths, key=lambda p: "numpy" not in p):   # NumPy's own first
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SYMBOLS:
            setter = getattr(lib, name, None)
            getter = getattr(lib, name.replace("set_num", "get_num"), None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


def _pooled_out(a: np.ndarray, b: np.ndarray):
    """A reused output buffer (:mod:`dualad.kernels.pool`) for ``a @ b`` of
    two float matrices (stacks) of one dtype, else None."""
    if b.ndim < 2 or a.dtype != b.dtype or a.dtype.kind != "f" or a.shape[-1] != b.shape[-2]:
        return None
    try:
        lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        return None                 # NumPy raises its own error below
    from dualad.kernels.pool import empty
    return empty(lead + (a.shape[-2], b.shape[-1]), a.dtype)


def blas_threads() -> int | None:
    """NumPy's OpenBLAS thread count, or ``None`` when it is not OpenBLAS."""
    lib = _openblas()
    return None if lib is None else int(lib[1]())


def serial_matmul(impl: Callable) -> Callable:
    """``impl`` (a matmul) writing float products of at least ``_SMALL_FLOPS``
    flops into reused buffers (:mod:`dualad.kernels.pool`), those of up to
    :data:`SERIAL_FLOPS` flops on one OpenBLAS thread."""
    lib = _openblas()
    setter, getter = lib if lib is not None else (None, lambda: 1)

    def matmul(a, b):
        if (type(a) is np.ndarray and type(b) is np.ndarray and a.ndim >= 2
                and b.ndim >= 1):
            flops = 2 * a.size * (b.shape[-1] if b.ndim >= 2 else 1)
            if flops >= _SMALL_FLOPS:
                out = _pooled_out(a, b)
                stacked = (out is not None and a.ndim > 2 and b.ndim == 2
                           and a.flags.c_contiguous)
                if stacked:
                    # A stack times one matrix is one GEMM over the stacked
                    # rows (same bits): NumPy would make a BLAS call per matrix
                    # of the stack, and for a one-column b loop in C (4x slower).
                    # The product lands in the pooled buffer itself, so the
                    # pool can hand it out again.
                    a, into = a.reshape(-1, a.shape[-1]), out.reshape(-1, b.shape[1])
                else:
                    into = out
                threads = getter() if flops <= SERIAL_FLOPS else 1   # read each time
                if threads > 1:
                    setter(1)
                    try:
                        if into is None:
                            return impl(a, b)
                        np.matmul(a, b, out=into)
                        return out
                    finally:
                        setter(threads)
                if into is not None:
                    np.matmul(a, b, out=into)
                    return out
        return impl(a, b)
    matmul.__name__ = getattr(impl, "__name__", "matmul")
    matmul.__wrapped__ = impl
    return matmul
