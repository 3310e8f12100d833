"""MindSpore-style classes (dualad/compat.py): GradOperation, Jvp, Vjp."""
import numpy as np
import pytest

import dualad as da

X = np.array([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]])
Y = np.array([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]])


class MatMulNet(da.Module):
    def __init__(self, z=1.0):
        self.z = da.Parameter(np.array([z]), name="z")

    def construct(self, x, y):
        return np.matmul(x * self.z, y)


def mul_xy(x, y):
    return x * x * y


# ============================================================================
# GradOperation: return structures
# ============================================================================
def test_first_input_by_default():
    g = da.GradOperation()(MatMulNet(2.0))(X, Y)
    np.testing.assert_allclose(g, 2.0 * np.ones((2, 3)) @ Y.T)
    assert isinstance(g, np.ndarray)


def test_get_all_gives_every_input():
    gx, gy = da.GradOperation(get_all=True)(MatMulNet())(X, Y)
    np.testing.assert_allclose(gx, np.ones((2, 3)) @ Y.T)
    np.testing.assert_allclose(gy, X.T @ np.ones((2, 3)))
    out = da.GradOperation(get_all=True)(lambda x: x * 3.0)(np.array([1.0]))
    assert isinstance(out, tuple) and len(out) == 1


def test_get_by_list_gives_weight_gradients():
    net = MatMulNet()
    gw = da.GradOperation(get_by_list=True)(net, net.trainable_params())(X, Y)
    assert isinstance(gw, tuple) and len(gw) == 1
    np.testing.assert_allclose(gw[0], [np.sum(X @ Y)])
    # a single Parameter is accepted as weights too
    (gz,) = da.GradOperation(get_by_list=True)(net, net.z)(X, Y)
    np.testing.assert_allclose(gz, [np.sum(X @ Y)])


def test_get_all_and_get_by_list():
    net = MatMulNet()
    (gx, gy), (gz,) = da.GradOperation(get_all=True, get_by_list=True)(
        net, net.trainable_params())(X, Y)
    np.testing.assert_allclose(gx, np.ones((2, 3)) @ Y.T)
    np.testing.assert_allclose(gy, X.T @ np.ones((2, 3)))
    np.testing.assert_allclose(gz, [np.sum(X @ Y)])


def test_weight_without_requires_grad_gets_zero():
    w = da.Parameter(np.array([6.0]), name="w")
    b = da.Parameter(np.array([1.0]), name="b", requires_grad=False)
    gw, gb = da.GradOperation(get_by_list=True)(lambda x: w * x + b, [w, b])(np.array([5.0]))
    np.testing.assert_allclose(gw, [5.0])
    np.testing.assert_array_equal(gb, [0.0])


def test_tuple_output_is_summed():
    g = da.GradOperation()(lambda x: (x * 2.0, x ** 2))(np.array([3.0]))
    np.testing.assert_allclose(g, [8.0])


def test_float32_stays_float32():
    x = np.array([1.0, 2.0], dtype=np.float32)
    g = da.GradOperation()(lambda x: np.sin(x) * x)(x)
    assert g.dtype == np.float32


def test_weights_are_ignored_without_get_by_list():
    net = MatMulNet()
    g = da.GradOperation()(net, net.trainable_params())(X, Y)
    np.testing.assert_allclose(g, np.ones((2, 3)) @ Y.T)


# ============================================================================
# GradOperation: sensitivities
# ============================================================================
def test_sens_param_weights_the_output():
    s = np.array([[0.1, 0.6, 0.2], [0.8, 1.3, 1.1]])
    g = da.GradOperation(sens_param=True)(MatMulNet())(X, Y, s)
    np.testing.assert_allclose(g, s @ Y.T)
    np.testing.assert_allclose(g, [[2.211, 0.51, 1.49], [5.588, 2.68, 4.07]])


def test_sens_for_tuple_output():
    f = lambda x: (x * 2.0, x ** 2)
    g = da.GradOperation(sens_param=True)(f)(np.array([3.0]), (np.array([1.0]), np.array([0.5])))
    np.testing.assert_allclose(g, [2.0 + 0.5 * 6.0])


