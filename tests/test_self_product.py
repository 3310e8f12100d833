"""``x * x`` of one traced object is ``square`` (dualad/rules/ufuncs.py):
the same bits as two multiplies in every mode, and multiply's 0 * inf guard."""
import numpy as np

import dualad as da
from dualad.forward import Dual

RNG = np.random.default_rng(3)


def _two_objects(x):
    return x * (x + 0.0)          # a different object: stays a multiply


def test_same_bits_as_a_multiply():
    x, v = RNG.normal(size=50), RNG.normal(size=50)
    f = lambda x: np.sum(np.sin(x * x))                          # noqa: E731
    g = lambda x: np.sum(np.sin(_two_objects(x)))                # noqa: E731
    np.testing.assert_array_equal(da.grad(f)(x), da.grad(g)(x))
    np.testing.assert_array_equal(da.jvp(f, (x,), (v,))[1], da.jvp(g, (x,), (v,))[1])
    np.testing.assert_array_equal(da.hessian(f)(x), da.hessian(g)(x))
    np.testing.assert_allclose(da.grad(f)(x), 2 * x * np.cos(x * x), rtol=1e-15)


def test_routed_to_square():
    from dualad.core.levels import new_level
    from dualad.reverse.tape import TapeLevel, Var, leaf_node
    from dualad.rules.ufuncs import multiply_p, square_p
    with new_level(TapeLevel()) as level:
        v = Var(np.ones(3), level, leaf_node())
        assert (v * v).node.prim is square_p
        assert np.multiply(v, v).node.prim is square_p
        assert (v * (v + 0.0)).node.prim is multiply_p
    d = Dual(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    np.testing.assert_array_equal(np.asarray((d * d).tangent), [2.0, 4.0])


def test_zero_times_infinite_partial_stays_zero():
    """x * x overflowing to inf where the cotangent is 0 (the unselected
    branch of a where): the derivative is 0, not NaN, as for a multiply."""
    x = np.array([1e200, 2.0])
    f = lambda x: np.sum(np.where(x < 1e100, x * x, 0.0))        # noqa: E731
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(da.grad(f)(x), [0.0, 4.0])
        np.testing.assert_array_equal(da.grad(lambda x: np.sum(np.where(
            x < 1e100, _two_objects(x), 0.0)))(x), [0.0, 4.0])
