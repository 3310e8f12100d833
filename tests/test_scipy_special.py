"""scipy.special ufuncs (dualad/rules/scipy_special.py): values, known first
derivatives, finite differences to order 2 in both modes, JAX where it has
the function, lazy registration and refusals that name the real function."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import dualad as da
from dualad.testing import check_grads

sc = pytest.importorskip("scipy.special")

X = np.array([0.3, 0.7, 1.3, 2.1])           # positive
U = np.array([0.1, 0.35, 0.6, 0.9])          # in (0, 1)
N = np.array([-2.5, -0.3, 0.4, 1.7])         # both signs
SQ = math.sqrt(math.pi)

# name: (function of one array, point, known derivative or None)
CASES = {
    "erf": (sc.erf, N, lambda x: 2 / SQ * np.exp(-x * x)),
    "erfc": (sc.erfc, N, lambda x: -2 / SQ * np.exp(-x * x)),
    "erfinv": (sc.erfinv, U * 1.8 - 0.9, lambda x: SQ / 2 * np.exp(sc.erfinv(x) ** 2)),
    "erfcinv": (sc.erfcinv, U * 1.8 + 0.05, lambda x: -SQ / 2 * np.exp(sc.erfcinv(x) ** 2)),
    "gammaln": (sc.gammaln, X, sc.digamma),
    "digamma": (sc.digamma, X, lambda x: sc.polygamma(1, x)),
    "gamma": (sc.gamma, X, lambda x: sc.gamma(x) * sc.digamma(x)),
    "expit": (sc.expit, N, lambda x: sc.expit(x) * (1 - sc.expit(x))),
    "logit": (sc.logit, U, lambda x: 1 / (x * (1 - x))),
    "xlogy": (lambda a: sc.xlogy(a, 2 * a + 0.1), X,
              lambda a: np.log(2 * a + 0.1) + 2 * a / (2 * a + 0.1)),
    "xlog1py": (lambda a: sc.xlog1py(3 * a, a), X, lambda a: 3 * np.log1p(a) + 3 * a / (1 + a)),
    "i0": (sc.i0, N, sc.i1),
    "i0e": (sc.i0e, N, lambda x: sc.i1e(x) - np.sign(x) * sc.i0e(x)),
    "i1": (sc.i1, N, lambda x: sc.i0(x) - sc.i1(x) / x),
    "i1e": (sc.i1e, N, None),
    "j0": (sc.j0, N, lambda x: -sc.j1(x)),
    "j1": (sc.j1, N, lambda x: sc.j0(x) - sc.j1(x) / x),
    "y0": (sc.y0, X, lambda x: -sc.y1(x)),
    "y1": (sc.y1, X, lambda x: sc.y0(x) - sc.y1(x) / x),
    "jv": (lambda x: sc.jv(1.5, x), X, lambda x: sc.jvp(1.5, x)),
    "yv": (lambda x: sc.yv(0.7, x), X, lambda x: sc.yvp(0.7, x)),
    "iv": (lambda x: sc.iv(0.5, x), X, lambda x: sc.ivp(0.5, x)),
    "kv": (lambda x: sc.kv(2.0, x), X, lambda x: sc.kvp(2.0, x)),
    "ive": (lambda x: sc.ive(1.0, x), N, None),
    "kve": (lambda x: sc.kve(1.0, x), X, None),
    "betaln": (lambda a: sc.betaln(a, 2 * a + 0.5), X,
               lambda a: sc.digamma(a) + 2 * sc.digamma(2 * a + 0.5) - 3 * sc.digamma(3 * a + .5)),
    "log_ndtr": (sc.log_ndtr, N * 3, lambda x: np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
                 / sc.ndtr(x)),
    "ndtr": (sc.ndtr, N, lambda x: np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    "ndtri": (sc.ndtri, U, lambda u: math.sqrt(2 * math.pi) * np.exp(sc.ndtri(u) ** 2 / 2)),
    "zeta(s, q)": (lambda q: sc.zeta(3.0, q), X, lambda q: -3.0 * sc.zeta(4.0, q)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_value_and_known_derivative(name: str) -> None:
    f, x, d = CASES[name]
    y, t = da.jvp(f, (x,), (np.ones_like(x),))
    np.testing.assert_allclose(y, f(x), rtol=1e-14)
    if d is not None:
        np.testing.assert_allclose(t, d(x), rtol=1e-9)
        np.testing.assert_allclose(da.grad(lambda v: np.sum(f(v)))(x), d(x), rtol=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_finite_differences_order_2(name: str) -> None:
    f, x, _ = CASES[name]
    check_grads(f, (x,), order=2, modes=("fwd", "rev"))


JAX_NAMES = {"erf": "erf", "erfc": "erfc", "erfinv": "erfinv", "gammaln": "gammaln",
             "digamma": "digamma", "gamma": "gamma", "expit": "expit", "logit": "logit",
             "i0": "i0", "i0e": "i0e", "i1": "i1", "i1e": "i1e", "ndtr": "ndtr",
             "ndtri": "ndtri", "log_ndtr": "log_ndtr"}


@pytest.mark.parametrize("name", list(JAX_NAMES))
def test_second_derivative_matches_jax(name: str) -> None:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.scipy.special as js
    f, x, _ = CASES[name]
    jf = getattr(js, JAX_NAMES[name])
    want = np.asarray(jax.vmap(jax.grad(jax.grad(jf)))(x))
    got = np.array([da.grad(da.grad(f))(v) for v in x])
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def test_traced_order_is_refused_naming_the_function() -> None:
    with pytest.raises(TypeError, match=r"scipy\.special\.jv\(v, x\) with respect to x only"):
        da.grad(lambda v: sc.jv(v, 1.0))(1.5)


def test_unsupported_ufunc_names_scipy() -> None:
    with pytest.raises(TypeError, match=r"scipy\.special\.zetac: it has no derivative rule"):
        da.grad(sc.zetac)(2.5)


def test_complex_refused_where_not_holomorphic() -> None:
    with pytest.raises(TypeError, match=r"scipy\.special\.gammaln"):
        da.grad(lambda z: np.abs(sc.gammaln(z)))(np.complex128(1 + 1j))


def test_holomorphic_erf_of_complex() -> None:
    z = np.complex128(0.3 + 0.4j)
    g = da.grad(lambda z: sc.erf(z), holomorphic=True)(z)
    assert complex(g) == pytest.approx(complex(2 / SQ * np.exp(-z * z)), rel=1e-12)


def test_scipy_not_imported_by_dualad() -> None:
    """SciPy stays optional: importing dualad (and tracing NumPy code) does
    not import scipy.special."""
    code = ("import sys, numpy as np, dualad as da\n"
            "da.grad(lambda x: np.sum(np.sin(x)))(np.ones(3))\n"
            "print('scipy.special' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
