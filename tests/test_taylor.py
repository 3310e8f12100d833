"""Taylor mode: ``derivative`` and the ``Taylor`` tracer against closed forms
and nested ``jvp``."""
from __future__ import annotations

import math

import numpy as np
import pytest

import dualad as da
from dualad.custom import custom_jvp
from dualad.forward.taylor import Taylor, derivative


def nested_jvp(f, k):
    """The k-th derivative of a scalar-input f by k nested jvps (reference)."""
    for _ in range(k):
        f = (lambda g: (lambda x: da.jvp(g, (x,), (1.0,))[1]))(f)
    return f


def rel_err(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


# ============================================================================
# closed forms, orders 0..8
# ============================================================================
CLOSED = [
    ("exp(2x)", lambda x: np.exp(2.0 * x), lambda x, k: 2.0 ** k * math.exp(2 * x)),
    ("sin", np.sin, lambda x, k: math.sin(x + k * math.pi / 2)),
    ("cos", np.cos, lambda x, k: math.cos(x + k * math.pi / 2)),
    ("1/(1-x)", lambda x: 1.0 / (1.0 - x), lambda x, k: math.factorial(k) / (1 - x) ** (k + 1)),
    ("log(1+x)", lambda x: np.log(1.0 + x),
     lambda x, k: math.log(1 + x) if k == 0 else
     (-1) ** (k - 1) * math.factorial(k - 1) / (1 + x) ** k),
    ("log1p", np.log1p,
     lambda x, k: math.log1p(x) if k == 0 else
     (-1) ** (k - 1) * math.factorial(k - 1) / (1 + x) ** k),
    ("sinh", np.sinh, lambda x, k: math.sinh(x) if k % 2 == 0 else math.cosh(x)),
    ("x**2.5", lambda x: x ** 2.5,
     lambda x, k: math.prod(2.5 - i for i in range(k)) * x ** (2.5 - k)),
    ("sqrt", np.sqrt, lambda x, k: math.prod(0.5 - i for i in range(k)) * x ** (0.5 - k)),
    ("exp2", np.exp2, lambda x, k: math.log(2) ** k * 2 ** x),
    ("1/x", np.reciprocal, lambda x, k: (-1) ** k * math.factorial(k) / x ** (k + 1)),
]


@pytest.mark.parametrize("name, f, dk", CLOSED, ids=[c[0] for c in CLOSED])
@pytest.mark.parametrize("x", [0.3, 0.7])
def test_closed_forms_to_order_8(name, f, dk, x):
    for k in range(9):
        got = derivative(f, x, order=k)
        assert rel_err(got, dk(x, k)) < 1e-12, (name, k, float(got), dk(x, k))


def test_w7_exp_sin_sixth_derivative():
    f = lambda x: np.exp(np.sin(x))
    got = float(derivative(f, 0.5, order=6))
    want = float(nested_jvp(f, 6)(0.5))
    assert abs(got - want) <= 1e-12 * abs(want)
    assert abs(got - 43.17143217743608) <= 1e-12 * 43.2
    # The Python-float fast path returns a plain 0-d array.
    res = derivative(f, 0.5, order=6)
    assert isinstance(res, np.ndarray) and res.shape == ()


# ============================================================================
# against nested jvp: recurrences, the generic rule, structural primitives
# ============================================================================
COMPOSITIONS = [
    ("tan", np.tan), ("tanh", np.tanh), ("cosh", np.cosh),
    ("arctan", np.arctan), ("arcsin", np.arcsin), ("arccos", np.arccos),
    ("arcsinh", np.arcsinh), ("arctanh", np.arctanh), ("cbrt", np.cbrt),
    ("expm1", np.expm1), ("log2", np.log2), ("log10", np.log10),
    ("logaddexp", lambda x: np.logaddexp(x, x * x)),
    ("hypot", lambda x: np.hypot(x, 2.0 * x + 1.0)),
    ("arctan2", lambda x: np.arctan2(x, 1.0 + x * x)),
    ("div", lambda x: np.sin(x) / (2.0 + np.cos(3.0 * x))),
    ("x**x", lambda x: x ** x), ("2**x", lambda x: 2.0 ** x),
    ("x**3", lambda x: x ** 3), ("square", lambda x: np.square(np.sin(x))),
    ("maximum", lambda x: np.maximum(np.exp(x), 2.0 - x)),
    ("abs", lambda x: np.abs(np.sin(x) - 0.9)),
    ("mixed", lambda x: np.sqrt(1.0 + x * x) * np.tanh(np.log(2.0 + x)) - x ** -1.5),
]


@pytest.mark.parametrize("name, f", COMPOSITIONS, ids=[c[0] for c in COMPOSITIONS])
def test_matches_nested_jvp(name, f):
    x = 0.3
    for k in range(1, 6):
        assert rel_err(derivative(f, x, order=k), nested_jvp(f, k)(x)) < 1e-11, (name, k)


@pytest.mark.parametrize("f", [lambda x: np.exp(np.sin(x)), lambda x: np.arctan(x) * np.cbrt(x)],
                         ids=["exp_sin", "arctan_cbrt"])
def test_order_8_matches_nested_jvp(f):
    assert rel_err(derivative(f, 0.6, order=8), nested_jvp(f, 8)(0.6)) < 1e-10


def test_array_valued_function_of_scalar():
    a = np.array([0.5, 1.0, 2.0])
    for k in range(7):
        got = derivative(lambda x: np.sin(a * x) + 1.0, 0.4, order=k)
        want = a ** k * np.sin(a * 0.4 + k * np.pi / 2) + (1.0 if k == 0 else 0.0)
        assert got.shape == (3,)
        assert rel_err(got, want) < 1e-13


def test_linear_primitives_act_per_coefficient():
    a = np.arange(1.0, 7.0).reshape(2, 3)

    def f(x):
        y = np.exp(a * x)                               # (2, 3)
        z = np.transpose(y).reshape(6) + x              # the +x coefficient is a scalar
        w = np.broadcast_to(z, (2, 6)).sum(axis=0)
        return np.where(a.ravel() > 2.5, w, x * x)

    for k in range(5):
        got = derivative(f, 0.2, order=k)
        assert got.shape == (6,)
        assert rel_err(got, nested_jvp(f, k)(0.2)) < 1e-12


def test_power_at_zero_with_integer_exponents():
    assert float(derivative(lambda x: x ** 3, 0.0, order=3)) == 6.0
    assert float(derivative(lambda x: x ** 3, 0.0, order=4)) == 0.0
    assert float(derivative(lambda x: x ** 2, 0.0, order=2)) == 2.0
    assert float(derivative(lambda x: x ** 0, 0.0, order=1)) == 0.0


def test_primitive_without_taylor_rule_falls_back_to_nested_jvp():
    @custom_jvp
    def f(x):
        return np.sin(x) * x

    @f.defjvp
    def f_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), (np.cos(x) * x + np.sin(x)) * t

    g = lambda x: np.exp(f(2.0 * x))
    ref = lambda x: np.exp(np.sin(2.0 * x) * 2.0 * x)
    for k in range(1, 6):
        assert rel_err(derivative(g, 0.3, order=k), derivative(ref, 0.3, order=k)) < 1e-12


