"""Differentiate UNMODIFIED third-party functions and compare with their own
analytic derivatives (SciPy's ``rosen`` family, ``logsumexp``, ``softmax``),
also through SciPy's array-API path (``SCIPY_ARRAY_API=1``, a subprocess:
SciPy reads it at import)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import dualad as da

scipy_optimize = pytest.importorskip("scipy.optimize")
scipy_special = pytest.importorskip("scipy.special")
rosen, rosen_der = scipy_optimize.rosen, scipy_optimize.rosen_der
rosen_hess, rosen_hess_prod = scipy_optimize.rosen_hess, scipy_optimize.rosen_hess_prod
logsumexp, softmax = scipy_special.logsumexp, scipy_special.softmax
RNG = np.random.default_rng(2026)


def _sparse_hessian(f, x):
    # sparse=True may become csr=True (with a DeprecationWarning): either works here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return da.hessian(f, sparse=True)(x)


@pytest.mark.parametrize("n", [2, 100, 10000])
def test_rosen_gradient_and_hvp(n: int) -> None:
    x = RNG.uniform(-1.5, 1.5, n)
    p = RNG.standard_normal(n)
    np.testing.assert_allclose(da.grad(rosen)(x), rosen_der(x), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(da.hvp(rosen, (x,), (p,))[1], rosen_hess_prod(x, p),
                               rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n", [2, 100])
@pytest.mark.parametrize("mode", ["auto", "fwd-rev", "rev-rev", "hyperdual", "sparse"])
def test_rosen_hessian(n: int, mode: str) -> None:
    x = RNG.uniform(-1.5, 1.5, n)
    np.testing.assert_allclose(da.hessian(rosen, mode=mode)(x), rosen_hess(x),
                               rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n", [2, 100, pytest.param(10000, marks=pytest.mark.slow)])
def test_rosen_sparse_hessian(n: int) -> None:
    x = RNG.uniform(-1.5, 1.5, n)
    h = _sparse_hessian(rosen, x)
    want = rosen_hess(x) if n <= 100 else None
    if want is not None:
        np.testing.assert_allclose(h.toarray(), want, rtol=1e-12, atol=1e-9)
    else:       # rosen_hess is dense (n x n): compare its tridiagonal band via products
        for _ in range(3):
            p = RNG.standard_normal(n)
            np.testing.assert_allclose(h @ p, rosen_hess_prod(x, p), rtol=1e-12, atol=1e-8)
        assert h.nnz == 3 * n - 2


def _softmax_jac(s):
    return np.diag(s) - np.outer(s, s)


@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_logsumexp_and_softmax(shape) -> None:
    a = RNG.standard_normal(shape) * 3.0
    s = softmax(a.ravel())
    np.testing.assert_allclose(da.grad(lambda v: logsumexp(v))(a).ravel(), s, rtol=1e-12)
    np.testing.assert_allclose(da.hessian(lambda v: logsumexp(v))(a).reshape(s.size, -1),
                               _softmax_jac(s), rtol=1e-10, atol=1e-14)
    v = a.ravel()
    np.testing.assert_allclose(da.jacrev(softmax)(v), _softmax_jac(s), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(da.jacfwd(softmax)(v), _softmax_jac(s), rtol=1e-10, atol=1e-14)


def test_logsumexp_axis_and_weights() -> None:
    a = RNG.standard_normal((3, 4))
    b = RNG.uniform(0.5, 2.0, (3, 4))
    w = RNG.standard_normal(3)

    def f(v):
        return logsumexp(v, axis=1, b=b) @ w

    e = b * np.exp(a)
    want = w[:, None] * e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(da.grad(f)(a), want, rtol=1e-12)


_ARRAY_API_SCRIPT = textwrap.dedent("""
    import numpy as np, dualad as da
    from scipy.optimize import rosen, rosen_der, rosen_hess
    from scipy.special import logsumexp, softmax
    x = np.linspace(0.5, 1.5, 7)
    np.testing.assert_allclose(da.grad(rosen)(x), rosen_der(x), rtol=1e-12)
    np.testing.assert_allclose(da.hessian(rosen)(x), rosen_hess(x), rtol=1e-12)
    a = np.array([0.3, -1.2, 2.0, 0.5])
    s = np.exp(a) / np.exp(a).sum()
    J = np.diag(s) - np.outer(s, s)
    np.testing.assert_allclose(da.grad(logsumexp)(a), s, rtol=1e-12)
    np.testing.assert_allclose(da.hessian(logsumexp, mode="fwd-rev")(a), J, atol=1e-13)
    np.testing.assert_allclose(da.hessian(logsumexp, mode="rev-rev")(a), J, atol=1e-13)
    np.testing.assert_allclose(da.jacfwd(softmax)(a), J, atol=1e-13)
    print("ok")
""")


def test_scipy_array_api_path() -> None:
    """With SCIPY_ARRAY_API=1 SciPy asks the tracer for __array_namespace__."""
    root = Path(da.__file__).resolve().parents[1]
    env = dict(os.environ, SCIPY_ARRAY_API="1",
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", _ARRAY_API_SCRIPT], env=env, cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
