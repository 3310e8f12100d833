"""GPU kernels: the same table compiled with ``numba.cuda`` (a grid-stride
loop, so any grid covers any size), launched on CuPy arrays through the CUDA
array interface. Tested under ``NUMBA_ENABLE_CUDASIM=1`` without a GPU."""
from __future__ import annotations

import math  # noqa: F401  (used by the generated kernels)

from dualad.core.registry import Primitive
from dualad.kernels.table import render

_TEMPLATE = """
def kernel(x, out, d):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, x.size, stride):
        x_i = x[i]
        y = {value}
        out[i] = y
        d[i] = {partial}
"""
_compiled: dict = {}
THREADS = 256
MAX_BLOCKS = 1024


def python_kernel(prim: Primitive):
    """The kernel as a plain Python function (for ``cuda.jit`` or ``compile_ptx``)."""
    from numba import cuda
    namespace = {"math": math, "cuda": cuda}
    exec(render(_TEMPLATE, prim), namespace)
    return namespace["kernel"]


def build(prim: Primitive):
    kern = _compiled.get(prim)
    if kern is None:
        from numba import cuda
        kern = _compiled[prim] = cuda.jit(python_kernel(prim))
    return kern


def launch(prim: Primitive, x, out, d) -> None:
    """Run the fused kernel on 1-D device (or simulator) arrays."""
    n = x.size
    blocks = max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS))
    build(prim)[blocks, THREADS](x, out, d)


def value_and_partial(prim: Primitive, x):
    import cupy as cp
    flat = cp.ascontiguousarray(x).reshape(-1)
    out = cp.empty_like(flat)
    d = cp.empty_like(flat)
    launch(prim, flat, out, d)
    return out.reshape(x.shape), d.reshape(x.shape)
