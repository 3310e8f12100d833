"""GPU kernels: the same table compiled with ``numba.cuda`` (a grid-stride
loop, so any grid covers any size), launched on CuPy arrays through the CUDA
array interface. Tested under ``NUMBA_ENABLE_CUDASIM=1`` without a GPU."""
from __future__ import annotations

import math  # noqa: F401  (used by the generated kernels)

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


def python_kernel(name: str):
    """The kernel as a plain Python function (for ``cuda.jit`` or ``compile_ptx``)."""
    from numba import cuda
    namespace = {"math": math, "cuda": cuda}
    exec(render(_TEMPLATE, name), namespace)
    return namespace["kernel"]


def build(name: str):
    kern = _compiled.get(name)
    if kern is None:
        from numba import cuda
        kern = _compiled[name] = cuda.jit(python_kernel(name))
    return kern


def launch(name: str, x, out, d) -> None:
    """Run the fused kernel on 1-D device (or simulator) arrays."""
    n = x.size
    blocks = max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS))
    build(name)[blocks, THREADS](x, out, d)


def value_and_partial(name: str, x):
    import cupy as cp
    flat = cp.ascontiguousarray(x).reshape(-1)
    out = cp.empty_like(flat)
    d = cp.empty_like(flat)
    launch(name, flat, out, d)
    return out.reshape(x.shape), d.reshape(x.shape)
