"""CPU kernels: one Numba ``njit`` loop per table entry, computing the value
and the partial in a single pass over the input."""
from __future__ import annotations

import math  # noqa: F401  (used by the generated kernels)

import numpy as np

from dualad.core.registry import Primitive
from dualad.kernels.table import render

_TEMPLATE = """
def kernel(x, out, d):
    for i in range(x.size):
        x_i = x[i]
        y = {value}
        out[i] = y
        d[i] = {partial}
"""
_compiled: dict = {}


def build(prim: Primitive):
    """Compile (once per process) the fused kernel of ``prim``."""
    kern = _compiled.get(prim)
    if kern is None:
        from numba import njit

        from dualad.kernels.tanh_math import with_fast_tanh
        namespace = {"math": math}
        # generated from the table, nothing else
        exec(with_fast_tanh(render(_TEMPLATE, prim)), namespace)
        kern = _compiled[prim] = njit(nogil=True, error_model="numpy")(namespace["kernel"])
    return kern


def value_and_partial(prim: Primitive, x: np.ndarray):
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    d = np.empty_like(flat)
    build(prim)(flat, out, d)
    return out.reshape(x.shape), d.reshape(x.shape)
