"""Taylor coefficient arithmetic: the O(K**2) series recurrences behind
:mod:`dualad.forward.taylor` (Cauchy products, division, powers, exp/log and
the paired sin/cos and sinh/cosh recurrences). Coefficients are lists
``[x0, ..., xK]``; Python floats take a :mod:`math` fast path."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dualad.core.backend import namespace_of, peel, result_float_dtype
from dualad.core.levels import is_traced
from dualad.core.registry import Primitive, shape_of
from dualad.rules.ufuncs import (
    cbrt_p,
    cos_p,
    cosh_p,
    exp_p,
    expm1_p,
    log1p_p,
    log_p,
    power_p,
    sin_p,
    sinh_p,
    sqrt_p,
    tan_p,
    tanh_p,
)

# ============================================================================
# helpers on coefficients
# ============================================================================
_MATH = {exp_p: math.exp, log_p: math.log, sin_p: math.sin, cos_p: math.cos,
         sinh_p: math.sinh, cosh_p: math.cosh, tan_p: math.tan, tanh_p: math.tanh,
         sqrt_p: math.sqrt, expm1_p: math.expm1, log1p_p: math.log1p,
         cbrt_p: getattr(math, "cbrt", None)}


def _f0(prim: Primitive, x0):
    """``prim(x0)`` for the zeroth coefficient: :mod:`math` on Python floats
    (the scalar fast path), the primitive otherwise."""
    if type(x0) is float:
        f = _MATH.get(prim)
        if f is not None:
            try:
                return f(x0)
            except (ValueError, OverflowError):
                pass            # outside math's domain: NumPy's nan/inf semantics
    return prim(x0)


def _pow0(x0, p):
    if type(x0) is float and isinstance(p, (float, int)):
        try:
            return math.pow(x0, p)
        except (ValueError, OverflowError, ZeroDivisionError):
            pass
    return power_p(x0, exponent=p)


def _nz(d):
    # Python floats raise on division by zero; NumPy floats give inf/nan, which
    # is what the array path does, so switch to them at zero.
    return np.float64(d) if type(d) is float and d == 0.0 else d


def _is_series(x) -> bool:
    return type(x) is list


def _zeros_like(x):
    """Raw zeros shaped like the constant ``x`` (its higher coefficients)."""
    if isinstance(x, (float, int)):
        return 0.0
    v = peel(x)
    return namespace_of(v).zeros(shape_of(v), dtype=result_float_dtype(v))


def _full(c, like):
    """Coefficient ``c`` broadcast to the shape of ``like`` (elementwise rules
    let higher coefficients stay smaller; structural primitives need shapes)."""
    shape = shape_of(like)
    if shape_of(c) == shape:
        return c
    if hasattr(c, "_level"):
        return np.broadcast_to(c, shape)
    xp = namespace_of(peel(like))
    if isinstance(c, (float, int)):
        c = xp.asarray(c, dtype=result_float_dtype(like))
    return xp.broadcast_to(c, shape)


def _full_series(x: list) -> list:
    return [x[0]] + [_full(c, x[0]) for c in x[1:]]


def _coef(x, k: int):
    """Coefficient ``k`` of a series or of a constant."""
    if type(x) is list:
        return x[k]
    return x if k == 0 else 0.0


def _cauchy(a: list, b: list, n: int) -> list:
    out = []
    for k in range(n):
        s = a[0] * b[k]
        for j in range(1, k + 1):
            s = s + a[j] * b[k - j]
        out.append(s)
    return out


def _weighted(x: list, n: int) -> list:
    """``[0, 1 x_1, 2 x_2, ...]``: the coefficients of ``t x'(t)``."""
    return [0.0] + [j * x[j] for j in range(1, n)]


# ============================================================================
# arithmetic
# ============================================================================
def _unary(series_fn: Callable) -> Callable:
    """The rule of a one-input primitive from ``series_fn(coeffs, n)``."""
    return lambda prim, level, xs, n, params: series_fn(xs[0], n)


def _add(prim, level, xs, n, params):
    a, b = xs
    if _is_series(a) and _is_series(b):
        return [x + y for x, y in zip(a, b)]
    return [a[0] + b] + a[1:] if _is_series(a) else [a + b[0]] + b[1:]


def _subtract(prim, level, xs, n, params):
    a, b = xs
    if _is_series(a) and _is_series(b):
        return [x - y for x, y in zip(a, b)]
    return [a[0] - b] + a[1:] if _is_series(a) else [a - b[0]] + [-c for c in b[1:]]


def _multiply(prim, level, xs, n, params):
    a, b = xs
    if not _is_series(a):
        return [a * c for c in b]
    return [c * b for c in a] if not _is_series(b) else _cauchy(a, b, n)


def _divide_series(a, b: list, n: int) -> list:
    # y b = a  =>  y_k = (a_k - sum_{j=1..k} b_j y_{k-j}) / b_0
    b0, y = _nz(b[0]), []
    for k in range(n):
        s = _coef(a, k)
        for j in range(1, k + 1):
            s = s - b[j] * y[k - j]
        y.append(s / b0)
    return y


