"""Medium-sized matrix products on one BLAS thread (OpenBLAS).

Why: after each call OpenBLAS's helper threads busy-wait for new work (up
to its ``THREAD_TIMEOUT``, ~0.1 s). A dualad pass alternates matmuls with
elementwise kernels; the spinning threads take the cores those kernels
(and the other processes of the machine) need. Measured on the 2-core
bench machine under load (bench/NOTES.md, h13w5): the hand-written NumPy
W5 Laplacian takes 25 ms with ``OPENBLAS_NUM_THREADS=1`` and 125 ms at the
default two threads; W3's hand-written vjp 19 vs 54-109 ms. A product of
up to :data:`SERIAL_FLOPS` (default 2**28, a few ms on one core) is
therefore computed with one BLAS thread WHILE THE MACHINE IS BUSY (its
1-minute load average leaves less than :data:`SPARE_CORES` of the usable
cores idle; read at most every 0.25 s); on a machine with idle cores the
spinning costs nothing and the library's threads stay. Larger products
keep the threads (the parallel speed-up outweighs the spinning), and so do
products small enough that OpenBLAS runs them on one thread anyway.

Only NumPy's own OpenBLAS is touched (found among the loaded libraries),
only around the call, and only when it was set to more than one thread;
with any other BLAS (MKL, Accelerate) or on other platforms nothing
changes. ``DUALAD_BLAS_SERIAL_FLOPS=0`` (or ``SERIAL_FLOPS = 0``) turns it
off. Results are bitwise those of ``OPENBLAS_NUM_THREADS=1``; the threaded
call blocks its sums differently (differences of ~1e-14 relative).

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
import time
from collections.abc import Callable

import numpy as np

__all__ = ["SERIAL_FLOPS", "serial_matmul", "blas_threads"]

SERIAL_FLOPS = int(os.environ.get("DUALAD_BLAS_SERIAL_FLOPS", str(1 << 28)))
SPARE_CORES = 0.5
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


class _Load:
    """Whether the machine is busy, from the load average, cached 0.25 s
    (a read of /proc/loadavg costs a few us; a matmul here ~1 ms)."""

    __slots__ = ("until", "busy", "cores")

    def __init__(self):
        self.until, self.busy = 0.0, True
        try:
            self.cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            self.cores = os.cpu_count() or 1

    def __call__(self) -> bool:
        now = time.monotonic()
        if now >= self.until:
            try:
                self.busy = self.cores - os.getloadavg()[0] < SPARE_CORES
            except OSError:
                self.busy = True
            self.until = now + 0.25
        return self.busy


_busy = _Load()


def blas_threads() -> int | None:
    """NumPy's OpenBLAS thread count, or ``None`` when it is not OpenBLAS."""
    lib = _openblas()
    return None if lib is None else int(lib[1]())


def serial_matmul(impl: Callable) -> Callable:
    """``impl`` (a matmul) writing float products of ``_SMALL_FLOPS`` to
    :data:`SERIAL_FLOPS` flops into reused buffers (:mod:`dualad.kernels.pool`),
    on one OpenBLAS thread where NumPy's BLAS is a threaded OpenBLAS."""
    lib = _openblas()
    setter, getter = lib if lib is not None else (None, lambda: 1)

    def matmul(a, b):
        if (type(a) is np.ndarray and type(b) is np.ndarray and a.ndim >= 2
                and b.ndim >= 1):
            flops = 2 * a.size * (b.shape[-1] if b.ndim >= 2 else 1)
            if _SMALL_FLOPS <= flops <= SERIAL_FLOPS:
                out = _pooled_out(a, b)
                threads = getter()          # read each time: the user may change it
                if threads > 1 and _busy():
                    setter(1)
                    try:
                        return impl(a, b) if out is None else np.matmul(a, b, out=out)
                    finally:
                        setter(threads)
                if out is not None:
                    return np.matmul(a, b, out=out)
        return impl(a, b)
    matmul.__name__ = getattr(impl, "__name__", "matmul")
    matmul.__wrapped__ = impl
    return matmul
