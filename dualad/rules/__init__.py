"""rules: the derivative rules, one module per op family.

Elementwise ops declare their partials once (every mode derives from them);
linear and structural ops declare a transpose; the rest a jvp and a vjp
written with dispatched NumPy calls, so they differentiate themselves.
Importing this package fills the registry and the dispatch tables.

May import: core.
"""
import importlib
import sys

from dualad.core import (  # noqa: F401  (conversions keep traced values in transforms)
    array_api,
    convert,
)
from dualad.core.dispatch import UFUNC_LOADERS
from dualad.rules import (  # noqa: F401  (each module registers its primitives)
    complex,
    contractions,
    eig,
    fft,
    indexing,
    inplace,
    joins,
    linalg,
    linalg_decomp,
    misc,
    reductions,
    shape,
    ufuncs,
)


def _load_scipy_special(ufunc) -> bool:
    """Register the scipy.special rules when one of its ufuncs first reaches a
    traced value (SciPy is optional and is never imported by dualad itself:
    a scipy ufunc arriving means the user has imported it already)."""
    special = sys.modules.get("scipy.special")
    if special is None or not any(
            getattr(mod, ufunc.__name__, None) is ufunc
            for mod in (special, getattr(special, "_ufuncs", None))):
        return False
    importlib.import_module("dualad.rules.scipy_special")
    return True


UFUNC_LOADERS.append(_load_scipy_special)
