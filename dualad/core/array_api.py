"""The array API namespace of traced values (``x.__array_namespace__()``).

Array-API consumers (SciPy with ``SCIPY_ARRAY_API=1``, array-api-compat,
scikit-learn's array-API mode) ask an input for its namespace ``xp`` and call
``xp.exp(x)``, ``xp.sum(x)``, ``xp.asarray(...)``. Here every name maps onto
the NumPy function of the same meaning, which dispatches to dualad for traced
arguments; the few names the standard spells differently from NumPy are
mapped below. Names not listed fall through to ``numpy``.

Example::

    >>> import numpy as np, dualad as da
    >>> def f(x):
    ...     xp = x.__array_namespace__()
    ...     return xp.sum(xp.exp(xp.asarray(x, dtype=xp.float64)))
    >>> da.grad(f)(np.zeros(2))
    array([1., 1.])
"""
from __future__ import annotations

import sys

import numpy as np

from dualad.core.convert import has_tracer, to_traced
from dualad.core.dispatch import ARRAY_API

__array_api_version__ = "2023.12"
linalg = np.linalg
fft = np.fft


def asarray(obj, /, *, dtype=None, device=None, copy=None):
    if has_tracer(obj):
        return to_traced(obj, dtype, copy, what="xp.asarray")
    return np.asarray(obj, dtype=dtype, copy=copy)


def astype(x, dtype, /, *, copy=True, device=None):
    if has_tracer(x):
        return to_traced(x, dtype, copy, what="xp.astype")
    return np.asarray(x).astype(dtype, copy=copy)


def concat(arrays, /, *, axis=0):
    return np.concatenate(arrays, axis=axis)


def permute_dims(x, /, axes):
    return np.transpose(x, axes)


def matrix_transpose(x, /):
    return np.swapaxes(x, -1, -2)


def device(x, /):
    return "cpu"


def to_device(x, device, /, *, stream=None):
    return x


_RENAMED = {
    "pow": np.power, "acos": np.arccos, "acosh": np.arccosh, "asin": np.arcsin,
    "asinh": np.arcsinh, "atan": np.arctan, "atan2": np.arctan2, "atanh": np.arctanh,
    "bitwise_left_shift": np.left_shift, "bitwise_right_shift": np.right_shift,
    "bitwise_invert": np.invert,
}


def __getattr__(name: str):
    if name in _RENAMED:
        return _RENAMED[name]
    try:
        return getattr(np, name)
    except AttributeError:
        raise AttributeError(f"dualad's array API namespace has no {name!r}") from None


ARRAY_API[:] = [sys.modules[__name__]]
