"""dualad.optimize against SciPy with hand-written derivatives."""
from __future__ import annotations

import numpy as np
import pytest

so = pytest.importorskip("scipy.optimize")
import scipy.sparse as sp  # noqa: E402

import dualad as da  # noqa: E402
from dualad.optimize import _unwrap, least_squares, minimize  # noqa: E402


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


X0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2, -0.4, 0.3, 1.1])
HAND = dict(jac=so.rosen_der, hess=so.rosen_hess)


@pytest.mark.parametrize("method,hess,ref_kw", [
    ("BFGS", "auto", dict(jac=so.rosen_der)),
    ("L-BFGS-B", "auto", dict(jac=so.rosen_der)),
    ("CG", "auto", dict(jac=so.rosen_der)),
    ("Newton-CG", "dense", HAND),
    ("Newton-CG", "hessp", dict(jac=so.rosen_der, hessp=so.rosen_hess_prod)),
    ("trust-ncg", "dense", HAND),
    ("trust-ncg", "hessp", dict(jac=so.rosen_der, hessp=so.rosen_hess_prod)),
    ("trust-krylov", "dense", HAND),
    ("trust-exact", "auto", HAND),
    ("dogleg", "auto", HAND),
])
def test_minimize_equals_hand_written(method, hess, ref_kw):
    res = minimize(rosen, X0, method=method, hess=hess)
    ref = so.minimize(so.rosen, X0, method=method, **ref_kw)
    assert res.success == ref.success
    if method == "CG":      # rounding-level gradient differences change CG's path slightly
        assert abs(res.nit - ref.nit) <= 0.1 * ref.nit
        np.testing.assert_allclose(res.x, ref.x, atol=1e-4)
        return
    assert res.nit == ref.nit
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.fun, ref.fun, rtol=1e-6, atol=1e-14)


def test_value_reused_one_pass_per_point():
    res = minimize(rosen, X0, method="BFGS")
    assert res.n_grad_passes <= max(res.nfev, res.njev)


def test_sparse_hessian_chosen_for_large_rosenbrock():
    x0 = np.full(600, 0.5)
    res = minimize(rosen, x0, method="trust-ncg")
    assert res.hess_kind == "sparse" and res.success
    np.testing.assert_allclose(res.x, 1.0, atol=1e-6)
    ref = so.minimize(so.rosen, x0, method="trust-ncg", jac=so.rosen_der, hess=so.rosen_hess)
    assert res.nit == ref.nit


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "trust-krylov"])
def test_operator_and_sparse_forms_agree(method):
    b = minimize(rosen, X0, method=method, hess="sparse")
    c = so.minimize(so.rosen, X0, method=method, jac=so.rosen_der, hess=so.rosen_hess)
    np.testing.assert_allclose(b.x, c.x, atol=1e-8)
    if method != "Newton-CG":
        with pytest.raises(ValueError, match="LinearOperator"):
            minimize(rosen, X0, method=method, hess="operator")
        return
    a = minimize(rosen, X0, method=method, hess="operator")
    np.testing.assert_allclose(a.x, c.x, atol=1e-8)


def test_trust_constr_and_args_and_shape():
    f = lambda x, c: np.sum((x - c) ** 2) + np.sum(x[0] * x[1])
    c = np.array([[1.0, 2.0], [3.0, 4.0]])
    res = minimize(f, np.zeros((2, 2)), args=(c,), method="trust-constr")
    assert res.x.shape == (2, 2)
    np.testing.assert_allclose(da.grad(f)(res.x, c), 0, atol=1e-6)


def test_bad_hess_kind():
    with pytest.raises(ValueError, match="valid"):
        minimize(rosen, X0, method="trust-ncg", hess="bogus")
    with pytest.raises(ValueError, match="dense"):
        minimize(rosen, X0, method="trust-exact", hess="hessp")


def test_hvp_shapes_both_accepted():
    g, hv = da.hvp(rosen, (X0,), (np.ones_like(X0),))
    np.testing.assert_allclose(np.asarray(_unwrap(hv)), so.rosen_hess_prod(X0, np.ones_like(X0)))
    assert _unwrap((np.ones(2),)).shape == (2,)


def _resid(p, t, y):
    return p[0] * np.exp(-p[1] * t) + p[2] - y


def _resid_jac(p, t, y):
    e = np.exp(-p[1] * t)
    return np.stack([e, -p[0] * t * e, np.ones_like(t)], axis=1)


@pytest.mark.parametrize("method", ["trf", "lm", "dogbox"])
def test_least_squares_dense(method):
    t = np.linspace(0, 3, 30)
    y = 2.5 * np.exp(-1.3 * t) + 0.5 + 0.01 * np.sin(7 * t)
    res = least_squares(_resid, np.array([1.0, 1.0, 0.0]), args=(t, y), method=method)
    ref = so.least_squares(_resid, np.array([1.0, 1.0, 0.0]), jac=_resid_jac, args=(t, y),
                           method=method)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-10)
    assert res.nfev == ref.nfev


def _broyden(x):
    """Broyden's tridiagonal system: a banded Jacobian."""
    xp = np.concatenate([x[1:], [0.0]])
    xm = np.concatenate([[0.0], x[:-1]])
    return (3.0 - 2.0 * x) * x - xm - 2.0 * xp + 1.0


def _broyden_jac(x):
    n = x.size
    return sp.diags([np.full(n - 1, -1.0), 3.0 - 4.0 * x, np.full(n - 1, -2.0)],
                    [-1, 0, 1], format="csr")


def test_least_squares_sparse_jacobian():
    """400 unknowns, tridiagonal Jacobian: detected, comes back CSR, same run as SciPy
    with the hand-written sparse Jacobian."""
    x0 = -np.ones(400)
    res = least_squares(_broyden, x0, max_nfev=100)
    ref = so.least_squares(_broyden, x0, jac=_broyden_jac, max_nfev=100)
    assert sp.issparse(res.jac) and res.success
    assert np.abs(_broyden(res.x)).max() < 1e-8
    np.testing.assert_allclose(res.x, ref.x, atol=1e-10)
    assert res.nfev == ref.nfev
