"""Taylor mode: truncated Taylor polynomials pushed through the registry.

A :class:`Taylor` holds the normalised coefficients ``[x0, ..., xK]`` of
``x(t) = sum_k x_k t**k`` (``x_k = x^(k)(0) / k!``). Each primitive maps input
coefficients to output coefficients in O(K**2), by the first rule that applies:

* its ``taylor`` slot: Cauchy products, division and ODE recurrences (exp,
  log, sqrt, power, sin/cos, sinh/cosh, tan, tanh, ...) from
  :data:`TAYLOR_RULES` below (keyed by the primitive objects);
* ``prim.linear`` (reshape, sum, getitem, ...): the primitive on each coefficient;
* ``prim.multilinear`` (matmul, einsum): a sum over the splits of the degree;
* elementwise: the GENERIC rule from the registered ``partials``: ``y' = g x'``
  gives ``y_k = (1/k) sum_{j=1..k} j x_j g_{k-j}``, with ``g`` the partial
  evaluated in Taylor arithmetic one degree lower (degree by degree when the
  primitive declares ``partials_use_out``);
* anything else (linalg, max/prod, custom_jvp functions): nested ``jvp`` of that
  one primitive along ``t -> prim(x(t))``, exact but O(2**K) for it alone.

Python-float coefficients take a fast path through :mod:`math`.

>>> import numpy as np
>>> float(derivative(np.exp, 0.0, order=5))
1.0
"""
from __future__ import annotations

import math
from collections.abc import Callable
from itertools import product

import numpy as np

from dualad.core.args import as_result, check_outputs
from dualad.core.backend import check_differentiable, namespace_of, peel, result_float_dtype
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, is_traced, level_of, new_level, persistent_level
from dualad.core.registry import Primitive, bind, shape_of
from dualad.core.tree import tree_flatten, tree_unflatten
from dualad.forward.api import jvp_flat
from dualad.forward.taylor_series import (
    _add,
    _cauchy,
    _coef,
    _divide,
    _divide_series,
    _exp_series,
    _f0,
    _full,
    _full_series,
    _is_series,
    _log_base,
    _log_series,
    _multiply,
    _paired,
    _pow,
    _power_const,
    _sqrt_series,
    _subtract,
    _tan_series,
    _unary,
    _weighted,
    _zeros_like,
)
from dualad.rules.joins import concatenate_p
from dualad.rules.shape import where_p
from dualad.rules.ufuncs import (
    add_p,
    cbrt_p,
    cos_p,
    cosh_p,
    exp2_p,
    exp_p,
    expm1_p,
    log1p_p,
    log2_p,
    log10_p,
    log_p,
    multiply_p,
    negative_p,
    pow_p,
    power_p,
    reciprocal_p,
    sin_p,
    sinh_p,
    sqrt_p,
    square_p,
    subtract_p,
    tan_p,
    tanh_p,
    true_divide_p,
)

__all__ = ["Taylor", "derivative"]


# ============================================================================
# the Taylor tracer
# ============================================================================
class Taylor(Tracer):
    """A truncated Taylor polynomial: ``coeffs[k]`` is the k-th normalised
    coefficient (``f^(k) / k!``); each is a float, an array of the primal's
    shape (or broadcastable to it), or a lower-level tracer.

    >>> import numpy as np
    >>> y = np.exp(Taylor([0.0, 1.0, 0.0, 0.0]))
    >>> [round(float(c), 6) for c in y.coeffs]
    [1.0, 1.0, 0.5, 0.166667]
    """

    __slots__ = ("coeffs", "_level")

    def __init__(self, coeffs, level=None):
        coeffs = list(coeffs)
        if not coeffs:
            raise ValueError("a Taylor polynomial needs at least one coefficient")
        s0 = shape_of(coeffs[0])
        for k, c in enumerate(coeffs):
            if np.broadcast_shapes(shape_of(c), s0) != s0:
                raise ValueError(f"Taylor coefficient {k} has shape {shape_of(c)}, which does "
                                 f"not broadcast to the primal's shape {s0}")
        self.coeffs = coeffs
        self._level = level if level is not None else persistent_level("taylor", TaylorLevel)

    @classmethod
    def _make(cls, coeffs: list, level) -> Taylor:
        t = cls.__new__(cls)
        t.coeffs, t._level = coeffs, level
        return t

    @property
    def primal(self):
        return self.coeffs[0]

    @property
    def degree(self) -> int:
        return len(self.coeffs) - 1

    def __repr__(self) -> str:
        return f"Taylor({[peel(c) for c in self.coeffs]!r})"


