"""The expression table the kernels are generated from: per unary primitive,
the value ``y = f(x)`` and the partial ``dy/dx`` as expressions in ``x`` and
``y`` (Numba-compilable ``math`` calls). ``tests/test_kernels.py`` checks every
partial against the primitive registry's own ``partials``, so the two cannot
drift apart. Keyed by the primitive objects (kernels may import rules)."""
from __future__ import annotations

from dualad.core.registry import Primitive
from dualad.rules.ufuncs import (
    arctan_p,
    cos_p,
    cosh_p,
    exp_p,
    sin_p,
    sinh_p,
    sqrt_p,
    square_p,
    tanh_p,
)

# The first partial of every primitive a generated kernel differentiates
# (the eager value-and-partial kernels below, the forward-Laplacian kernels
# of dualad.kernels.second): written once here, checked against the
# registry's ``partials`` by tests/test_kernels.py.
PARTIALS: dict[Primitive, str] = {
    sin_p: "math.cos(x)", cos_p: "-math.sin(x)", sqrt_p: "0.5 / y", square_p: "2.0 * x",
    tanh_p: "1.0 - y * y", exp_p: "y", sinh_p: "math.cosh(x)", cosh_p: "math.sinh(x)",
    arctan_p: "1.0 / (1.0 + x * x)",
}

_VALUES: dict[Primitive, str] = {
    # Only entries measured faster than NumPy's value + partial (bench/NOTES.md,
    # 2.6e5 float64 elements): NumPy 2's SIMD exp/log/tanh/arctan... beat Numba's
    # scalar libm calls 3-12x, so those stay in NumPy; sin/cos have no SIMD
    # float64 path in NumPy, and one fused pass reads x once.
    sin_p: "math.sin(x)",       # 0.62x NumPy's time
    cos_p: "math.cos(x)",       # 0.59x
    sqrt_p: "math.sqrt(x)",     # 0.31x
    square_p: "x * x",          # 0.72x
    # CPU: math.tanh becomes dualad.kernels.tanh_math's vectorised tanh (~0.3x
    # NumPy's tanh + partial); CUDA: libdevice's tanh
    tanh_p: "math.tanh(x)",
}

# per eager-kernel primitive: (value, partial)
EXPRESSIONS: dict[Primitive, tuple[str, str]] = {p: (v, PARTIALS[p]) for p, v in _VALUES.items()}


def render(template: str, prim: Primitive) -> str:
    """Fill a kernel template's ``{value}``/``{partial}`` for ``prim`` (the
    loop variable is ``x_i``)."""
    import re
    value, partial = EXPRESSIONS[prim]
    sub = lambda e: re.sub(r"\bx\b", "x_i", e)
    return template.format(value=sub(value), partial=sub(partial))
