"""Batched tangents and cotangents in the public API (``batched=True``), the
shape-ambiguity rule, and hvp's return structure."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da

F = lambda x, y: np.sin(x) * y.sum() + x ** 2
X, Y = np.array([0.3, -1.2, 2.0]), np.array([[1.0, 2.0], [0.5, -1.0]])


def test_batched_jvp_equals_single_jvps():
    rng = np.random.default_rng(0)
    tx, ty = rng.normal(size=(4, 3)), rng.normal(size=(4, 2, 2))
    out, t = da.jvp(F, (X, Y), (tx, ty), batched=True)
    assert t.shape == (4, 3)
    np.testing.assert_allclose(out, F(X, Y))
    for k in range(4):
        np.testing.assert_allclose(t[k], da.jvp(F, (X, Y), (tx[k], ty[k]))[1], rtol=1e-14)


def test_batched_jvp_square_shape_is_not_ambiguous():
    a = np.arange(9.0).reshape(3, 3) / 10
    f = lambda m: np.tanh(m) @ m
    # a (3, 3) tangent of a (3, 3) primal is one direction ...
    np.testing.assert_allclose(da.jvp(f, (a,), (np.eye(3),))[1],
                               np.einsum("ijkl,kl->ij", da.jacfwd(f)(a), np.eye(3)), rtol=1e-12)
    # ... and (3, 3, 3) with batched=True is three
    v = np.stack([np.eye(3)] * 3) * np.arange(1.0, 4.0)[:, None, None]
    t = da.jvp(f, (a,), (v,), batched=True)[1]
    assert t.shape == (3, 3, 3)
    np.testing.assert_allclose(t[2], 3 * da.jvp(f, (a,), (np.eye(3),))[1], rtol=1e-12)


def test_jvp_shape_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3,\).*batched=True"):
        da.jvp(np.sin, (X,), (np.ones((2, 3)),))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        da.jvp(np.sin, (X,), (np.ones(3),), batched=True)
    with pytest.raises(ValueError, match="one batch size"):
        da.jvp(F, (X, Y), (np.ones((2, 3)), np.ones((3, 2, 2))), batched=True)


def test_batched_vjp_equals_single_pullbacks():
    out, pull = da.vjp(F, X, Y)
    cts = np.random.default_rng(1).normal(size=(5, 3))
    gx, gy = pull(cts, batched=True)
    assert gx.shape == (5, 3) and gy.shape == (5, 2, 2)
    for k in range(5):
        sx, sy = pull(cts[k])
        np.testing.assert_allclose(gx[k], sx, rtol=1e-14)
        np.testing.assert_allclose(gy[k], sy, rtol=1e-14)
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(3,\).*batched=True"):
        pull(cts)
    with pytest.raises(ValueError, match="must be"):
        pull(cts[0], batched=True)


def test_batched_jvp_vjp_agree_with_jacobian():
    j = da.jacfwd(F)(X, Y)
    np.testing.assert_allclose(da.jvp(lambda x: F(x, Y), (X,), (np.eye(3),), batched=True)[1],
                               j.T, rtol=1e-14)
    np.testing.assert_allclose(da.vjp(lambda x: F(x, Y), X)[1](np.eye(3), batched=True)[0],
                               j, rtol=1e-14)


def test_hvp_return_structure():
    f = lambda x: np.sum(np.sin(x) * x ** 2)
    v = np.array([1.0, 0.5, -1.0])
    g, hv = da.hvp(f, (X,), (v,))
    assert isinstance(g, np.ndarray) and isinstance(hv, np.ndarray)
    assert g.shape == hv.shape == X.shape
    np.testing.assert_allclose(hv, da.hessian(f)(X) @ v, rtol=1e-13)
    g, hv = da.hvp(f, (X,), (np.eye(3),))          # a batch of directions
    np.testing.assert_allclose(hv, da.hessian(f)(X), rtol=1e-13)
    h2 = lambda x, y: np.sum(x ** 2) * np.sum(y)
    g, hv = da.hvp(h2, (X, Y), (v, np.ones((2, 2))))
    assert isinstance(g, tuple) and isinstance(hv, tuple) and len(hv) == 2
    assert hv[0].shape == X.shape and hv[1].shape == Y.shape


def test_hvp_works_with_scipy_trust_ncg():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    f = lambda x: np.sum((x - 1.0) ** 4 + x ** 2)
    res = scipy_optimize.minimize(f, np.zeros(3), method="trust-ncg", jac=da.grad(f),
                                  hessp=lambda x, p: da.hvp(f, (x,), (p,))[1])
    assert np.linalg.norm(da.grad(f)(res.x)) < 1e-6