# ============================================================================
# the interpreter
# ============================================================================
class TaylorLevel(Level):
    """Taylor-mode interpreter: run ``prim`` on truncated Taylor polynomials:
    truncate to the lowest degree present, apply the primitive's rule, wrap
    the coefficients."""

    __slots__ = ()
    kind = "taylor"

    def process(self, prim, args, params):
        level = self
        xs, n, ragged = [], 0, False
        for a in args:
            if getattr(a, "_level", None) is level:
                c = a.coeffs
                if n and len(c) != n:
                    ragged, n = True, min(n, len(c))
                elif not n:
                    n = len(c)
                xs.append(c)
            elif type(a) is list or type(a) is tuple:
                xs.append(np.asarray(a))     # lists mark series below: keep constants apart
            else:
                xs.append(a)
        if ragged:
            xs = [x[:n] if type(x) is list else x for x in xs]
        rule = prim.taylor or _default_rule(prim)
        out = rule(prim, level, xs, n, params)
        if prim.n_outputs == 1:
            return Taylor._make(out, level) if type(out) is list else out
        return tuple(Taylor._make(o, level) if type(o) is list else o for o in out)


def _default_rule(prim) -> Callable:
    if prim.linear:
        return _linear_rule
    if prim.multilinear:
        return _multilinear_rule
    if prim.partials is not None and prim.n_outputs == 1:
        return _generic_rule
    if prim.jvp is not None:
        return _jvp_rule
    raise NotImplementedError(f"primitive {prim.name!r} has no Taylor rule and no jvp")


# ============================================================================
# structural: linear, jointly linear, multilinear
# ============================================================================
def _linear_rule(prim, level, xs, n, params):
    """Linear in the first argument, the others constant: coefficient-wise."""
    if any(_is_series(a) for a in xs[1:]):
        return _jvp_rule(prim, level, xs, n, params)
    return [bind(prim, _full(c, xs[0][0]), *xs[1:], **params) for c in xs[0]]


def _joint_linear_rule(prim, level, xs, n, params):
    """Linear in all array arguments jointly (concatenate): coefficient-wise,
    a constant argument contributing only to coefficient 0."""
    full = [_full_series(a) if _is_series(a) else a for a in xs]
    zeros = [None if _is_series(a) else _zeros_like(a) for a in xs]
    return [bind(prim, *[a[k] if _is_series(a) else (a if k == 0 else z)
                         for a, z in zip(full, zeros)], **params) for k in range(n)]


def _where(prim, level, xs, n, params):
    cond, a, b = xs
    return [bind(prim, cond, _coef(a, k), _coef(b, k)) for k in range(n)]


def _multilinear_rule(prim, level, xs, n, params):
    """``prim`` linear in each argument separately (matmul, einsum): the k-th
    coefficient sums prim over every split of k among the series arguments."""
    idx = [i for i, a in enumerate(xs) if _is_series(a)]
    if len(idx) > 3:
        return _jvp_rule(prim, level, xs, n, params)
    full = {i: _full_series(xs[i]) for i in idx}
    out = []
    for k in range(n):
        total = None
        for split in product(range(k + 1), repeat=len(idx)):
            if sum(split) != k:
                continue
            args = list(xs)
            for i, kk in zip(idx, split):
                args[i] = full[i][kk]
            term = bind(prim, *args, **params)
            total = term if total is None else total + term
        out.append(total)
    return out


# ============================================================================
# the generic elementwise rule, from the registered partials
# ============================================================================
class _Undeclared:
    """Passed as ``out`` to partials declared not to read it
    (``partials_use_out=False``): reading it anyway is a wrong declaration,
    and must raise rather than give wrong coefficients."""

    __array_priority__ = 10**9

    def __init__(self, prim):
        self.prim = prim

    def _touch(self, *a, **k):
        raise _misdeclared(self.prim)

    __array_ufunc__ = __array_function__ = __array__ = _touch
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _touch
    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __neg__ = __pos__ = _touch
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __float__ = _touch
    __hash__ = object.__hash__


