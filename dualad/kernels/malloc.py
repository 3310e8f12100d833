"""glibc's malloc started at the steady state it reaches by itself.

Why: every eager pass allocates temporaries of 0.1-30 MB (a gather of 8128
pair rows is 195 KB). glibc serves those above its mmap threshold (128 KB at
start) with fresh mmap pages, and trims a heap top above its trim threshold
back to the OS after each call, so the next call faults the same pages in
again. A page fault costs 1-5 us on a VM: the Lennard-Jones N=128 gradient
took 1.8-2.2 ms with the defaults and 0.90-0.95 ms with the thresholds below
(NumPy's own energy 1.05 -> 0.68 ms in the same process; bench/NOTES.md).

glibc raises both thresholds by itself once it frees a large mmapped block
(the mmap threshold up to 32 MB, the trim threshold to twice that); a
process that frees its first such block late, or whose blocks are 0.1-1 MB,
never gets there. :func:`retain_freed_memory` sets those same values at
``import dualad``: at most 64 MB of freed memory stays at the heap top for
reuse, and blocks of 32 MB and more still come from (and go back to) the OS.

Left alone when: the process is not on glibc, ``DUALAD_MALLOC=0``, or the
user set glibc's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``
(their choice wins).

>>> from dualad.kernels.malloc import retain_freed_memory
>>> retain_freed_memory() in (True, False)
True
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["retain_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

# glibc's own ceilings for its dynamic thresholds on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX
# and twice it): the values a long-running process reaches by itself.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # glibc's mallopt parameter numbers

_done: list = [None]


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        ctypes.cast(libc.gnu_get_libc_version, ctypes.c_void_p)   # glibc only
    except (OSError, AttributeError):
        return None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds to their steady-state values
    (once per process). Returns whether they are set by dualad."""
    if _done[0] is not None:
        return _done[0]
    env = os.environ
    mallopt = None
    if (env.get("DUALAD_MALLOC", "1") != "0" and "MALLOC_MMAP_THRESHOLD_" not in env
            and "MALLOC_TRIM_THRESHOLD_" not in env):
        mallopt = _glibc()
    ok = bool(mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
              and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _done[0] = ok
    return ok
