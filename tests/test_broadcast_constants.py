"""A traced input smaller than a constant it meets: the tangent must take the
output's (broadcast) shape in forward mode, and the cotangent be summed back
in reverse mode. (Regression: x + np.ones(3) at scalar x once gave a tangent
of shape (), so the derivative of its sum came out 1 instead of 3.)"""
import numpy as np
import pytest

import dualad as da
from dualad.testing import check_grads

C = np.linspace(0.5, 1.5, 12).reshape(4, 3)

BINARY = {
    "add": lambda x, c: x + c,
    "subtract": lambda x, c: c - x,
    "multiply": lambda x, c: x * c,
    "divide": lambda x, c: c / (x + 2.0),
    "power": lambda x, c: (x + 2.0) ** c,
    "pow_base": lambda x, c: c ** x,
    "maximum": lambda x, c: np.maximum(x, c - 0.25),
    "arctan2": lambda x, c: np.arctan2(x, c),
    "hypot": lambda x, c: np.hypot(x, c),
    "logaddexp": lambda x, c: np.logaddexp(x, c),
    "where": lambda x, c: np.where(c > 1.0, x, -x),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shape", [(), (3,), (1, 3), (4, 1)])
def test_small_traced_input_meets_larger_constant(name, shape):
    op = BINARY[name]
    x = np.full(shape, 0.3) + 0.1 * np.arange(int(np.prod(shape))).reshape(shape)
    f = lambda x: op(x, C)
    check_grads(f, (x,), order=2, modes=("fwd", "rev"))
    # the summed output: forward and reverse agree on every entry
    g = lambda x: np.sum(op(x, C))
    np.testing.assert_allclose(da.jvp(g, (x,), (np.ones(shape),))[1],
                               np.sum(da.grad(g)(x)), rtol=1e-12)
    np.testing.assert_allclose(da.jacfwd(f)(x), da.jacrev(f)(x), rtol=1e-12, atol=1e-14)


def test_scalar_plus_constant_vector_has_full_tangent():
    y, t = da.jvp(lambda x: x + np.ones(3), (2.0,), (1.0,))
    np.testing.assert_array_equal(t, np.ones(3))
    assert da.jvp(lambda x: (x + np.ones(3)).sum(), (2.0,), (1.0,))[1] == 3.0


def test_batched_tangents_broadcast_too():
    jac = da.jacfwd(lambda x: x * np.ones((2, 3)))(np.ones(3))
    want = np.broadcast_to(np.eye(3), (2, 3, 3))
    np.testing.assert_array_equal(jac, want)


def test_lists_mix_in_as_constant_arrays():
    # NumPy would convert a list operand; the rules need its shape too.
    assert da.grad(lambda x: np.sum(np.maximum(x, [0.5, 2.0])))(1.0) == 1.0
    assert da.grad(lambda x: np.sum(x * [1.0, 3.0]))(1.0) == 4.0
    np.testing.assert_allclose(da.jacfwd(lambda x: x - [1.0, 2.0, 3.0])(0.5), np.ones(3))