def test_sens_shape_mismatch_names_both_shapes():
    op = da.GradOperation(sens_param=True)(MatMulNet())
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        op(X, Y, np.ones((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        da.GradOperation(sens_param=True)(np.sin)(np.ones(3), np.ones(1))


def test_sens_structure_mismatch():
    f = lambda x: (x * 2.0, x ** 2)
    with pytest.raises(ValueError, match="structure"):
        da.GradOperation(sens_param=True)(f)(np.array([3.0]), np.array([1.0]))


def test_sens_as_list_or_one_tuple_for_single_output():
    g = da.GradOperation(sens_param=True)(np.sin)(np.array([0.0, 0.0]), [0.5, 2.0])
    np.testing.assert_allclose(g, [0.5, 2.0])
    g = da.GradOperation(sens_param=True)(np.sin)(np.array([0.0]), (np.array([3.0]),))
    np.testing.assert_allclose(g, [3.0])


def test_sens_param_needs_arguments():
    with pytest.raises(TypeError, match="sensitivity"):
        da.GradOperation(sens_param=True)(np.sin)()


# ============================================================================
# GradOperation: errors
# ============================================================================
def test_get_by_list_without_weights_is_an_error():
    with pytest.raises(ValueError, match="weights"):
        da.GradOperation(get_by_list=True)(MatMulNet())


def test_weights_must_be_parameters():
    with pytest.raises(TypeError, match="Parameter"):
        da.GradOperation(get_by_list=True)(np.sin, [np.ones(2)])


def test_integer_input_names_the_input():
    with pytest.raises(TypeError, match="input 0"):
        da.GradOperation()(lambda x: x * 2)(np.array([1, 2]))


def test_no_input_and_non_callable():
    with pytest.raises(TypeError, match="at least one input"):
        da.GradOperation()(lambda: 1.0)()
    with pytest.raises(TypeError, match="callable"):
        da.GradOperation()(3.0)


def test_grad_position_none_and_weights_none():
    with pytest.raises(ValueError, match="None"):
        da.grad(mul_xy, grad_position=None, weights=None)
    with pytest.raises(ValueError, match="None"):
        da.value_and_grad(mul_xy, grad_position=None, weights=None)


# ============================================================================
# GradOperation: nesting (the tutorial's higher-order examples)
# ============================================================================
def test_second_derivative_of_sin():
    d2 = da.GradOperation()(da.GradOperation()(np.sin))
    np.testing.assert_allclose(d2(np.array([1.0])), [-np.sin(1.0)])
    d3 = da.GradOperation()(d2)
    np.testing.assert_allclose(d3(np.array([1.0])), [-np.cos(1.0)])


def test_second_derivative_of_square():
    d2 = da.GradOperation()(da.GradOperation()(lambda x: x * x))
    np.testing.assert_allclose(d2(np.array([0.1, 0.2, 0.3])), [2.0, 2.0, 2.0])


def test_mixed_second_derivatives_with_sensitivities():
    first = da.GradOperation(get_all=True)(mul_xy)
    second = da.GradOperation(get_all=True, sens_param=True)(first)
    x, y = np.array([4.0]), np.array([5.0])
    one, zero = np.array([1.0]), np.array([0.0])
    dxdx, dxdy = second(x, y, (one, zero))
    dydx, dydy = second(x, y, (zero, one))
    np.testing.assert_allclose([dxdx[0], dxdy[0], dydx[0], dydy[0]], [10.0, 8.0, 8.0, 0.0])


def test_nested_weight_gradients():
    w = da.Parameter(np.array([2.0]), name="w")
    f = lambda x: w * w * x
    inner = da.GradOperation(get_by_list=True)(f, [w])
    outer = da.GradOperation(get_by_list=True)(lambda x: inner(x)[0], [w])
    (g,) = outer(np.array([3.0]))
    np.testing.assert_allclose(g, [6.0])          # d/dw (2 w x) = 2 x


def test_mixes_with_functional_transforms():
    g = da.GradOperation()(np.sin)
    np.testing.assert_allclose(da.grad(lambda x: g(x).sum())(np.array([0.5])),
                               [-np.sin(0.5)])
    _, t = da.jvp(g, (np.array([0.5]),), (np.array([1.0]),))
    np.testing.assert_allclose(t, [-np.sin(0.5)])
    h = da.GradOperation()(da.grad(lambda x: np.sum(x ** 3)))
    np.testing.assert_allclose(h(np.array([2.0])), [12.0])


# ============================================================================
# Jvp and Vjp
# ============================================================================
JX, JY = np.array([0.8, 0.6, 0.2]), np.array([0.7, 0.4, 0.3])


def sin_cos(x, y):
    return np.sin(x) + np.cos(y)


def test_jvp_matches_tutorial():
    v = np.ones(3)
    out, t = da.Jvp(sin_cos)(JX, JY, (v, v))
    np.testing.assert_allclose(out, np.sin(JX) + np.cos(JY))
    np.testing.assert_allclose(t, np.cos(JX) - np.sin(JY))
    np.testing.assert_allclose(out, [1.48, 1.49, 1.15], atol=5e-3)
    np.testing.assert_allclose(t, [0.0525, 0.436, 0.685], atol=5e-4)


def test_jvp_single_input_single_tangent():
    out, t = da.Jvp(np.sin)(np.array([0.0, 1.0]), np.array([2.0, 1.0]))
    np.testing.assert_allclose(t, [2.0, np.cos(1.0)])
    _, t = da.Jvp(np.sin)(np.array([0.0]), (np.array([3.0]),))
    np.testing.assert_allclose(t, [3.0])


def test_jvp_errors():
    with pytest.raises(ValueError, match="one tangent per input"):
        da.Jvp(sin_cos)(JX, JY, np.ones(3))
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        da.Jvp(sin_cos)(JX, JY, (np.ones(2), np.ones(3)))
    with pytest.raises(TypeError):
        da.Jvp(sin_cos)(JX)


def test_vjp_matches_tutorial():
    out, (cx, cy) = da.Vjp(sin_cos)(JX, JY, np.ones(3))
    np.testing.assert_allclose(out, np.sin(JX) + np.cos(JY))
    np.testing.assert_allclose(cx, np.cos(JX))
    np.testing.assert_allclose(cy, -np.sin(JY))
    np.testing.assert_allclose(cx, [0.70, 0.83, 0.98], atol=5e-3)
    np.testing.assert_allclose(cy, [-0.64, -0.39, -0.30], atol=5e-3)


def test_vjp_weighted_and_tuple_output():
    v = np.array([1.0, 2.0, 3.0])
    _, (cx, cy) = da.Vjp(sin_cos)(JX, JY, v)
    np.testing.assert_allclose(cx, v * np.cos(JX))
    f = lambda x: (x * 2.0, x ** 2)
    (o1, o2), (c,) = da.Vjp(f)(np.array([3.0]), (np.array([1.0]), np.array([1.0])))
    np.testing.assert_allclose(c, [8.0])


def test_vjp_wrong_cotangent_shape():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        da.Vjp(sin_cos)(JX, JY, np.ones(2))


def test_vjp_nests_in_grad():
    def f(x):
        _, (c,) = da.Vjp(np.sin)(x, np.ones(x.shape))
        return c.sum()
    np.testing.assert_allclose(da.grad(f)(np.array([0.3])), [-np.sin(0.3)])
