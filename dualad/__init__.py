"""dualad: exact derivatives of ordinary NumPy code.

>>> import numpy as np, dualad as da
>>> float(da.grad(lambda x: np.sin(x) * x)(0.0))
0.0
"""
from . import rules  # noqa: F401  (fills the registry and dispatch tables)
from .forward import Dual
from .forward.api import jacfwd, jvp, pick_chunk
from .reverse.api import grad, jacrev, value_and_grad, vjp

__all__ = ["Dual", "jvp", "jacfwd", "pick_chunk", "vjp", "grad", "value_and_grad", "jacrev"]
__version__ = "0.1.0"
