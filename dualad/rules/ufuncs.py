"""Elementwise primitives: each declares its partials once; the Dual tangent,
the HyperDual second-order term, the VJP and the Taylor rule derive from them.

Partials are written ``lambda out, *inputs: (d/dx0, d/dx1, ...)`` with
dualad-dispatched NumPy calls, so they differentiate themselves.
"""
from __future__ import annotations

import numpy as np

from dualad.core.backend import result_float_dtype
from dualad.core.dispatch import implements, prim_caller, register_nondiff
from dualad.core.levels import is_traced
from dualad.core.registry import Primitive, defprimitive, provided


def _elementwise(name, impl, partials, ufunc=None, singular=False, uses_out=False,
                 multilinear=False) -> Primitive:
    """Declare an elementwise primitive (``uses_out``: its partials read ``out``)
    and route ``ufunc`` on traced values to it."""
    prim = defprimitive(name, impl, partials=partials, singular=singular,
                        partials_use_out=uses_out, multilinear=multilinear)
    if ufunc is not None:
        implements(ufunc)(prim_caller(prim))
    return prim


def _power_partials(out, x, exponent):
    # A constant exponent is a parameter, not an input: no log(x) pass for x**2.
    if isinstance(exponent, (int, float)) and exponent == 2:
        return (2.0 * x,)
    if isinstance(exponent, (int, float)) and exponent == 0:
        # x**0 is the constant 1: no derivative at all (0 * x**-1 would be
        # NaN at x = 0; a zero partial would still carry a zero tangent).
        return (None,)
    return (exponent * power_p(x, exponent=exponent - 1),)


_MAX_INT_POWER = 32


def _power(x, exponent):
    """``x ** exponent`` for a constant exponent. Small integer exponents by
    repeated squaring and +-1/2 by sqrt: NumPy's general float pow costs about
    50 ns an element (x**12 in a Lennard-Jones energy), a multiply 0.2 ns."""
    e = exponent
    if type(e) in (int, float) and (type(x) is float or getattr(
            getattr(x, "dtype", None), "kind", "") == "f"):
        if e == int(e) and 1 <= abs(e) <= _MAX_INT_POWER:
            n, result, base = int(abs(e)), None, x
            while n:
                if n & 1:
                    result = base if result is None else result * base
                n >>= 1
                if n:
                    base = base * base
            return result if e > 0 else 1.0 / result
        if e == 0.5:
            return np.sqrt(x)
        if e == -0.5:
            return 1.0 / np.sqrt(x)
    return np.power(x, exponent)


def _pow_partials(out, x, y):
    # Traced exponent: d/dy x**y = log(x) x**y; at x = 0 the term is 0 (out is 0).
    log_x = np.log(np.where(x == 0, 1.0, x))
    dtype = np.result_type(out)
    if log_x.dtype != dtype:          # a Python-float base must not upcast float32
        log_x = log_x.astype(dtype)
    return y * np.power(x, y - 1), out * log_x


def _tie_half(a, b):
    # maximum/minimum at a tie: split the derivative evenly (as JAX), so
    # max(x, x) has derivative 1 and is symmetric. In the inputs' float dtype.
    dtype = np.result_type(a, b)
    dtype = dtype if dtype.kind == "f" else np.float64
    return np.where(a == b, 0.5, 1.0).astype(dtype)


# ============================================================================
# arithmetic
# ============================================================================
add_p = _elementwise("add", np.add, lambda out, x, y: (1.0, 1.0), np.add)
subtract_p = _elementwise("subtract", np.subtract, lambda out, x, y: (1.0, -1.0), np.subtract)
# singular: a factor may be inf where the cotangent/tangent is exactly 0 (the
# unselected branch of a np.where), and inf * 0 must stay 0, not NaN. The
# partials are the factors, finite exactly where x * y is: test the output once.
multiply_p = _elementwise("multiply", np.multiply, lambda out, x, y: (y, x), None,
                          singular="out", multilinear=True)
true_divide_p = _elementwise("true_divide", np.true_divide,
                             lambda out, x, y: (1.0 / y, -out / y), np.true_divide,
                             singular=True, uses_out=True)
negative_p = _elementwise("negative", np.negative, lambda out, x: (-1.0,), np.negative)
power_p = _elementwise("power", _power, _power_partials, singular=True)
pow_p = _elementwise("pow", np.power, _pow_partials, singular=True, uses_out=True)


