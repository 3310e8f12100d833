"""Fused elementwise kernels on the GPU: the :class:`~dualad.mixed.fuse.KernelSpec`
of a recorded run rendered as a ``numba.cuda`` kernel (a grid-stride loop,
so any grid covers any size), launched on CuPy arrays (or, under
``NUMBA_ENABLE_CUDASIM=1``, NumPy arrays in the simulator).

The run's finiteness guards become a small int32 flag array on the device
(flag ``k`` set when an element of guarded value ``k`` is not finite); the
caller reads it once per kernel, not once per operation.

Example (in the simulator or on a GPU)::

    spec = kernel_spec(run, needed)              # dualad.mixed.fuse
    kern = build(spec)                           # numba.cuda kernel
    outs, ok = launch(spec, kern, inputs, n)
"""
from __future__ import annotations

import math  # noqa: F401  (used by the generated kernels)

import numpy as np

from dualad.mixed.fuse import KernelSpec

__all__ = ["cuda_source", "python_kernel", "build", "launch", "THREADS", "MAX_BLOCKS"]

THREADS = 256
MAX_BLOCKS = 1024
_compiled: dict = {}


def cuda_source(spec: KernelSpec) -> str:
    """The kernel's source: ``math`` functions (CUDA's libdevice) in place of
    NumPy's, the guards as flag writes."""
    body = [f"        {v} = {e.replace('np.', 'math.')}" for v, e in spec.lines]
    body += [f"        {o}[i] = {v}" for o, v in spec.outs]
    body += [f"        if not math.isfinite({v}):\n            flags[{k}] = 1"
             for k, (v, _) in enumerate(spec.guards)]
    first = next(n for n in spec.names if n not in spec.scalars)
    params = ", ".join(spec.names + [o for o, _ in spec.outs] + ["flags"])
    return (f"def fused({params}):\n"
            "    start = cuda.grid(1)\n"
            "    stride = cuda.gridsize(1)\n"
            f"    for i in range(start, {first}.size, stride):\n" + "\n".join(body) + "\n")


def python_kernel(spec: KernelSpec):
    """The kernel as a plain Python function (for ``cuda.jit`` or ``compile_ptx``)."""
    from numba import cuda
    ns = {"math": math, "cuda": cuda}
    exec(cuda_source(spec), ns)
    return ns["fused"]


def build(spec: KernelSpec):
    """The compiled ``cuda.jit`` kernel of ``spec`` (once per source)."""
    source = cuda_source(spec)
    kern = _compiled.get(source)
    if kern is None:
        from numba import cuda
        kern = _compiled[source] = cuda.jit(python_kernel(spec))
    return kern


def launch(spec: KernelSpec, kern, inputs: list, n: int, xp=np):
    """Run ``kern`` on flat ``inputs`` (arrays of ``n`` elements, or Python
    floats for the scalar arguments); returns ``(outputs, ok)`` with ``ok``
    whether every guard holds as recorded (one read of the flag array)."""
    outs = [xp.empty(n) for _ in spec.outs]
    flags = xp.zeros(max(1, len(spec.guards)), dtype=np.int32)
    blocks = max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS))
    kern[blocks, THREADS](*inputs, *outs, flags)
    seen = flags.get() if hasattr(flags, "get") else flags
    ok = all(bool(seen[k]) != want for k, (_, want) in enumerate(spec.guards))
    return outs, ok