def _misdeclared(prim) -> TypeError:
    return TypeError(f"the partials of primitive {prim.name!r} read `out`, but it is declared "
                     "with partials_use_out=False: declare partials_use_out=True where "
                     "it is defined")


def _as_coeffs(g, level, n: int):
    """A partial's value as ``n`` coefficients (None: no dependence)."""
    if g is None:
        return None
    return g.coeffs if getattr(g, "_level", None) is level else [g] + [0.0] * (n - 1)


def _partials_at(prim, level, xs, m: int, out, params):
    """The partials with the inputs (and ``out``) truncated to ``m`` coefficients."""
    if m == 1:
        args = [a[0] if _is_series(a) else a for a in xs]
    else:
        args = [Taylor._make(a[:m], level) if _is_series(a) else a for a in xs]
    return prim.partials(out, *args, **params)


def _generic_rule(prim, level, xs, n, params):
    """``y_k = (1/k) sum_i sum_{j=1..k} j x^i_j g^i_{k-j}`` with ``g^i`` the
    i-th partial evaluated in Taylor arithmetic one degree lower."""
    y0 = bind(prim, *[a[0] if _is_series(a) else a for a in xs], **params)
    if n == 1:
        return [y0]
    series = [i for i, a in enumerate(xs) if _is_series(a)]
    xd = {i: _weighted(xs[i], n) for i in series}
    gs = None
    if not prim.partials_use_out:
        # One evaluation of the partials at degree n-2 gives every g_m needed
        # (a primitive whose partials read out is evaluated degree by degree).
        guard = _Undeclared(prim)
        parts = _partials_at(prim, level, xs, n - 1, guard, params)
        if any(p is guard for p in parts):
            raise _misdeclared(prim)
        gs = [_as_coeffs(p, level, n - 1) for p in parts]
    y = [y0]
    for k in range(1, n):
        if gs is None:
            # The partial reads out: y_0..y_{k-1} are known, so evaluate it at
            # degree k-1 (its coefficients 0..k-1 are then exact).
            out_k = y[0] if k == 1 else Taylor._make(list(y), level)
            parts = _partials_at(prim, level, xs, k, out_k, params)
            g_now = [_as_coeffs(p, level, k) for p in parts]
        else:
            g_now = gs
        s = 0.0
        for i in series:
            g = g_now[i]
            if g is None:
                continue
            for j in range(1, k + 1):
                s = s + xd[i][j] * g[k - j]
        y.append(s / k)
    return y


# ============================================================================
# the fallback: nested jvp of one primitive along the polynomial path
# ============================================================================
def _jvp_rule(prim, level, xs, n, params):
    """Coefficients of ``t -> prim(x(t))`` by ``n - 1`` nested jvps in ``t``
    (exact for any primitive with a jvp; cost grows as 2**n for this one)."""
    first = next(a for a in xs if _is_series(a))
    dtype = result_float_dtype(first[0])
    xp = namespace_of(peel(first[0]))
    t0, one = xp.zeros((), dtype=dtype), xp.ones((), dtype=dtype)

    def path(t):
        args = []
        for a in xs:
            if _is_series(a):
                v = a[-1]
                for c in reversed(a[:-1]):     # Horner
                    v = c + t * v
                args.append(v)
            else:
                args.append(a)
        return [bind(prim, *args, **params)]

    def tower(fn):
        def d(t):
            p, tan = jvp_flat(fn, (t,), (one,))
            return list(p) + [tan[-1]]
        return d

    fn = path
    for _ in range(n - 1):
        fn = tower(fn)
    derivs = fn(t0)
    if prim.n_outputs == 1:
        return [derivs[k] / math.factorial(k) for k in range(n)]
    return tuple([derivs[k][o] / math.factorial(k) for k in range(n)]
                 for o in range(prim.n_outputs))


