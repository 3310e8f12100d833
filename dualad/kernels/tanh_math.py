"""A float64 ``tanh`` that Numba vectorises: for fused kernels.

Why: NumPy's float64 ``tanh`` runs at ~7.6 ns per element on CPUs without
AVX-512 and Numba's ``math.tanh`` is a scalar libm call (a loop calling it
never vectorises); XLA's is ~10x faster. The tanh MLP workloads (W3, W5)
spend half their elementwise time there. This one has no calls and no
table lookups, so LLVM turns a loop over it into AVX2 code (~3.4 ns per
element, and it fuses with the partial ``1 - t*t`` in the same pass).

Method: ``|x| < 0.625``: the Cephes rational ``x + x^3 P(x^2)/Q(x^2)``;
above, ``1 - 2 / (exp(2|x|) + 1)`` with the sign put back, ``exp`` being
:func:`dualad.kernels.vecmath.exp` (fdlibm's, vectorisable; ``2|x|`` is
clamped to 44, well inside its exact range). Accuracy: within 2 ulp of
``np.tanh`` over the whole range
(``tests/test_tanh_math.py`` sweeps it); ``tanh(nan)`` is nan,
``tanh(+-inf)`` is ``+-1``, ``tanh(-0.0)`` is ``-0.0``, tiny ``x`` give
``x`` exactly.

>>> import numpy as np
>>> from dualad.kernels.tanh_math import tanh_array
>>> x = np.array([-np.inf, -1.0, -0.0, 1e-300, 0.3, 20.0, np.nan])
>>> t = tanh_array(x)
>>> bool(np.allclose(t[:-1], np.tanh(x[:-1]), rtol=5e-16, atol=0)), bool(np.isnan(t[-1]))
(True, True)
>>> bool(np.signbit(t[2]))
True

May import numba (only kernel builders import this module).
"""
from __future__ import annotations

import hashlib
import inspect

import numpy as np
from numba import njit

from dualad.kernels import vecmath

__all__ = ["tanh_f64", "tanh_array", "with_fast_tanh", "SOURCE_DIGEST"]


# "contract" (FMA) only: no reassociation, NaN/inf/sign semantics unchanged;
# LLVM inlines this into the calling loop and keeps the flags.
@njit(nogil=True, error_model="numpy", fastmath={"contract"}, inline="never")
def tanh_f64(v):
    t = 2.0 * abs(v)
    t = t if t < 44.0 else 44.0               # tanh(22) == 1.0 in float64
    big = 1.0 - 2.0 / (vecmath.exp(t) + 1.0)   # t <= 44: inside exp's exact range
    big = big if v >= 0 else -big
    z = v * v
    small = v + v * z * (((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1)
                          * z - 1.61468768441708447952e3)
                         / (((z + 1.12811678491632931402e2) * z
                             + 2.23548839060100448583e3) * z
                            + 4.84406305325125486048e3))
    w = small if abs(v) < 0.625 else big
    return v if (v != v or v == 0.0) else w   # NaN, and the sign of zero


@njit(nogil=True, error_model="numpy", fastmath={"contract"})
def _tanh_loop(x, out):
    for i in range(x.size):
        out[i] = tanh_f64(x[i])


def tanh_array(x: np.ndarray) -> np.ndarray:
    """``tanh`` of a float64 array by :func:`tanh_f64` (a new array)."""
    x = np.asarray(x, dtype=np.float64)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _tanh_loop(flat, out)
    return out.reshape(x.shape)


# Generated kernels that call tanh_f64 put this in their source text: their
# on-disk cache key then changes whenever this file does (Numba's cache does
# not track a callee's changes by itself).
SOURCE_DIGEST = hashlib.sha1((inspect.getsource(tanh_f64.py_func)
                              + vecmath.VERSION).encode()).hexdigest()[:12]


def with_fast_tanh(source: str) -> str:
    """Generated kernel ``source`` with its ``np.tanh(``/``math.tanh(`` calls
    (Numba: scalar libm) replaced by :func:`tanh_f64`, importing it, and
    carrying :data:`SOURCE_DIGEST` (so the kernel's cache key follows this
    file). Unchanged when it calls no tanh."""
    import re
    new = re.sub(r"\b(?:np|math)\.tanh\(", "_tanh(", source)
    if new == source:
        return source
    return (f"from dualad.kernels.tanh_math import tanh_f64 as _tanh  # {SOURCE_DIGEST}\n"
            + new)