@implements(np.power)
def power(x, p):
    """x ** p: ``power`` for a constant exponent, ``pow`` for a traced one."""
    if is_traced(p):
        return pow_p(x, p)
    return power_p(x, exponent=p)


implements(np.float_power)(power)
# singular as multiply: 2x is finite wherever x**2 is, and x * x routes here
square_p = _elementwise("square", np.square, lambda out, x: (2.0 * x,), np.square,
                        singular="out")


@implements(np.multiply)
def _multiply(x, y, **params):
    """``x * y``; one traced object times itself (``d * d`` of a pair energy)
    is ``square``: the same bits (``x * x`` is ``np.square(x)``; ``2 (x t)``
    is ``(2 x) t``), and one product instead of two, plus no summing of two
    cotangents, in every derivative pass."""
    if x is y and not params and hasattr(x, "_level"):
        return square_p(x)
    return multiply_p(x, y, **params)
sqrt_p = _elementwise("sqrt", np.sqrt, lambda out, x: (0.5 / out,), np.sqrt,
                      singular=True, uses_out=True)
cbrt_p = _elementwise("cbrt", np.cbrt, lambda out, x: (1.0 / (3.0 * out * out),), np.cbrt,
                      singular=True, uses_out=True)
reciprocal_p = _elementwise("reciprocal", np.reciprocal, lambda out, x: (-out * out,),
                            np.reciprocal, uses_out=True)
absolute_p = _elementwise("absolute", np.absolute, lambda out, x: (np.sign(x),), np.absolute)
implements(np.positive)(lambda x: x)
implements(np.divide)(prim_caller(true_divide_p))

# ============================================================================
# exponentials and logarithms
# ============================================================================
_LN2, _LN10 = float(np.log(2.0)), float(np.log(10.0))  # Python floats keep float32
exp_p = _elementwise("exp", np.exp, lambda out, x: (out,), np.exp, uses_out=True)
exp2_p = _elementwise("exp2", np.exp2, lambda out, x: (out * _LN2,), np.exp2, uses_out=True)
expm1_p = _elementwise("expm1", np.expm1, lambda out, x: (out + 1.0,), np.expm1, uses_out=True)
log_p = _elementwise("log", np.log, lambda out, x: (1.0 / x,), np.log, singular=True)
log2_p = _elementwise("log2", np.log2, lambda out, x: (1.0 / (x * _LN2),), np.log2,
                      singular=True)
log10_p = _elementwise("log10", np.log10, lambda out, x: (1.0 / (x * _LN10),), np.log10,
                       singular=True)
log1p_p = _elementwise("log1p", np.log1p, lambda out, x: (1.0 / (1.0 + x),), np.log1p,
                       singular=True)
logaddexp_p = _elementwise("logaddexp", np.logaddexp,
                           lambda out, x, y: (np.exp(x - out), np.exp(y - out)), np.logaddexp,
                           uses_out=True)

# ============================================================================
# trigonometric and hyperbolic
# ============================================================================
sin_p = _elementwise("sin", np.sin, lambda out, x: (np.cos(x),), np.sin)
cos_p = _elementwise("cos", np.cos, lambda out, x: (-np.sin(x),), np.cos)
tan_p = _elementwise("tan", np.tan, lambda out, x: (1.0 + out * out,), np.tan, uses_out=True)
arcsin_p = _elementwise("arcsin", np.arcsin, lambda out, x: (1.0 / np.sqrt(1.0 - x * x),),
                        np.arcsin, singular=True)
arccos_p = _elementwise("arccos", np.arccos, lambda out, x: (-1.0 / np.sqrt(1.0 - x * x),),
                        np.arccos, singular=True)
arctan_p = _elementwise("arctan", np.arctan, lambda out, x: (1.0 / (1.0 + x * x),), np.arctan)
arctan2_p = _elementwise("arctan2", np.arctan2,
                         lambda out, y, x: (x / (x * x + y * y), -y / (x * x + y * y)),
                         np.arctan2, singular=True)
hypot_p = _elementwise("hypot", np.hypot, lambda out, x, y: (x / out, y / out), np.hypot,
                       singular=True, uses_out=True)
