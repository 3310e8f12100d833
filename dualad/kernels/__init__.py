"""Fused Numba kernels for the heavy elementwise work.

An elementwise primitive's value and its partial are computed in ONE pass
(``value_and_partial``): ``sin`` gives ``sin(x)`` and ``cos(x)`` together, so a
forward pass that records for the reverse sweep, or a Dual pass, reads ``x``
once. The kernels are generated from the expression table in
:mod:`dualad.kernels.table`; the test suite checks every entry against the
registry's partials. CPU kernels are Numba ``njit``; for CuPy arrays the same
expressions compile to ``numba.cuda`` kernels. Both compile lazily, on first
use, never at ``import dualad``.

>>> import dualad as da
>>> da.set_kernels("numpy")     # plain NumPy everywhere
>>> da.set_kernels("auto")      # Numba for large float arrays (the default)

May import: core, rules (never the other way: the registry only sees the
evaluate-with-partials hook that :func:`register` installs).
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from dualad.core.registry import Primitive, install_fused_kernel, install_laplacian_kernel
from dualad.kernels.malloc import retain_freed_memory
from dualad.kernels.table import EXPRESSIONS

# Eager passes re-fault their temporaries under glibc's start-up thresholds
# (2x on a Lennard-Jones gradient): start malloc at its steady state.
retain_freed_memory()

_MODES = ("auto", "numpy", "numba")


class _Settings(threading.local):
    """The kernel choice: process defaults (``set_kernels``) that a thread may
    override for a block (``use_kernels``)."""

    default = {"mode": "auto", "min_size": 1 << 16}

    def __init__(self):
        self.override: dict | None = None

    def get(self, key: str):
        o = self.override
        return o[key] if o is not None else self.default[key]


_settings = _Settings()
# A numba.cuda that failed to compile here: a fact about this process's
# install, so process-wide; set_kernels() clears it to try again.
_gpu_error: list = [None]


def _checked(mode: str, min_size) -> dict:
    if mode not in _MODES:
        raise ValueError(f"unknown kernel mode {mode!r}; valid modes: {', '.join(_MODES)}")
    return {"mode": mode, "min_size": _settings.default["min_size"] if min_size is None
            else int(min_size)}


def set_kernels(mode: str = "auto", *, min_size: int | None = None) -> None:
    """Choose where elementwise work runs, for the whole process: ``"auto"``
    (Numba for float arrays of at least ``min_size`` elements, NumPy below),
    ``"numba"`` (always when a kernel exists) or ``"numpy"`` (never)."""
    _Settings.default = _checked(mode, min_size)
    _gpu_error[0] = None


class use_kernels:
    """The kernel choice for one block, in this thread only.

    >>> import numpy as np, dualad as da
    >>> with da.kernels.use_kernels("numpy"):
    ...     da.kernels.kernel_mode()
    'numpy'
    """

    def __init__(self, mode: str = "auto", *, min_size: int | None = None):
        self.settings = _checked(mode, min_size)

    def __enter__(self):
        self.saved = _settings.override
        _settings.override = self.settings
        return self

    def __exit__(self, *exc) -> bool:
        _settings.override = self.saved
        return False


def kernel_mode() -> str:
    return _settings.get("mode")


_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def value_and_partial(prim: Primitive, x):
    """``(f(x), f'(x))`` of ``prim`` from one fused kernel, or ``None`` when none
    applies (no kernel for ``prim``, non-float or small input,
    ``set_kernels("numpy")``). Also the evaluate-with-partials hook."""
    mode = _settings.get("mode")
    if mode == "numpy" or prim not in EXPRESSIONS:
        return None
    if type(x) is np.ndarray:
        if x.dtype not in _FLOATS or (mode == "auto" and x.size < _settings.get("min_size")):
            return None
        if not _have_numba():
            return None
        from dualad.kernels import cpu
        return cpu.value_and_partial(prim, x)
    cp = sys.modules.get("cupy")
    if cp is not None and isinstance(x, cp.ndarray) and x.dtype in _FLOATS and _gpu_ok():
        from dualad.kernels import gpu
        try:
            return gpu.value_and_partial(prim, x)
        except Exception as err:   # a numba.cuda that cannot compile here: use CuPy ops
            _disable_gpu(err)
    return None


def laplacian_update(prim: Primitive, x, g, lap, diag: bool):
    """``(y, g_y, lap_y)`` of a unary primitive in the forward-Laplacian
    interpreter from one fused CPU pass (:mod:`dualad.kernels.second`), or
    ``None`` (no kernel for ``prim``, non-array or mixed-dtype operands, few
    elements in ``"auto"`` mode, ``set_kernels("numpy")``). The hook that
    :func:`register` installs."""
    mode = _settings.get("mode")
    if mode == "numpy" or not _have_numba():
        return None
    got = _plain_or_recorded((x, g, lap))
    if got is None:
        return None
    level, (xv, gv, lv) = got
    from dualad.kernels import second
    if not second.applies(prim, xv, gv, lv, diag):
        return None
    if mode == "auto" and gv.size < _settings.get("min_size"):
        return None
    if level is None:
        return second.laplacian_update(prim, xv, gv, lv, diag)
    # under da.jit: the whole update is ONE recorded call (a replay runs the
    # same kernel; applies() looked at dtypes and shapes only, which the
    # program's signature fixes; the layout is decided again at each call)
    return level.stage_call(second.LapUpdate(prim, diag), x, g, lap, n_outputs=3)


def _plain_or_recorded(values):
    """``(level, raw values)`` when every value is a plain array (or ``Zero``),
    or a value being recorded directly at the bottom (``da.jit``'s staging
    level: ``level``; its raw value is looked at for metadata only), else
    ``None`` (a derivative level in between: the rules must run)."""
    level, raw = None, []
    for v in values:
        lv = getattr(v, "_level", None)
        if lv is None:
            raw.append(v)
            continue
        if not (v._observing and getattr(lv, "stage_call", None) is not None) or (
                level is not None and lv is not level):
            return None
        level = lv
        raw.append(v._value)
    return level, raw


# below this many gathered rows bincount is as fast and needs no compiled code
ROW_SCATTER_MIN = 512


def row_scatter(rows, ct, n: int):
    """The pair scatter of a row gather's cotangent (:mod:`dualad.kernels.scatter`),
    or ``None`` (few rows in ``"auto"`` mode, ``set_kernels("numpy")``, no Numba).
    The hook that :func:`register` installs into the indexing rules."""
    mode = _settings.get("mode")
    if (mode == "numpy" or (mode == "auto" and rows.shape[0] < ROW_SCATTER_MIN)
            or not _have_numba()):
        return None
    from dualad.kernels.scatter import scatter_rows
    return scatter_rows(rows, ct, n)


def register() -> None:
    """Mark the primitives that have a fused kernel and install the
    evaluate-with-partials and forward-Laplacian hooks into the registry (called once, by
    ``import dualad``; the rules never import this package)."""
    for prim in EXPRESSIONS:
        prim.fused = True
    install_fused_kernel(value_and_partial)
    install_laplacian_kernel(laplacian_update)
    from dualad.rules.indexing import install_row_scatter
    install_row_scatter(row_scatter)
    from dualad.kernels.blas import serial_matmul
    from dualad.rules.contractions import matmul_p
    if not hasattr(matmul_p.impl, "__wrapped__"):
        # medium products on one OpenBLAS thread (its spinning helper threads
        # otherwise take the cores from the elementwise work: kernels/blas.py)
        matmul_p.impl = serial_matmul(matmul_p.impl)


_numba: list = []


def _have_numba() -> bool:
    """Whether Numba imports here (checked once): without it every kernel
    hook declines and the NumPy rules run."""
    if not _numba:
        try:
            import numba  # noqa: F401
            _numba.append(True)
        except ImportError:
            _numba.append(False)
    return _numba[0]


def _gpu_ok() -> bool:
    return _gpu_error[0] is None


def _disable_gpu(err: Exception) -> None:
    """Why: a broken numba-cuda install (e.g. one built against another NumPy)
    must cost speed, never a crash; warn once and run the CuPy path."""
    import warnings
    _gpu_error[0] = err
    warnings.warn(f"dualad: numba.cuda kernels unavailable ({type(err).__name__}: {err}); "
                  "falling back to CuPy operations", RuntimeWarning, stacklevel=3)
