"""SciPy's special-function ufuncs as elementwise primitives.

SciPy stays optional: this module is imported by the loader in
``dualad/rules/__init__.py`` the first time a ``scipy.special`` ufunc reaches
a traced value (``__array_ufunc__``). At that moment ``scipy.special`` is
already imported by the user's code, so registering costs nothing extra, and
``import dualad`` never pays SciPy's import time (a few hundred ms).

Each function declares its partials once, written with dispatched calls
(``erfinv``'s partial calls ``exp`` of its output, ``jv``'s calls ``jv``...),
so every mode and order derives from them. Functions of an order parameter
(``jv(v, x)``, ``polygamma(n, x)``, ``zeta(s, q)``) are differentiated w.r.t.
``x``/``q`` only; a traced order raises.

>>> import numpy as np, scipy.special as sc, dualad as da
>>> bool(np.isclose(da.grad(sc.erf)(0.0), 2 / np.sqrt(np.pi)))
True
"""
from __future__ import annotations

import math

import numpy as np
import scipy.special as sc
from scipy.special import _ufuncs

from dualad.core.dispatch import implements, ufunc_name
from dualad.core.registry import defprimitive
from dualad.rules.complex import refuse_complex

_SQRT_PI = math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_zeta = _ufuncs._zeta                   # Hurwitz zeta(s, q): scipy.special.zeta's ufunc


def polygamma(n: int, x):
    """polygamma(n, x) with dispatched calls (scipy's own converts x with
    np.asarray): psi for n = 0, else (-1)^(n+1) n! zeta(n+1, x)."""
    if n == 0:
        return sc.psi(x)
    return ((-1.0) ** (n + 1) * math.factorial(n)) * _zeta(n + 1.0, x)


def _elementwise(ufunc, partials, holomorphic=False, singular=False):
    """One primitive named after the public function; real-only unless the
    partial is the complex derivative too."""
    name = ufunc_name(ufunc)
    prim = defprimitive(name, ufunc, partials=partials, singular=singular)
    if not holomorphic:
        refuse_complex(prim)
    implements(ufunc)(lambda *args, **kwargs: prim(*args))
    return prim


def _with_order(ufunc, partial_x, holomorphic=True, name=None):
    """``f(v, x)`` differentiated w.r.t. ``x``; a traced order ``v`` raises."""
    name = name or ufunc_name(ufunc)
    prim = defprimitive(name, ufunc, partials=lambda out, v, x: (None, partial_x(v, x, out)))
    if not holomorphic:
        refuse_complex(prim)

    def handler(v, x, **kwargs):
        if hasattr(v, "_level"):
            raise TypeError(f"dualad differentiates {name}(v, x) with respect to x only; "
                            "the order v must be a constant (wrap it with "
                            "dualad.stop_gradient if its derivative is not wanted).")
        return prim(v, x)
    implements(ufunc)(handler)
    return prim


def _gauss(x):
    return np.exp(-(x * x))


# ============================================================================
# error function family and the normal distribution
# ============================================================================
_elementwise(sc.erf, lambda out, x: ((2.0 / _SQRT_PI) * _gauss(x),), holomorphic=True)
_elementwise(sc.erfc, lambda out, x: ((-2.0 / _SQRT_PI) * _gauss(x),), holomorphic=True)
_elementwise(sc.erfinv, lambda out, x: ((_SQRT_PI / 2.0) * np.exp(out * out),), singular=True)
_elementwise(sc.erfcinv, lambda out, x: ((-_SQRT_PI / 2.0) * np.exp(out * out),),
             singular=True)
_elementwise(sc.ndtr, lambda out, x: (_INV_SQRT_2PI * np.exp(-0.5 * x * x),), holomorphic=True)
# d log ndtr = phi(x) / ndtr(x) = exp(-x^2/2 - log_ndtr(x)) / sqrt(2 pi): no
# 0/0 far in the left tail, where ndtr underflows but log_ndtr does not.
_elementwise(sc.log_ndtr, lambda out, x: (_INV_SQRT_2PI * np.exp(-0.5 * x * x - out),))
_elementwise(sc.ndtri, lambda out, x: ((1.0 / _INV_SQRT_2PI) * np.exp(0.5 * out * out),),
             singular=True)

# ============================================================================
# gamma family
# ============================================================================
_elementwise(sc.gamma, lambda out, x: (out * sc.psi(x),), holomorphic=True)
_elementwise(sc.gammaln, lambda out, x: (sc.psi(x),))
_elementwise(sc.psi, lambda out, x: (polygamma(1, x),), holomorphic=True)
_with_order(_zeta, lambda s, q, out: -s * _zeta(s + 1.0, q), holomorphic=False,
            name="scipy.special.zeta")
_elementwise(sc.betaln, lambda out, a, b: (sc.psi(a) - sc.psi(a + b), sc.psi(b) - sc.psi(a + b)))

# ============================================================================
# logistic, x log y
# ============================================================================
_elementwise(sc.expit, lambda out, x: (out * (1.0 - out),))
_elementwise(sc.logit, lambda out, x: (1.0 / (x * (1.0 - x)),), singular=True)
_elementwise(sc.xlogy, lambda out, x, y: (np.log(y), x / y), holomorphic=True, singular=True)
_elementwise(sc.xlog1py, lambda out, x, y: (np.log1p(y), x / (1.0 + y)), holomorphic=True,
             singular=True)

# ============================================================================
# Bessel functions (recurrences: each derivative is a combination of
# neighbouring orders, so higher derivatives follow)
# ============================================================================
_elementwise(sc.j0, lambda out, x: (-sc.j1(x),))
_elementwise(sc.j1, lambda out, x: (0.5 * (sc.j0(x) - sc.jv(2.0, x)),))
_elementwise(sc.y0, lambda out, x: (-sc.y1(x),), singular=True)
_elementwise(sc.y1, lambda out, x: (0.5 * (sc.y0(x) - sc.yv(2.0, x)),), singular=True)
_elementwise(sc.i0, lambda out, x: (sc.i1(x),))
_elementwise(sc.i1, lambda out, x: (0.5 * (sc.i0(x) + sc.iv(2.0, x)),))
# e^{-|x|} I_v(x): d/dx = e^{-|x|} (I_v'(x) - sign(x) I_v(x))
_elementwise(sc.i0e, lambda out, x: (sc.i1e(x) - np.sign(x) * out,))
_elementwise(sc.i1e, lambda out, x: (0.5 * (sc.i0e(x) + sc.ive(2.0, x)) - np.sign(x) * out,))
_with_order(sc.jv, lambda v, x, out: 0.5 * (sc.jv(v - 1.0, x) - sc.jv(v + 1.0, x)))
_with_order(sc.yv, lambda v, x, out: 0.5 * (sc.yv(v - 1.0, x) - sc.yv(v + 1.0, x)))
_with_order(sc.iv, lambda v, x, out: 0.5 * (sc.iv(v - 1.0, x) + sc.iv(v + 1.0, x)))
_with_order(sc.kv, lambda v, x, out: -0.5 * (sc.kv(v - 1.0, x) + sc.kv(v + 1.0, x)))
_with_order(sc.ive, lambda v, x, out: 0.5 * (sc.ive(v - 1.0, x) + sc.ive(v + 1.0, x))
            - np.sign(np.real(x)) * out, holomorphic=False)
_with_order(sc.kve, lambda v, x, out: -0.5 * (sc.kve(v - 1.0, x) + sc.kve(v + 1.0, x)) + out,
            holomorphic=False)