sinh_p = _elementwise("sinh", np.sinh, lambda out, x: (np.cosh(x),), np.sinh)
cosh_p = _elementwise("cosh", np.cosh, lambda out, x: (np.sinh(x),), np.cosh)
tanh_p = _elementwise("tanh", np.tanh, lambda out, x: (1.0 - out * out,), np.tanh, uses_out=True)
arcsinh_p = _elementwise("arcsinh", np.arcsinh, lambda out, x: (1.0 / np.sqrt(x * x + 1.0),),
                         np.arcsinh)
arccosh_p = _elementwise("arccosh", np.arccosh, lambda out, x: (1.0 / np.sqrt(x * x - 1.0),),
                         np.arccosh, singular=True)
arctanh_p = _elementwise("arctanh", np.arctanh, lambda out, x: (1.0 / (1.0 - x * x),),
                         np.arctanh, singular=True)

# ============================================================================
# piecewise: maximum/minimum (ties split evenly), fmax/fmin (NaN-ignoring)
# ============================================================================
def _max_partials(out, x, y):
    # Why the half: at a tie both inputs own the result equally.
    w = _tie_half(x, y)
    return w * (x >= y), w * (y >= x)


def _min_partials(out, x, y):
    w = _tie_half(x, y)
    return w * (x <= y), w * (y <= x)


def _fmax_partials(out, x, y):
    # fmax takes the non-NaN input where one is NaN.
    px = np.where(np.isnan(y), 1.0, _tie_half(x, y) * (x >= y))
    return px, np.where(np.isnan(x), 1.0, _tie_half(x, y) * (y >= x))


def _fmin_partials(out, x, y):
    px = np.where(np.isnan(y), 1.0, _tie_half(x, y) * (x <= y))
    return px, np.where(np.isnan(x), 1.0, _tie_half(x, y) * (y <= x))


maximum_p = _elementwise("maximum", np.maximum, _max_partials, np.maximum)
minimum_p = _elementwise("minimum", np.minimum, _min_partials, np.minimum)
fmax_p = _elementwise("fmax", np.fmax, _fmax_partials, np.fmax)
fmin_p = _elementwise("fmin", np.fmin, _fmin_partials, np.fmin)


@implements(np.clip)
def clip(x, a_min=None, a_max=None, **kwargs):
    """np.clip as maximum/minimum, so the derivative is 1 inside, 0 outside."""
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if a_min is not None:
        x = maximum_p(x, a_min)
    if a_max is not None:
        x = minimum_p(x, a_max)
    return x


# mod/remainder/fmod: x - y * q with q = floor(x / y) (trunc for fmod) piecewise
# constant, so the partials are 1 and -q (exact off the jumps at integer x/y;
# floor_divide itself stays non-differentiable: its derivative is 0).
remainder_p = _elementwise("remainder", np.remainder, lambda out, x, y: (1.0, -np.floor(x / y)),
                            np.remainder)
fmod_p = _elementwise("fmod", np.fmod, lambda out, x, y: (1.0, -np.trunc(x / y)), np.fmod)


# ============================================================================
# dtype conversion between floating types (a linear identity)
# ============================================================================
def _astype(x, dtype, lead=0):
    return x.astype(dtype) if hasattr(x, "astype") else np.asarray(x, dtype=dtype)


def _astype_transpose(ct, primals, lead, dtype):
    back = result_float_dtype(primals[0])
    if back.kind == "f" and np.dtype(dtype).kind == "c":
        ct = np.real(ct)          # real -> complex: a real input keeps the real part
    return astype_p(ct, dtype=back, lead=lead)


astype_p = defprimitive("astype", _astype, transpose=_astype_transpose)
provided.astype = astype_p          # Tracer.astype (core) binds it

# ============================================================================
# non-differentiable: the result is piecewise constant or not a float
# ============================================================================
register_nondiff(
    np.sign, np.floor, np.ceil, np.rint, np.trunc, np.fix, np.round, np.around,
    np.floor_divide,
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
    np.isfinite, np.isnan, np.isinf, np.signbit, np.logical_and, np.logical_or,
    np.logical_not, np.logical_xor, np.heaviside, np.argmax, np.argmin, np.argsort,
    np.nonzero, np.argwhere, np.flatnonzero, np.shape, np.ndim, np.size, np.result_type,
    np.isclose, np.allclose, np.array_equal, np.all, np.any, np.count_nonzero, np.sort_complex,
    np.searchsorted, np.iscomplexobj, np.isrealobj,
)
