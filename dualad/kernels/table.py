"""The expression table the kernels are generated from: per unary primitive,
the value ``y = f(x)`` and the partial ``dy/dx`` as expressions in ``x`` and
``y`` (Numba-compilable ``math`` calls). ``tests/test_kernels.py`` checks every
partial against the primitive registry's own ``partials``, so the two cannot
drift apart."""

EXPRESSIONS: dict[str, tuple[str, str]] = {
    "sin": ("math.sin(x)", "math.cos(x)"),
    "cos": ("math.cos(x)", "-math.sin(x)"),
    "tan": ("math.tan(x)", "1.0 + y * y"),
    "exp": ("math.exp(x)", "y"),
    "expm1": ("math.expm1(x)", "y + 1.0"),
    "log": ("math.log(x)", "1.0 / x"),
    "log1p": ("math.log1p(x)", "1.0 / (1.0 + x)"),
    "sqrt": ("math.sqrt(x)", "0.5 / y"),
    "tanh": ("math.tanh(x)", "1.0 - y * y"),
    "sinh": ("math.sinh(x)", "math.cosh(x)"),
    "cosh": ("math.cosh(x)", "math.sinh(x)"),
    "arctan": ("math.atan(x)", "1.0 / (1.0 + x * x)"),
    "arcsinh": ("math.asinh(x)", "1.0 / math.sqrt(x * x + 1.0)"),
    "square": ("x * x", "2.0 * x"),
}


def render(template: str, name: str) -> str:
    """Fill a kernel template's ``{value}``/``{partial}`` for primitive ``name``
    (the loop variable is ``x_i``)."""
    import re
    value, partial = EXPRESSIONS[name]
    sub = lambda e: re.sub(r"\bx\b", "x_i", e)
    return template.format(value=sub(value), partial=sub(partial))