def _divide(prim, level, xs, n, params):
    a, b = xs
    if not _is_series(b):
        b = _nz(b)
        return [c / b for c in a]
    return _divide_series(a, b, n)


def _sqrt_series(x: list, n: int) -> list:
    # y y = x  =>  y_k = (x_k - sum_{j=1..k-1} y_j y_{k-j}) / (2 y_0)
    y = [_f0(sqrt_p, x[0])]
    d = _nz(2.0 * y[0])
    for k in range(1, n):
        s = x[k]
        for j in range(1, k):
            s = s - y[j] * y[k - j]
        y.append(s / d)
    return y


def _small_int(p):
    """``p`` as an int when it is a constant whole number in [0, 64]."""
    if is_traced(p) or isinstance(p, bool) or np.ndim(p):
        return None
    p = p.item() if isinstance(p, (np.ndarray, np.generic)) else p
    if isinstance(p, int) or (isinstance(p, float) and p.is_integer()):
        return int(p) if 0 <= p <= 64 else None
    return None


def _power_const(x: list, p, n: int, y0=None) -> list:
    q = _small_int(p) if y0 is None else None
    if q is not None:
        # Repeated squaring: exact, and defined at x0 = 0 where the recurrence
        # below would divide by zero (x**2, x**3 at the origin).
        if q == 0:
            return [_pow0(x[0], 0)] + [0.0] * (n - 1)
        result, base = None, x
        while q:
            if q & 1:
                result = base if result is None else _cauchy(result, base, n)
            q >>= 1
            base = _cauchy(base, base, n) if q else base
        return result
    # x y' = p y x'  =>  k x_0 y_k = sum_{j=1..k} (p j - (k - j)) x_j y_{k-j}
    y = [_pow0(x[0], p) if y0 is None else y0]
    x0 = _nz(x[0])
    for k in range(1, n):
        s = 0.0
        for j in range(1, k + 1):
            s = s + (p * j - (k - j)) * x[j] * y[k - j]
        y.append(s / (k * x0))
    return y


def _pow(prim, level, xs, n, params):
    x, p = xs
    if not _is_series(p):
        return _power_const(x, p, n)
    # Traced exponent: x**p = exp(p log x).
    logx = _log_series(x, n) if _is_series(x) else _f0(log_p, x)
    return _exp_series(_multiply(None, level, [p, logx], n, params), n)


# ============================================================================
# exponentials and logarithms
# ============================================================================
def _ode_term(xd: list, g: list, k: int):
    """``sum_{j=1..k} j x_j g_{k-j}`` (``xd[j] = j x_j``): the k-th term of
    ``y' = g x'``, shared by every ODE recurrence below."""
    s = xd[1] * g[k - 1]
    for j in range(2, k + 1):
        s = s + xd[j] * g[k - j]
    return s


def _exp_series(x: list, n: int, y0=None) -> list:
    # y' = y x'  =>  y_k = (1/k) sum_{j=1..k} j x_j y_{k-j}
    y = [_f0(exp_p, x[0]) if y0 is None else y0]
    xd = _weighted(x, n)
    for k in range(1, n):
        y.append(_ode_term(xd, y, k) / k)
    return y


def _log_series(x: list, n: int, u0=None, y0=None) -> list:
    # u y' = u'  (u = x, or 1 + x for log1p)
    #   =>  y_k = (u_k - (1/k) sum_{j=1..k-1} j y_j u_{k-j}) / u_0
    u0 = x[0] if u0 is None else u0
    y = [_f0(log_p, u0) if y0 is None else y0]
    d = _nz(u0)
    for k in range(1, n):
        s = 0.0
        for j in range(1, k):
            s = s + j * y[j] * x[k - j]
        y.append((x[k] - s / k) / d)
    return y


def _log_base(prim: Primitive, base: float) -> Callable:
    scale = 1.0 / math.log(base)
    return _unary(lambda x, n: [prim(x[0])]
                  + [c * scale for c in _log_series(x, n)[1:]])


# ============================================================================
# trigonometric and hyperbolic: paired recurrences
# ============================================================================
def _paired(x: list, n: int, prims: tuple, sign: float) -> tuple[list, list]:
    # s' = c x', c' = sign s x'  (sin/cos: sign -1; sinh/cosh: sign +1)
    s, c = [_f0(prims[0], x[0])], [_f0(prims[1], x[0])]
    xd = _weighted(x, n)
    for k in range(1, n):
        ss, cc = _ode_term(xd, c, k), _ode_term(xd, s, k)
        s.append(ss / k)
        c.append(cc * (sign / k))
    return s, c


def _tan_series(prim: Primitive, sign: float) -> Callable:
    # y' = (1 + sign y^2) x'; g = 1 + sign y^2 is built as y grows.
    def series(x: list, n: int) -> list:
        y = [_f0(prim, x[0])]
        g = [1.0 + sign * (y[0] * y[0])]
        xd = _weighted(x, n)
        for k in range(1, n):
            y.append(_ode_term(xd, g, k) / k)
            if k < n - 1:
                q = y[0] * y[k]
                q = q + q               # the i = 0 and i = k terms
                for i in range(1, k):
                    q = q + y[i] * y[k - i]
                g.append(sign * q)
        return y
    return series
