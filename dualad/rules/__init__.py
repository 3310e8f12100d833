"""rules: the derivative rules, one module per op family.

Elementwise ops declare their partials once (every mode derives from them);
linear and structural ops declare a transpose; the rest a jvp and a vjp
written with dispatched NumPy calls, so they differentiate themselves.
Importing this package fills the registry and the dispatch tables.

May import: core.
"""
from dualad.core import (  # noqa: F401  (conversions keep traced values in transforms)
    array_api,
    convert,
)
from dualad.rules import (  # noqa: F401  (each module registers its primitives)
    contractions,
    indexing,
    inplace,
    joins,
    linalg,
    linalg_decomp,
    reductions,
    shape,
    ufuncs,
)
