"""The memory budget: how many bytes one batched pass may keep alive.

Three layers, innermost wins: a per-call ``memory_budget=`` (carried by
:class:`dualad.mixed.runner.ExecOptions`), a :func:`memory_budget` context
(thread-local, nestable), the process default (:func:`set_memory_budget`),
and else the automatic default: a quarter of :func:`available_memory`, which
respects the process's real limits (cgroup ``memory.max``, ``RLIMIT_AS``),
not only the free RAM.

Example::

    >>> with memory_budget("1GB"):
    ...     format_bytes(get_memory_budget())
    '1.0 GB'
"""
from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager

import numpy as np

__all__ = ["parse_bytes", "format_bytes", "available_memory", "check_dense_fits",
           "set_memory_budget", "memory_budget", "get_memory_budget"]

# ============================================================================
# memory budget
# ============================================================================
_budget: dict = {"bytes": None, "default": None, "at": 0.0}
_DEFAULT_TTL = 30.0          # seconds a measured default budget is reused
_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20,
          "MIB": 2**20, "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40,
          "TIB": 2**40}


def parse_bytes(value) -> int:
    """Bytes from an int or a string like ``"2GB"``, ``"512 MiB"``.

    >>> parse_bytes("1.5 KB"), parse_bytes(4096)
    (1536, 4096)
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"a memory budget must be positive, got {value}")
        return int(value)
    if isinstance(value, float) and value > 0:
        return int(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"cannot read a memory size from {value!r}; use bytes or e.g. '2GB'")
    return max(1, int(float(m.group(1)) * _UNITS[m.group(2).upper()]))


def format_bytes(n: float) -> str:
    """``"2.0 GB"``-style text (binary units).

    >>> format_bytes(3 * 2**30), format_bytes(1536)
    ('3.0 GB', '1.5 KB')
    """
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None          # "max": no limit


def _meminfo(field_name: str) -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _vm_size() -> int:
    """This process's address space in bytes (what RLIMIT_AS counts)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def available_memory() -> int:
    """Bytes this process can still allocate: the least of the free RAM
    (``MemAvailable``), the room left in its cgroup (``memory.max`` minus
    ``memory.current``, cgroup v2, or v1's ``limit_in_bytes``) and the room
    left under ``RLIMIT_AS``. A container or a ``ulimit -v`` caps the budget
    even when the host has RAM to spare."""
    room = [_meminfo("MemAvailable")]
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if limit is not None:
        room.append(limit - (_read_int("/sys/fs/cgroup/memory.current") or 0))
    else:
        limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        if limit is not None and limit < 2**60:
            room.append(limit - (_read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes") or 0))
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            room.append(soft - _vm_size())
    except (ImportError, OSError, ValueError):
        pass
    known = [r for r in room if r is not None]
    if not known:
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 8 * 2**30
    return max(0, min(known))


def check_dense_fits(n_rows: int, n_cols: int, itemsize: int, what: str) -> None:
    """Refuse up front (``MemoryError`` naming the size) a dense result that
    cannot fit in what this process can still allocate
    (:func:`available_memory`), instead of failing after minutes of work.

    >>> check_dense_fits(10, 10, 8, "Hessian")
    """
    need = 2 * n_rows * n_cols * itemsize          # the result and one working copy
    if need <= 1 << 22:
        return      # a few MB: not worth reading /proc on every call (a small Hessian's hot path)
    limit = available_memory()
    if need > limit:
        raise MemoryError(
            f"the dense {what} is {n_rows} x {n_cols} "
            f"({format_bytes(n_rows * n_cols * itemsize)}); with a working copy that is "
            f"over the {format_bytes(limit)} this process can use. Ask for a sparse result "
            f"(csr=True: CSR, computed by coloring or structured tangents) or use "
            f"Hessian-vector products (dualad.hvp) / jvp / vjp instead")


_local = threading.local()       # the memory_budget() contexts of this thread


def set_memory_budget(budget=None) -> None:
    """Set the process default for the memory one batched pass may use:
    bytes, or text such as ``"2GB"``; ``None`` restores the automatic default
    (a quarter of :func:`available_memory` when a plan is made). A
    :func:`memory_budget` context overrides it in its thread; per call,
    ``memory_budget=`` overrides both.

    >>> import dualad as da
    >>> da.set_memory_budget("1GB"); da.planner.get_memory_budget()
    1073741824
    >>> da.set_memory_budget(None)
    """
    _budget["bytes"] = None if budget is None else parse_bytes(budget)


@contextmanager
def memory_budget(budget):
    """A memory budget for the plans made in this block, in this thread
    only (nested blocks stack; other threads keep theirs).

    >>> import dualad as da
    >>> with da.memory_budget("64MB"):
    ...     da.planner.get_memory_budget()
    67108864
    """
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(parse_bytes(budget))
    try:
        yield stack[-1]
    finally:
        stack.pop()


def get_memory_budget(override=None) -> int:
    """The budget in bytes: ``override``, else the innermost
    :func:`memory_budget` context, else the set default, else the automatic
    one.

    >>> get_memory_budget("64MB")
    67108864
    """
    if override is not None:
        return parse_bytes(override)
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    if _budget["bytes"] is not None:
        return _budget["bytes"]
    now = time.monotonic()
    if _budget["default"] is None or now - _budget["at"] > _DEFAULT_TTL:
        # Reading /proc costs ~50 us: measured again every 30 s only.
        _budget["default"] = max(64 * 2**20, available_memory() // 4)
        _budget["at"] = now
    return _budget["default"]