# ============================================================================
# the Taylor tracer itself
# ============================================================================
def test_taylor_tracer_coefficients():
    y = np.exp(Taylor([0.0, 1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose([float(c) for c in y.coeffs], [1, 1, 1 / 2, 1 / 6, 1 / 24])
    assert y.degree == 4 and float(y.primal) == 1.0
    # Mixed degrees truncate to the lower one.
    z = Taylor([1.0, 2.0, 3.0]) * Taylor([1.0, 1.0])
    assert [float(c) for c in z.coeffs] == [1.0, 3.0]


def test_taylor_rejects_bad_coefficient_shapes():
    with pytest.raises(ValueError, match="shape"):
        Taylor([np.zeros(3), np.zeros(4)])


# ============================================================================
# arguments, dtypes, nesting
# ============================================================================
def test_order_zero_and_argument_checks():
    assert float(derivative(np.sin, 0.5, order=0)) == math.sin(0.5)
    assert float(derivative(np.exp, 1.0, order=2)) == pytest.approx(math.e, rel=1e-15)
    with pytest.raises(TypeError, match="floating"):     # as grad: ints are refused
        derivative(np.exp, 1, order=2)
    with pytest.raises(ValueError, match="order"):
        derivative(np.sin, 0.5, order=-1)
    with pytest.raises(ValueError, match="scalar"):
        derivative(np.sin, np.zeros(2))
    assert float(derivative(lambda x: 3.0, 0.5, order=2)) == 0.0


def test_float32_stays_float32():
    x = np.float32(0.5)
    got = derivative(lambda v: np.sin(v) * np.float32(2.0), np.asarray(x), order=3)
    assert got.dtype == np.float32
    assert abs(float(got) + 2 * math.cos(0.5)) < 1e-5


def test_nested_with_grad_and_jvp():
    f = lambda x, y: np.exp(np.sin(x * y))
    ref = nested_jvp(lambda y: nested_jvp(lambda x: f(x, y), 3)(0.5), 1)(0.7)
    got = da.grad(lambda y: derivative(lambda x: f(x, y), 0.5, order=3))(0.7)
    assert rel_err(got, ref) < 1e-12
    h = lambda x: da.grad(lambda y: np.sin(x * y) ** 2)(x)
    assert rel_err(derivative(h, 0.3, order=3), nested_jvp(h, 3)(0.3)) < 1e-12


def test_pytree_output():
    out = derivative(lambda x: {"a": np.exp(x), "b": (x ** 2, 1.0)}, 0.0, order=2)
    assert float(out["a"]) == 1.0 and float(out["b"][0]) == 2.0 and float(out["b"][1]) == 0.0
