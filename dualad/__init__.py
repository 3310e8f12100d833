"""dualad: exact derivatives of ordinary NumPy code.

>>> import numpy as np, dualad as da
>>> float(da.grad(lambda x: np.sin(x) * x)(0.0))
0.0
"""
from __future__ import annotations

import importlib

from . import rules  # noqa: F401  (fills the registry and dispatch tables)
from .forward import Dual as Dual
from .forward.api import jacfwd as jacfwd
from .forward.api import jvp as jvp
from .forward.api import pick_chunk as pick_chunk
from .reverse.api import grad as grad
from .reverse.api import jacrev as jacrev
from .reverse.api import value_and_grad as value_and_grad
from .reverse.api import vjp as vjp

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
    "hessian": "dualad.transforms",
    "hvp": "dualad.transforms",
    "jacobian": "dualad.transforms",
    "tensor": "dualad.reverse.tensor",
    "Tensor": "dualad.reverse.tensor",
    "Parameter": "dualad.nn",
    "Module": "dualad.nn",
    "GradOperation": "dualad.compat",
    "Jvp": "dualad.compat",
    "Vjp": "dualad.compat",
    "clip_by_global_norm": "dualad.amp",
    "plan": "dualad.planner",
    "Plan": "dualad.planner",
    "set_memory_budget": "dualad.planner",
    "sparsity": "dualad._sparsity",
    "set_kernels": "dualad.kernels",
    "check_grads": "dualad.testing",
}
_SUBMODULES = {"forward", "reverse", "autograd", "amp", "nn", "testing", "kernels", "planner"}

__all__ = sorted(["Dual", "jvp", "jacfwd", "pick_chunk", "vjp", "grad", "value_and_grad",
                  "jacrev", *_LAZY, *_SUBMODULES])


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"dualad.{name}")
    raise AttributeError(f"module 'dualad' has no attribute {name!r}")


def __dir__():
    return __all__
