"""dualad: exact derivatives of ordinary NumPy code.

>>> import numpy as np, dualad as da
>>> float(da.grad(lambda x: np.sin(x) * x)(0.0))
0.0
"""
from __future__ import annotations

import importlib

from dualad import kernels, rules  # noqa: F401  (rules fill the registry and dispatch tables)
from dualad.compat.weights import grad as grad
from dualad.compat.weights import value_and_grad as value_and_grad
from dualad.forward import Dual as Dual
from dualad.forward.api import jacfwd as jacfwd
from dualad.forward.api import jvp as jvp
from dualad.forward.api import pick_chunk as pick_chunk
from dualad.reverse.api import jacrev as jacrev
from dualad.reverse.api import vjp as vjp

kernels.register()              # the fused value-and-partial kernels (compiled lazily)

__version__ = "0.1.0"

# The rest of the public API, imported on first use (keeps `import dualad`
# light: Numba, SciPy and the planner load only when needed).
_LAZY = {
    "HyperDual": "dualad.forward.hyperdual",
    "Taylor": "dualad.forward.taylor",
    "derivative": "dualad.forward.taylor",
    "custom_jvp": "dualad.custom",
    "custom_vjp": "dualad.custom",
    "stop_gradient": "dualad.custom",
    "hessian": "dualad.mixed.transforms",
    "hvp": "dualad.mixed.transforms",
    "jacobian": "dualad.mixed.transforms",
    "tensor": "dualad.reverse.tensor",
    "Tensor": "dualad.reverse.tensor",
    "Parameter": "dualad.compat.nn",
    "Module": "dualad.compat.nn",
    "vmap": "dualad.batching.api",
    "GradOperation": "dualad.compat.mindspore",
    "Jvp": "dualad.compat.mindspore",
    "Vjp": "dualad.compat.mindspore",
    "clip_by_global_norm": "dualad.compat.amp",
    "plan": "dualad.mixed.planner",
    "Plan": "dualad.mixed.planner",
    "set_memory_budget": "dualad.mixed.planner",
    "memory_budget": "dualad.mixed.budget",
    "sparsity": "dualad.mixed.patterns",
    "set_kernels": "dualad.kernels",
    "check_grads": "dualad.testing",
    "laplacian": "dualad.forward.laplacian",
    "hessian_diag": "dualad.forward.laplacian",
    "jet": "dualad.forward.jet",
    "jit": "dualad.mixed.jit",
}
# Public submodules: name -> module path (``da.planner`` and ``da.nn`` name
# rooms that now live in the layered folders).
_SUBMODULES = {"forward": "dualad.forward", "reverse": "dualad.reverse",
               "autograd": "dualad.autograd", "amp": "dualad.amp", "testing": "dualad.testing",
               "kernels": "dualad.kernels", "planner": "dualad.mixed.planner",
               "nn": "dualad.compat.nn"}

__all__ = sorted(["Dual", "jvp", "jacfwd", "pick_chunk", "vjp", "grad", "value_and_grad",
                  "jacrev", *_LAZY, *_SUBMODULES])


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    raise AttributeError(f"module 'dualad' has no attribute {name!r}")


def __dir__():
    return __all__
