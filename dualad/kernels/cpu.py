"""CPU kernels: one Numba ``njit`` loop per table entry, computing the value
and the partial in a single pass over the input.

For float64 ``sin``/``cos`` the loop uses the vectorisable functions of
:mod:`dualad.kernels.vecmath` (SIMD code, about 4x faster than the C
library's per-element calls) and counts the arguments outside their exact
range; when there are any (huge arguments, infinities) the C-library loop
reruns, so every value is within an ulp of NumPy's.

>>> import numpy as np
>>> from dualad.rules.ufuncs import sin_p
>>> x = np.array([0.5, 1e300])
>>> y, d = value_and_partial(sin_p, x)
>>> bool(np.allclose(y, np.sin(x), rtol=1e-15)), bool(np.allclose(d, np.cos(x), rtol=1e-15))
(True, True)
"""
from __future__ import annotations

import math  # noqa: F401  (used by the generated kernels)

import numpy as np

from dualad.core.registry import Primitive
from dualad.kernels.table import render
from dualad.rules.ufuncs import cos_p, sin_p

_TEMPLATE = """
def kernel(x, out, d):
    for i in range(x.size):
        x_i = x[i]
        y = {value}
        out[i] = y
        d[i] = {partial}
"""
# float64 only: value, partial and the out-of-range count (vecmath's names)
_VECTOR = {
    sin_p: ("_vm.sin(x_i)", "_vm.cos(x_i)", "_vm.sincos_bad(x_i)"),
    cos_p: ("_vm.cos(x_i)", "-_vm.sin(x_i)", "_vm.sincos_bad(x_i)"),
}
_VECTOR_TEMPLATE = """
def kernel(x, out, d):
    bad = 0
    for i in range(x.size):
        x_i = x[i]
        y = {0}
        out[i] = y
        d[i] = {1}
        bad += {2}
    return bad
"""
_compiled: dict = {}


def build(prim: Primitive, vector: bool = False):
    """Compile (once per process) the fused kernel of ``prim`` (``vector``:
    the float64 vector-math loop, which returns its out-of-range count)."""
    kern = _compiled.get((prim, vector))
    if kern is None:
        from numba import njit
        if vector:
            # from Numba's disk cache after the first process (this compile
            # takes ~1-2 s); the vecmath version is part of the cache key
            from dualad.kernels.second import _load
            from dualad.kernels.vecmath import VERSION
            source = (f"from dualad.kernels import vecmath as _vm  # {VERSION}\n"
                      + _VECTOR_TEMPLATE.format(*_VECTOR[prim]))
            fn, cacheable = _load(source, f"vec_{prim.name}")
            kern = njit(nogil=True, error_model="numpy", cache=cacheable)(fn)
        else:
            from dualad.kernels.tanh_math import with_fast_tanh
            namespace = {"math": math}
            # generated from the table, nothing else
            exec(with_fast_tanh(render(_TEMPLATE, prim)), namespace)
            kern = njit(nogil=True, error_model="numpy")(namespace["kernel"])
        _compiled[(prim, vector)] = kern
    return kern


def value_and_partial(prim: Primitive, x: np.ndarray):
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    d = np.empty_like(flat)
    if flat.dtype == np.float64 and prim in _VECTOR:
        if build(prim, vector=True)(flat, out, d):     # some argument out of range
            build(prim)(flat, out, d)
    else:
        build(prim)(flat, out, d)
    return out.reshape(x.shape), d.reshape(x.shape)
