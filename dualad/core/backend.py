"""The array namespace of a value (NumPy now, CuPy through the same helper)
and dtype checks."""
from __future__ import annotations

import math
import sys

import numpy as np


def peel(x):
    """The innermost plain value under any number of tracer levels."""
    while hasattr(x, "_level"):
        x = x.primal
    return x


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
        if _is_cupy(peel(v)):
            return sys.modules["cupy"]
    return np


def all_finite_value(x) -> bool:
    """True if every entry of the (peeled) value is finite.

    May answer False for a finite array whose squares overflow: callers use
    it to decide whether a guard is needed, so a false alarm costs only time.
    """
    v = peel(x)
    if isinstance(v, float):          # Python floats and NumPy float64 scalars
        return math.isfinite(v)
    if isinstance(v, int):
        return True
    if type(v) is np.ndarray and v.dtype.kind == "f":
        # One BLAS dot, no temporaries: NaN and inf propagate into v . v.
        flat = v.ravel()
        return math.isfinite(flat.dot(flat))
    xp = namespace_of(v)
    if getattr(v, "size", 0) > 4096:
        return bool(xp.isfinite(v.sum()))
    return bool(xp.isfinite(v).all())


def to_host(x):
    """A NumPy array from a NumPy or CuPy array (``.get()`` for CuPy)."""
    return x.get() if _is_cupy(x) else np.asarray(x)


def is_float_value(x) -> bool:
    """True for floating (or complex) arrays and Python floats."""
    v = peel(x)
    if isinstance(v, bool):
        return False
    if isinstance(v, float):
        return True
    if isinstance(v, int):
        return False
    dtype = getattr(v, "dtype", None)
    return dtype is not None and dtype.kind in "fc"


def result_float_dtype(x):
    """The dtype a derivative w.r.t. ``x`` is computed in."""
    v = peel(x)
    dtype = getattr(v, "dtype", None)
    return dtype if dtype is not None and dtype.kind in "fc" else np.dtype(np.float64)


def check_differentiable(x, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` when ``x`` is not floating."""
    if not is_float_value(x):
        v = peel(x)
        kind = getattr(v, "dtype", type(v).__name__)
        raise TypeError(
            f"cannot differentiate with respect to {name}: it has dtype {kind}, "
            "but derivatives need floating inputs (pass e.g. np.asarray(x, dtype=float)).")
