"""custom_jvp, custom_vjp and stop_gradient in every interpreter."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.core.registry import registry
from dualad.custom import custom_jvp, custom_vjp, stop_gradient
from dualad.forward.hessians import hessian_fwd_fwd, hessian_hyperdual
from dualad.forward.hyperdual import HyperDual
from dualad.forward.taylor import derivative

X = np.array([0.3, -0.5, 1.2])
Y = np.array([1.5, 0.7, -0.4])


# ============================================================================
# custom_jvp
# ============================================================================
@custom_jvp
def sin_times(x, y):
    return np.sin(x) * y


@sin_times.defjvp
def _sin_times_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    return sin_times(x, y), np.cos(x) * y * tx + np.sin(x) * ty


def plain(x, y):
    return np.sin(x) * y


@custom_jvp
def fake_sin(x):
    """sin with a deliberately different derivative: 2 t (shows the rule is used)."""
    return np.sin(x)


@fake_sin.defjvp
def _fake_sin_jvp(primals, tangents):
    return fake_sin(primals[0]), 2.0 * primals[0] * tangents[0]


@custom_jvp
def log1pexp(x):
    return np.log1p(np.exp(x))


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t / (1.0 + np.exp(-x))       # stable for large x


def test_custom_jvp_is_a_registered_primitive():
    da.grad(lambda x: sin_times(x, Y).sum())(X)
    names = [n for n in registry if n.startswith("custom_jvp:") and "sin_times" in n]
    assert names and registry[names[0]].jvp is not None and registry[names[0]].vjp is not None


def test_custom_jvp_forward_and_reverse_first_order():
    jf = da.jacfwd(sin_times, (0, 1))(X, Y)
    jr = da.jacrev(sin_times, (0, 1))(X, Y)
    want = da.jacfwd(plain, (0, 1))(X, Y)
    for a, b, w in zip(jf, jr, want):
        np.testing.assert_allclose(a, w, rtol=1e-14)
        np.testing.assert_allclose(b, w, rtol=1e-14)
    _, t = da.jvp(sin_times, (X, Y), (np.ones(3), np.zeros(3)))
    np.testing.assert_allclose(t, np.cos(X) * Y, rtol=1e-14)


def test_the_rule_not_the_primal_code_is_differentiated():
    # fake_sin' = 2x in both modes (the true derivative would be cos x).
    assert float(da.jvp(fake_sin, (0.5,), (1.0,))[1]) == 1.0
    assert float(da.grad(fake_sin)(0.5)) == 1.0
    np.testing.assert_allclose(da.jacrev(fake_sin)(X), np.diag(2.0 * X))
    # Second order through the rule: d/dx (2x) = 2.
    assert float(da.grad(da.grad(fake_sin))(0.5)) == 2.0
    assert float(da.jvp(da.grad(fake_sin), (0.5,), (1.0,))[1]) == 2.0
    assert float(derivative(fake_sin, 0.5, order=2)) == 2.0
    assert float(np.sin(HyperDual(0.5, 1.0, 1.0, 0.0)).e12) == pytest.approx(-np.sin(0.5))
    assert float(fake_sin(HyperDual(0.5, 1.0, 1.0, 0.0)).e12) == 2.0


def test_stable_rule_at_large_inputs():
    # Differentiating the primal code would give exp(x) / (1 + exp(x)) = inf / inf.
    x = np.array([1000.0, -1000.0, 0.0])
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(da.grad(lambda v: log1pexp(v).sum())(x), [1.0, 0.0, 0.5])
        np.testing.assert_allclose(da.jacfwd(log1pexp)(x), np.diag([1.0, 0.0, 0.5]))


def test_custom_jvp_higher_order_matches_plain():
    f = lambda x: (sin_times(x, Y) ** 2).sum()
    g = lambda x: (plain(x, Y) ** 2).sum()
    np.testing.assert_allclose(da.grad(lambda x: da.grad(f)(x).sum())(X),
                               da.grad(lambda x: da.grad(g)(x).sum())(X), rtol=1e-13)
    href = da.jacrev(da.grad(g))(X)
    np.testing.assert_allclose(hessian_hyperdual(f, X), href, rtol=1e-13)
    np.testing.assert_allclose(hessian_fwd_fwd(f, X), href, rtol=1e-13)
    np.testing.assert_allclose(da.hessian(f)(X), href, rtol=1e-13)
    h = lambda s: np.exp(sin_times(s * X, Y)).sum()
    ref = lambda s: np.exp(plain(s * X, Y)).sum()
    for k in range(1, 5):
        np.testing.assert_allclose(derivative(h, 0.7, order=k), derivative(ref, 0.7, order=k),
                                   rtol=1e-12)


def test_custom_jvp_pytrees_kwargs_and_multiple_outputs():
    @custom_jvp
    def f(d, scale=2.0):
        return d["a"] * d["b"] * scale, np.exp(d["a"])

    @f.defjvp
    def f_jvp(primals, tangents):
        (d, scale), (t, _) = primals, tangents
        out = f(d, scale)
        return out, ((t["a"] * d["b"] + d["a"] * t["b"]) * scale, np.exp(d["a"]) * t["a"])

    def loss(a, b):
        p, q = f({"a": a, "b": b}, scale=3.0)
        return (p + q).sum()

    ga, gb = da.grad(loss, (0, 1))(X, Y)
    np.testing.assert_allclose(ga, 3.0 * Y + np.exp(X), rtol=1e-14)
    np.testing.assert_allclose(gb, 3.0 * X, rtol=1e-14)
    _, t = da.jvp(loss, (X, Y), (np.ones(3), np.ones(3)))
    assert float(t) == pytest.approx(float(np.sum(3.0 * Y + np.exp(X) + 3.0 * X)), rel=1e-14)


def test_missing_rule_is_an_error_only_when_traced():
    @custom_jvp
    def f(x):
        return x * 2.0

    assert float(f(1.0)) == 2.0
    with pytest.raises(TypeError, match="defjvp"):
        da.grad(f)(1.0)


# ============================================================================
# custom_vjp
# ============================================================================
CALLS = {"fwd": 0, "bwd": 0}


@custom_vjp
def vsin_times(x, y):
    return np.sin(x) * y


def _vst_fwd(x, y):
    CALLS["fwd"] += 1
    return vsin_times(x, y), (np.cos(x), np.sin(x), y)


def _vst_bwd(res, ct):
    CALLS["bwd"] += 1
    c, s, y = res
    return c * y * ct, s * ct


vsin_times.defvjp(_vst_fwd, _vst_bwd)


@custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda res, ct: (np.clip(ct, -1.0, 1.0),))


def test_custom_vjp_uses_bwd_in_reverse_mode():
    g = da.grad(lambda x: (5.0 * clip_gradient(x)).sum())(X)
    np.testing.assert_array_equal(g, np.ones(3))           # clipped from 5
    # Forward mode differentiates the primal function (the identity) instead.
    _, t = da.jvp(lambda x: (5.0 * clip_gradient(x)).sum(), (X,), (np.ones(3),))
    assert float(t) == 15.0


def test_custom_vjp_runs_fwd_once_per_grad():
    CALLS.update(fwd=0, bwd=0)
    g = da.grad(lambda x: vsin_times(x, Y).sum())(X)
    np.testing.assert_allclose(g, np.cos(X) * Y, rtol=1e-14)
    assert CALLS == {"fwd": 1, "bwd": 1}


def test_custom_vjp_jacobians_and_nesting():
    want = da.jacfwd(plain, (0, 1))(X, Y)
    for got in (da.jacrev(vsin_times, (0, 1))(X, Y), da.jacfwd(vsin_times, (0, 1))(X, Y)):
        for a, w in zip(got, want):
            np.testing.assert_allclose(a, w, rtol=1e-14)
    f = lambda x: (vsin_times(x, Y) ** 2).sum()
    g = lambda x: (plain(x, Y) ** 2).sum()
    href = da.jacrev(da.grad(g))(X)
    np.testing.assert_allclose(da.jacrev(da.grad(f))(X), href, rtol=1e-13)   # rev over rev
    np.testing.assert_allclose(da.jacfwd(da.grad(f))(X), href, rtol=1e-13)   # fwd over rev
    np.testing.assert_allclose(da.jacrev(da.jacfwd(f))(X), href, rtol=1e-13)  # rev over fwd
    np.testing.assert_allclose(hessian_hyperdual(f, X), href, rtol=1e-13)
    assert float(derivative(lambda s: vsin_times(s, 2.0), 0.4, order=3)) == pytest.approx(
        -2.0 * np.cos(0.4), rel=1e-13)


def test_custom_vjp_none_cotangent_and_bad_bwd():
    @custom_vjp
    def scaled(x, k):
        return x * k

    scaled.defvjp(lambda x, k: (x * k, k), lambda k, ct: (ct * k, None))
    gx, gk = da.grad(lambda x, k: scaled(x, k).sum(), (0, 1))(X, Y)
    np.testing.assert_allclose(gx, Y)
    np.testing.assert_array_equal(gk, np.zeros(3))        # bwd said None

    @custom_vjp
    def bad(x):
        return x * 1.0

    bad.defvjp(lambda x: (x, None), lambda res, ct: ct)  # not a tuple
    with pytest.raises(TypeError, match="one cotangent per argument"):
        da.grad(lambda x: bad(x).sum())(X)


# ============================================================================
# stop_gradient
# ============================================================================
def test_stop_gradient_zeroes_derivatives_in_every_mode():
    f = lambda x: np.sum(x * stop_gradient(x) ** 2)
    # d/dx sum(x * c**2) with c = x held constant: c**2
    np.testing.assert_allclose(da.grad(f)(X), X ** 2)
    np.testing.assert_allclose(da.jacfwd(f)(X), X ** 2)
    np.testing.assert_allclose(da.hessian(f)(X), np.zeros((3, 3)))
    np.testing.assert_allclose(hessian_hyperdual(f, X), np.zeros((3, 3)))
    np.testing.assert_allclose(hessian_fwd_fwd(f, X), np.zeros((3, 3)))
    assert float(derivative(lambda s: s * stop_gradient(s * s), 0.5, order=1)) == 0.25
    assert float(derivative(lambda s: s * stop_gradient(s * s), 0.5, order=2)) == 0.0


def test_stop_gradient_on_pytrees_and_plain_values():
    def f(x):
        tree = stop_gradient({"a": x, "b": (x * 2.0, 3.0)})
        assert isinstance(tree["a"], np.ndarray)      # a plain value: np.asarray is fine
        return np.sum(x * tree["a"] + tree["b"][0] + tree["b"][1])

    np.testing.assert_allclose(da.grad(f)(X), X)
    assert stop_gradient(2.0) == 2.0
    np.testing.assert_array_equal(stop_gradient(X), X)