# ============================================================================
# the rule table
# ============================================================================
_SC, _SCH = (sin_p, cos_p), (sinh_p, cosh_p)
TAYLOR_RULES: dict[Primitive, Callable] = {
    add_p: _add, subtract_p: _subtract, multiply_p: _multiply, true_divide_p: _divide,
    negative_p: _unary(lambda x, n: [-c for c in x]),
    reciprocal_p: _unary(lambda x, n: _divide_series(1.0, x, n)),
    square_p: _unary(lambda x, n: _cauchy(x, x, n)), sqrt_p: _unary(_sqrt_series),
    power_p: lambda prim, level, xs, n, params: _power_const(xs[0], params["exponent"], n),
    pow_p: _pow,
    cbrt_p: _unary(lambda x, n: _power_const(x, 1.0 / 3.0, n, y0=_f0(cbrt_p, x[0]))),
    exp_p: _unary(_exp_series),
    expm1_p: _unary(lambda x, n: [_f0(expm1_p, x[0])] + _exp_series(x, n)[1:]),
    exp2_p: _unary(lambda x, n: _exp_series([c * math.log(2.0) for c in x], n,
                                            y0=exp2_p(x[0]))),
    log_p: _unary(_log_series),
    log1p_p: _unary(lambda x, n: _log_series(x, n, u0=1.0 + x[0], y0=_f0(log1p_p, x[0]))),
    log2_p: _log_base(log2_p, 2.0), log10_p: _log_base(log10_p, 10.0),
    sin_p: _unary(lambda x, n: _paired(x, n, _SC, -1.0)[0]),
    cos_p: _unary(lambda x, n: _paired(x, n, _SC, -1.0)[1]),
    sinh_p: _unary(lambda x, n: _paired(x, n, _SCH, 1.0)[0]),
    cosh_p: _unary(lambda x, n: _paired(x, n, _SCH, 1.0)[1]),
    tan_p: _unary(_tan_series(tan_p, 1.0)), tanh_p: _unary(_tan_series(tanh_p, -1.0)),
    where_p: _where, concatenate_p: _joint_linear_rule,
}
"""The series recurrences and structural rules, by primitive (matmul and
einsum need none: their ``multilinear`` flag selects :func:`_multilinear_rule`)."""
for _prim, _rule in TAYLOR_RULES.items():
    _prim.taylor = _rule


# ============================================================================
# derivative
# ============================================================================
def derivative(fn: Callable, x, order: int = 1):
    """The ``order``-th derivative of ``fn`` at the scalar ``x`` (any order),
    by one pass of Taylor polynomials of degree ``order``. ``fn`` maps a scalar
    to an array (or a pytree of arrays); the result has the output's shape.

    Primitives without a Taylor recurrence or generic rule (linalg, max/prod
    reductions, custom_jvp functions) are expanded by nested ``jvp`` along the
    polynomial path, ``order`` levels deep: still exact, slower for them.

    >>> import numpy as np
    >>> round(float(derivative(lambda x: np.exp(2 * x), 0.0, order=3)), 12)
    8.0
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    order = int(order)
    if type(x) is not float:
        x = _scalar_arg(x)
    if order == 0:
        out = fn(x)
        check_outputs(out)
        return as_result(out)
    coeffs = [x, 1.0] + [0.0] * (order - 1)
    with new_level(TaylorLevel()) as level:
        out = fn(Taylor._make(coeffs, level))
        check_outputs(out)
        if level_of(out) is level:      # the common case: one output
            return as_result(_extract(out, level, order))
        leaves, td = tree_flatten(out)
        res = [as_result(_extract(o, level, order)) for o in leaves]
    return tree_unflatten(td, res)


def _scalar_arg(x):
    # As grad: an int or bool x is refused (TypeError naming it), not converted.
    check_differentiable(x, "x (the point derivative() evaluates at)")
    if shape_of(x) != ():
        raise ValueError(f"derivative needs a scalar x, got shape {shape_of(x)}")
    check_differentiable(x, "x")
    if not is_traced(x) and result_float_dtype(x) == np.float64:
        return float(x)          # the Python-float fast path
    return x


def _extract(o, level, order: int):
    if level_of(o) is not level:
        v = peel(o)
        xp = namespace_of(v)
        return xp.zeros(shape_of(v), dtype=result_float_dtype(v))
    c = o.coeffs[order]
    if order > 1:
        c = c * math.factorial(order)
    return _full(c, o.coeffs[0])



