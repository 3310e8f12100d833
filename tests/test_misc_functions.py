"""NumPy functions added as compositions (dualad/rules/misc.py): values equal
NumPy's, derivatives match finite differences to order 2 in both modes."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.core.tree import tree_flatten
from dualad.testing import check_grads

RNG = np.random.default_rng(1)
X, Y = RNG.uniform(-1, 1, 6), RNG.uniform(-1, 1, 6)
M = RNG.standard_normal((4, 5))
T3 = RNG.standard_normal((2, 3, 4))
XP = np.linspace(-1.2, 1.2, 5)
KNOTS = np.array([-1.5, -0.3, 0.1, 0.9, 1.3])

CASES = {
    "degrees/radians": (lambda x: np.rad2deg(x) + np.degrees(x * x) + np.deg2rad(x)
                        + np.radians(x ** 3), (X,)),
    "fabs": (np.fabs, (X,)),
    "logaddexp2": (np.logaddexp2, (X, Y)),
    "sinc": (np.sinc, (X,)),
    "sinc near 0": (np.sinc, (np.array([0.0, 1e-5, -2e-4, 0.5]),)),
    "linspace": (lambda a, b: np.linspace(a, b, 7), (X[0], Y[0])),
    "linspace arrays": (lambda a, b: np.linspace(a, b, 4, endpoint=False, axis=1),
                        (X[:3], Y[:3])),
    "linspace retstep": (lambda a, b: np.linspace(a, b, 5, retstep=True), (X[0], Y[0])),
    "gradient": (np.gradient, (X,)),
    "gradient edge_order=2": (lambda f: np.gradient(f, 0.3, edge_order=2), (X,)),
    "gradient coordinates": (lambda f: np.gradient(f, np.cumsum(np.arange(1.0, 7.0))), (X,)),
    "gradient 2-d spacings": (lambda f: np.gradient(f, 1.0, 2.0), (M,)),
    "gradient axis": (lambda f: np.gradient(f, axis=1, edge_order=2), (M,)),
    "nan_to_num": (lambda x: np.nan_to_num(np.where(x > 0, x, np.nan) * 2, nan=3.0), (X,)),
    "pad constant": (lambda m: np.pad(m, ((1, 2), (0, 3)),
                                      constant_values=((1.5, 2.5), (3.5, 4.5))), (M,)),
    "pad edge": (lambda m: np.pad(m, 2, mode="edge"), (M,)),
    "pad reflect": (lambda m: np.pad(m, ((3, 1), (2, 4)), mode="reflect"), (M,)),
    "pad symmetric": (lambda m: np.pad(m, 2, mode="symmetric"), (M,)),
    "pad wrap": (lambda m: np.pad(m, (1, 6), mode="wrap"), (X,)),
    "partition": (lambda m: np.partition(m, 2, axis=1), (M,)),
    "rollaxis": (lambda t: np.rollaxis(t, 2, 0), (T3,)),
    "rollaxis to end": (lambda t: np.rollaxis(t, 0, 3), (T3,)),
    "select": (lambda x, y: np.select([x > 0.5, x < -0.2], [x ** 2, y * x], default=y),
               (X, Y)),
    "interp": (lambda t, fp: np.interp(t, XP, fp), (KNOTS, XP ** 2)),
    "interp left/right": (lambda t, fp: np.interp(t, XP, fp, left=-1.0, right=2.0),
                          (KNOTS, XP ** 2)),
    "polyval": (np.polyval, (np.array([1.0, -2.0, 0.5]), X)),
    "piecewise": (lambda x: np.piecewise(x, [x < 0, x > 0.5],
                                         [lambda v: v ** 2, np.sin, lambda v: v * 3]), (X,)),
    "piecewise constant": (lambda x: np.piecewise(x, [x < 0], [lambda v: v ** 2, 1.5]), (X,)),
    "meshgrid": (lambda a, b: np.meshgrid(a, b), (X[:3], Y[:4])),
    "meshgrid ij sparse": (lambda a, b, c: np.meshgrid(a, b, c, indexing="ij", sparse=True),
                           (X[:3], Y[:4], X[:2])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_value_equals_numpy(name: str) -> None:
    f, args = CASES[name]
    got = da.jvp(f, args, tuple(np.ones_like(a) for a in args))[0]
    want = f(*args)
    for g, w in zip(tree_flatten(got)[0], tree_flatten(want)[0], strict=True):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_derivatives_order_2(name: str) -> None:
    f, args = CASES[name]
    check_grads(f, args, order=2, modes=("fwd", "rev"))


def test_sinc_derivatives_at_zero() -> None:
    assert float(da.grad(np.sinc)(0.0)) == 0.0
    assert float(da.grad(da.grad(np.sinc))(0.0)) == pytest.approx(-np.pi ** 2 / 3, rel=1e-12)


def test_linspace_endpoints_derivative() -> None:
    j = da.jacfwd(lambda ab: np.linspace(ab[0], ab[1], 5))(np.array([0.0, 1.0]))
    np.testing.assert_allclose(j, np.stack([1 - np.linspace(0, 1, 5), np.linspace(0, 1, 5)], 1))


def test_gradient_is_linear_with_numpy_weights() -> None:
    f = lambda v: np.gradient(v, 0.5, edge_order=2)       # noqa: E731
    np.testing.assert_allclose(da.jacrev(f)(X), np.stack([f(e) for e in np.eye(6)], 1),
                               atol=1e-14)


@pytest.mark.parametrize("body, match", [
    (lambda x: np.pad(x, 1, mode="linear_ramp"), "numpy.pad supports modes"),
    (lambda x: np.interp(x, XP, XP, period=2.0), "period"),
])
def test_unsupported_options_raise(body, match) -> None:
    with pytest.raises(TypeError, match=match):
        da.grad(lambda x: np.sum(body(x)))(X)
