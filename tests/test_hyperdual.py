"""HyperDual numbers: second derivatives against nested duals and Taylor mode,
and the batched-direction layout against nested duals' lead axes."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.forward.api import jvp_flat
from dualad.forward.hyperdual import HyperDual, hyperdual_level
from dualad.forward.taylor import derivative


def d1(f):
    return lambda x: da.jvp(f, (x,), (1.0,))[1]


def rel_err(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


# ============================================================================
# scalar second derivatives: HyperDual vs nested Dual vs Taylor
# ============================================================================
COMPOSITIONS = [
    ("exp_sin", lambda x: np.exp(np.sin(x))),
    ("log", lambda x: np.log(1.0 + x * x)),
    ("sin_over", lambda x: np.sin(x) / (1.5 + x)),
    ("tanh", lambda x: np.tanh(2.0 * x) * x),
    ("sqrt", lambda x: np.sqrt(1.0 + np.exp(x))),
    ("power", lambda x: (1.0 + x) ** 2.5 + x ** 3),
    ("arctan", lambda x: np.arctan(x * x)),
    ("arcsin", lambda x: np.arcsin(x / 2.0)),
    ("logaddexp", lambda x: np.logaddexp(x, np.sin(x))),
    ("hypot", lambda x: np.hypot(x, 1.0 + x * x)),
    ("division", lambda x: (x * x + 1.0) / (x - 3.0)),
    ("traced_pow", lambda x: (1.0 + x) ** np.cos(x)),
    ("cosh_cbrt", lambda x: np.cosh(x) * np.cbrt(2.0 + x)),
]


@pytest.mark.parametrize("name, f", COMPOSITIONS, ids=[c[0] for c in COMPOSITIONS])
@pytest.mark.parametrize("x", [0.4, -0.9])
def test_second_derivative_agrees(name, f, x):
    y = f(HyperDual(x, 1.0, 1.0, 0.0))
    second_nested = d1(d1(f))(x)
    assert rel_err(y.e12, second_nested) < 1e-12
    assert rel_err(y.e12, derivative(f, x, order=2)) < 1e-12
    assert rel_err(y.e1, d1(f)(x)) < 1e-13 and rel_err(y.e2, d1(f)(x)) < 1e-13
    assert rel_err(y.primal, f(x)) < 1e-15


def test_e12_input_adds_first_derivative():
    # e12 seeds f'(x) e12 on top of f''(x) e1 e2.
    y = np.sin(HyperDual(0.3, 2.0, 3.0, 0.5))
    want = -np.sin(0.3) * 2.0 * 3.0 + np.cos(0.3) * 0.5
    assert abs(float(y.e12) - want) < 1e-15


# ============================================================================
# batched directions: the (n1, n2) layout is the nested duals' layout
# ============================================================================
C = np.array([[1.0, 0.5, -0.2], [0.5, 2.0, 0.3], [-0.2, 0.3, 1.5]])


def f3(v):
    """A 3-variable function built from elementwise ops, sum, reshape, transpose."""
    x = (v * np.array([1.0, 0.0, 0.0])).sum()
    y = (v * np.array([0.0, 1.0, 0.0])).sum()
    z = (v * np.array([0.0, 0.0, 1.0])).sum()
    q = (np.broadcast_to(v, (3, 3)) * np.transpose(np.broadcast_to(v, (3, 3))) * C).sum()
    return np.exp(x * y) * np.sin(z) + x * x * z + np.log(2.0 + q)


def test_batched_layout_matches_nested_duals():
    rng = np.random.default_rng(0)
    x0 = np.array([0.3, -0.7, 1.1])
    V, W = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    h = f3(HyperDual(x0, V, W, np.zeros((2, 4, 3))))
    H = da.jacfwd(da.jacfwd(f3))(x0)
    assert h.e12.shape == (2, 4)
    np.testing.assert_allclose(h.e12, V @ H @ W.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h.e1, V @ da.jacfwd(f3)(x0), rtol=1e-13)
    np.testing.assert_allclose(h.e2, W @ da.jacfwd(f3)(x0), rtol=1e-13)
    # Nested batched duals: the lower (first-opened) level's axes come first,
    # exactly like e1's axis in e12.
    inner = lambda x: jvp_flat(f3, (x,), (W,), lead_shape=(4,))[1]
    nested = jvp_flat(inner, (x0,), (V,), lead_shape=(2,))[1]
    assert nested.shape == (2, 4)
    np.testing.assert_allclose(h.e12, nested, rtol=1e-13, atol=1e-14)


def test_full_hessian_in_one_pass():
    x0 = np.array([0.3, -0.7, 1.1])
    eye = np.eye(3)
    h = f3(HyperDual(x0, eye, eye, np.zeros((3, 3, 3))))
    H = da.jacfwd(da.jacfwd(f3))(x0)
    np.testing.assert_allclose(h.e12, H, rtol=1e-12, atol=1e-13)


def test_array_primal_with_where_and_reshape():
    x0 = np.array([[0.5, -1.0], [2.0, 0.1]])
    eye = np.eye(4).reshape(4, 2, 2)

    def f(m):
        r = np.where(x0 > 0, np.exp(m), m * m * m)
        return (r.reshape(4) * np.arange(1.0, 5.0)).sum()

    h = f(HyperDual(x0, eye, eye, np.zeros((4, 4, 2, 2))))
    diag = np.where(x0 > 0, np.exp(x0), 6.0 * x0).ravel() * np.arange(1.0, 5.0)
    np.testing.assert_allclose(h.e12, np.diag(diag), rtol=1e-14)


# ============================================================================
# zeros, validation, nesting
# ============================================================================
def test_missing_parts_are_zeros():
    h = HyperDual(np.array([1.0, 2.0]), np.eye(2), np.eye(2), np.zeros((2, 2, 2)))
    lin = 3.0 * h + 1.0                     # linear: no second-order part arises
    assert isinstance(lin, HyperDual)
    np.testing.assert_array_equal(lin.e12, np.zeros((2, 2, 2)))
    np.testing.assert_array_equal(lin.e1, 3.0 * np.eye(2))
    # Independent of the hyper-dual: a plain value comes back.
    assert not isinstance(np.sin(np.array([1.0, 2.0])) + 0.0 * 1.0, HyperDual)
    only_e1 = np.exp(HyperDual(0.0, 1.0, 0.0, 0.0))
    assert float(only_e1.e1) == 1.0 and float(only_e1.e12) == 0.0


def test_shape_validation():
    with pytest.raises(ValueError, match="e1 shape"):
        HyperDual(np.zeros(3), np.zeros(4), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="e12 shape"):
        HyperDual(np.zeros(3), np.zeros((2, 3)), np.zeros((4, 3)), np.zeros((4, 2, 3)))


def test_hyperdual_inside_grad():
    # d/dy of f''(x; y) where f = sin(x y): the hyper-dual level sits above the tape.
    def second(y):
        with hyperdual_level() as level:
            return np.sin(HyperDual(0.7, 1.0, 1.0, 0.0, level=level) * y).e12

    got = da.grad(second)(1.3)
    # f'' = -y^2 sin(x y); d/dy = -2 y sin(x y) - x y^2 cos(x y)
    want = -2 * 1.3 * np.sin(0.7 * 1.3) - 0.7 * 1.3 ** 2 * np.cos(0.7 * 1.3)
    assert abs(float(got) - want) < 1e-13
