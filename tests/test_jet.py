"""da.jet against derivative and jax.experimental.jet."""
import math

import numpy as np
import pytest

import dualad as da
from dualad.forward.jet import jet

M = np.array([[0.5, -0.2], [0.3, 0.8]])
FUNCS = {
    "exp_sin": lambda x: np.exp(np.sin(x)) * x,
    "log_sqrt": lambda x: np.log(x * x + 1.0) + np.sqrt(x * x + 2.0),
    "tanh_div": lambda x: np.tanh(x) / (x * x + 3.0),
    "power": lambda x: (x * x + 1.0) ** 1.7 + x ** 3,
    "cosh_arctan": lambda x: np.cosh(x) * np.arctan(x),
    "matmul": lambda x: np.tanh(M @ np.sin(x.reshape(2, 2))),
    "einsum_sum": lambda x: np.einsum("ij,ij->", M, x.reshape(2, 2) ** 2) + np.sum(np.exp(x)),
    "where_concat": lambda x: np.concatenate([np.where(x > 0, x ** 2, np.sin(x)), x[:2]]),
    "prod_max": lambda x: np.prod(np.cos(x)) + np.max(x ** 2),
    "det": lambda x: np.linalg.det(x.reshape(2, 2) + 2 * np.eye(2)),
}
X = np.array([0.3, -0.6, 1.2, 0.45])
V = [np.array([1.0, 0.5, -0.3, 0.2]), np.array([0.1, -0.2, 0.3, 0.0]),
     np.array([0.0, 0.4, 0.1, -0.1])]


def _path(x0, terms):
    return lambda t: x0 + sum(c * t ** k / math.factorial(k) for k, c in enumerate(terms, 1))


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_against_derivative(name):
    f = FUNCS[name]
    y, ys = jet(f, (X,), (V,))
    path = _path(X, V)
    np.testing.assert_allclose(y, f(X), rtol=1e-13)
    for k, yk in enumerate(ys, 1):
        np.testing.assert_allclose(yk, da.derivative(lambda t: f(path(t)), 0.0, order=k),
                                   rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_against_jax(name):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.experimental import jet as jjet
    f = FUNCS[name]
    jf = {"det": lambda x: jnp.linalg.det(x.reshape(2, 2) + 2 * jnp.eye(2)),
          "matmul": lambda x: jnp.tanh(jnp.asarray(M) @ jnp.sin(x.reshape(2, 2))),
          "einsum_sum": lambda x: jnp.einsum("ij,ij->", jnp.asarray(M), x.reshape(2, 2) ** 2)
          + jnp.sum(jnp.exp(x)),
          "where_concat": lambda x: jnp.concatenate([jnp.where(x > 0, x ** 2, jnp.sin(x)),
                                                     x[:2]])}.get(name)
    if jf is None:
        jf = _jaxify(f)
    try:
        jy, jys = jjet.jet(jf, (jnp.asarray(X),), ([jnp.asarray(v) for v in V],))
    except (NotImplementedError, TypeError, KeyError) as err:   # primitive JAX's jet lacks
        pytest.skip(f"jax.experimental.jet: {err}")
    y, ys = jet(f, (X,), (V,))
    np.testing.assert_allclose(y, np.asarray(jy), rtol=1e-12)
    for a, b in zip(ys, jys):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9, atol=1e-11)


def _jaxify(f):
    """Run a NumPy-written function with jax.numpy as ``np``."""
    import types

    import jax.numpy as jnp
    g = dict(f.__globals__)
    g["np"] = jnp
    return types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)


def test_pytree_output_several_inputs_and_shapes():
    a = np.arange(6.0).reshape(2, 3) / 10
    b = np.full((3,), 0.5)
    fn = lambda x, y: {"s": np.sin(x) * y, "t": np.sum(x @ y)}   # noqa: E731
    sa, sb = [np.ones_like(a), np.zeros_like(a)], [np.zeros_like(b), np.ones_like(b)]
    y, ys = jet(fn, (a, b), (sa, sb))
    assert set(ys) == {"s", "t"} and len(ys["s"]) == 2 and ys["s"][0].shape == (2, 3)
    # second derivative along the path of sum(x @ y): 2 * sum(x1 @ y1) + sum(x2 @ y0 + x0 @ y2)
    np.testing.assert_allclose(ys["t"][1], 2 * np.sum(sa[0] @ sb[0]) + np.sum(a @ sb[1]))


def test_constant_output_and_errors():
    y, ys = jet(lambda x: np.ones(2), (np.zeros(2),), ([np.ones(2)],))
    np.testing.assert_allclose(ys[0], 0.0)
    with pytest.raises(ValueError, match="shape"):
        jet(np.sin, (np.zeros(2),), ([np.ones(3)],))
    with pytest.raises(ValueError, match="same number"):
        jet(lambda x, y: x * y, (1.0, 2.0), ([1.0], [1.0, 2.0]))
    with pytest.raises(TypeError, match="tuples"):
        jet(np.sin, 1.0, [1.0])
