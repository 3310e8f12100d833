"""The array namespace of a value (NumPy now, CuPy through the same helper)
and dtype checks."""
from __future__ import annotations

import math
import sys

import numpy as np


def peel(x):
    """The innermost plain value under any number of tracer levels.

    This *reads the value*: under a recording or sparsity level it marks the
    recording impure (see :mod:`dualad.mixed.replay`). Code that needs only
    the dtype, shape or array type uses the non-observing accessors below
    (:func:`dtype_of`, :func:`value_type`, :func:`namespace_of`,
    ``registry.shape_of``).
    """
    while hasattr(x, "_level"):
        x = x.primal
    return x


def _peek(x):
    """The innermost value *without* marking a read: tracers whose reads are
    observed (``_observing = True``) keep the value one level down in
    ``_value``. Private on purpose: its result may only be inspected for
    metadata (type, dtype), never for what the numbers are."""
    while hasattr(x, "_level"):
        x = x._value if x._observing else x.primal
    return x


def staging_bottom(x):
    """The recorded value under ``x`` when the bottom of ``x`` is a value
    being recorded (an observing tracer whose level can record plain
    functions: ``da.jit``'s staging level), else None. Not a read.

    >>> staging_bottom(1.0) is None
    True
    """
    while hasattr(x, "_level"):
        if x._observing:
            return x if getattr(x._level, "stage_call", None) is not None else None
        x = x.primal
    return None


def value_type(x) -> type:
    """The Python type of the innermost value (``float``, ``np.float64``,
    ``np.ndarray``...), without reading it.

    >>> value_type(2.0)
    <class 'float'>
    """
    return type(_peek(x))


def dtype_of(x):
    """The dtype of the innermost value, without reading it.

    >>> dtype_of(np.ones(2, dtype=np.float32))
    dtype('float32')
    """
    v = _peek(x)
    dtype = getattr(v, "dtype", None)
    return dtype if dtype is not None else np.result_type(v)


def peel_keep_batch(x):
    """The value under ``x``'s derivative levels, stopping at a batched value
    (a vmap's tracer): for data without a derivative (masks, comparisons,
    indices), whose batch axis must stay known to the vmap.

    >>> float(peel_keep_batch(2.0))
    2.0
    """
    while hasattr(x, "_level"):
        if getattr(x, "_batched", False):
            return x
        x = x.primal
    return x


def _is_cupy(x) -> bool:
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(x, cp.ndarray)


def namespace_of(*values):
    """``numpy`` or ``cupy``: the module whose functions handle ``values``.

    CuPy is never imported here; a value can only be a CuPy array if the user
    already imported it.
    """
    for v in values:
        if _is_cupy(_peek(v)):
            return sys.modules["cupy"]
    return np


_isfinite = np.isfinite


def all_finite_value(x, sync: bool = True) -> bool:
    """True if every entry of the innermost value is finite.

    Callers use it to decide whether a guard is needed. This is the one
    value read that a recording accepts: every observing tracer on the way
    down is told the answer (``level.observe_finite``), and the staging
    level keeps it as a guard re-checked on replay.

    ``sync=False`` (the per-operation 0*inf guards): for a device array
    (CuPy) answer ``False`` ("not known finite") without looking, so the
    caller takes its masked path on the device instead of pulling a flag to
    the host after every operation; that answer does not depend on the
    values, so a recording takes no guard for it.

    >>> import numpy as np
    >>> all_finite_value(np.array([1.0, 2.0])), all_finite_value(np.array([1.0, np.nan]))
    (True, False)
    """
    if not hasattr(x, "_level"):
        if not sync and _is_cupy(x):
            return False
        return finite_value(x)
    v = _peek(x)
    if not sync and _is_cupy(v):
        return False
    ok = finite_value(v)
    while hasattr(x, "_level"):
        if x._observing:
            x._level.observe_finite(x, ok)
            x = x._value
        else:
            x = x.primal
    return ok


def finite_value(v) -> bool:
    """``all_finite_value`` of a plain (untraced) value."""
    if isinstance(v, float):          # Python floats and NumPy float64 scalars
        return math.isfinite(v)
    if isinstance(v, int):
        return True
    if type(v) is np.ndarray and v.dtype.kind == "f":
        # SIMD isfinite + all (as fast as a sum, and exact). Not a BLAS dot:
        # BLAS wakes its thread pool on the per-op path (LJ N=128 gradient
        # 5-8x slower at default OpenBLAS threads).
        return bool(_isfinite(v).all())
    xp = namespace_of(v)
    if getattr(v, "size", 0) > 4096:
        return bool(xp.isfinite(v.sum()))
    return bool(xp.isfinite(v).all())


def to_host(x):
    """A NumPy array from a NumPy or CuPy array (``.get()`` for CuPy)."""
    return x.get() if _is_cupy(x) else np.asarray(x)


def is_float_value(x) -> bool:
    """True for floating (or complex) arrays and Python floats."""
    v = _peek(x)
    if isinstance(v, bool):
        return False
    if isinstance(v, float):
        return True
    if isinstance(v, int):
        return False
    dtype = getattr(v, "dtype", None)
    return dtype is not None and dtype.kind in "fc"


def is_real_float_value(x) -> bool:
    """True for real floating arrays and Python floats (the common output:
    one look at the innermost value decides the output checks at once).

    >>> is_real_float_value(2.0), is_real_float_value(np.ones(2, complex))
    (True, False)
    """
    v = _peek(x)
    if v.__class__ is float:
        return True
    dtype = getattr(v, "dtype", None)
    return dtype is not None and dtype.kind == "f"


def result_float_dtype(x):
    """The dtype a derivative w.r.t. ``x`` is computed in."""
    v = _peek(x)
    dtype = getattr(v, "dtype", None)
    return dtype if dtype is not None and dtype.kind in "fc" else np.dtype(np.float64)


def check_differentiable(x, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` when ``x`` is not floating."""
    if not is_float_value(x):
        v = _peek(x)
        kind = getattr(v, "dtype", type(v).__name__)
        raise TypeError(
            f"cannot differentiate with respect to {name}: it has dtype {kind}, "
            "but derivatives need floating inputs (pass e.g. np.asarray(x, dtype=float)).")
