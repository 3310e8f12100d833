"""Perturbation confusion: d/dx [x * d/dy (x + y)] at x = 1 is 1 (a confused
implementation gives 2), in every mix of forward, reverse and tape tensors;
then the classic second-derivative compositions must agree."""
import numpy as np
import pytest

import dualad as da


# ============================================================================
# inner derivatives d/dy (x + y) at y = 1, one per mechanism
# ============================================================================
def inner_fwd(x):
    return da.jvp(lambda y: x + y, (1.0,), (1.0,))[1]


def inner_rev(x):
    return da.grad(lambda y: x + y)(1.0)


def inner_vjp(x):
    _, pull = da.vjp(lambda y: x + y, np.asarray(1.0))
    return pull(np.asarray(1.0))[0]


def inner_tensor(x):
    y = da.tensor(1.0, requires_grad=True)
    (g,) = da.autograd.grad(x + y, y)
    return g


def inner_tensor_backward(x):
    y = da.tensor(1.0, requires_grad=True)
    # inputs=: when x is itself a tape tensor (outer "tensor"), a plain
    # backward would also accumulate into x.grad, exactly as in PyTorch.
    (x + y).backward(inputs=[y])
    return y.grad


INNER = {"fwd": inner_fwd, "rev": inner_rev, "vjp": inner_vjp, "tensor": inner_tensor,
         "tensor-backward": inner_tensor_backward}


# ============================================================================
# outer derivatives d/dx of x * inner(x) at x = 1
# ============================================================================
def outer_fwd(f):
    return da.jvp(f, (1.0,), (1.0,))[1]


def outer_rev(f):
    return da.grad(f)(1.0)


def outer_jacfwd(f):
    return da.jacfwd(f)(1.0)


def outer_jacrev(f):
    return da.jacrev(f)(1.0)


def outer_tensor(f):
    x = da.tensor(1.0, requires_grad=True)
    f(x).backward()
    return x.grad


def outer_tensor_grad(f):
    x = da.tensor(1.0, requires_grad=True)
    return da.autograd.grad(f(x), x)[0]


OUTER = {"fwd": outer_fwd, "rev": outer_rev, "jacfwd": outer_jacfwd, "jacrev": outer_jacrev,
         "tensor": outer_tensor, "tensor-grad": outer_tensor_grad}


def _value(v):
    return float(v.item() if isinstance(v, da.Tensor) else v)


@pytest.mark.parametrize("outer", list(OUTER))
@pytest.mark.parametrize("inner", list(INNER))
def test_scalar_confusion(outer, inner):
    f = lambda x: x * INNER[inner](x)
    assert _value(OUTER[outer](f)) == 1.0


# ============================================================================
# vector variants
# ============================================================================
X = np.array([0.5, -1.0, 2.0])


def vec_inner_fwd(x):
    # d/dt sum(x * (y + t e)) along each e: a batch of jvps = x itself.
    return da.jacfwd(lambda y: (x * y).sum())(np.ones(3))


def vec_inner_rev(x):
    return da.grad(lambda y: (x * y).sum())(np.ones(3))


def vec_inner_tensor(x):
    y = da.tensor(np.ones(3), requires_grad=True)
    # create_graph: when x is a tape tensor too (same tape, as in PyTorch)
    # the inner gradient depends on x only if its graph is recorded.
    return da.autograd.grad((x * y).sum(), y, create_graph=True)[0]


VEC_INNER = {"fwd": vec_inner_fwd, "rev": vec_inner_rev, "tensor": vec_inner_tensor}


@pytest.mark.parametrize("inner", list(VEC_INNER))
def test_vector_confusion(inner):
    # g(x) = sum(x * grad_y <x, y>) = sum(x * x): gradient 2x, Jacobian of
    # x * x is diag(2x); a confused inner derivative would add more.
    g = lambda x: (x * VEC_INNER[inner](x)).sum()
    h = lambda x: x * VEC_INNER[inner](x)
    np.testing.assert_allclose(da.grad(g)(X), 2 * X)
    np.testing.assert_allclose(da.jacrev(h)(X), np.diag(2 * X))
    np.testing.assert_allclose(da.jvp(g, (X,), (np.ones(3),))[1], (2 * X).sum())
    np.testing.assert_allclose(da.jacfwd(h)(X), np.diag(2 * X))
    x = da.tensor(X, requires_grad=True)
    g(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * X)


def test_vector_confusion_ones():
    # d/dx sum(x * d/dy sum(x + y)) = d/dx sum(x) = ones, in all four mixes.
    for inner in (lambda x: da.grad(lambda y: (x + y).sum())(np.ones(3)),
                  lambda x: da.jacfwd(lambda y: (x + y).sum())(np.ones(3))):
        g = lambda x: (x * inner(x)).sum()
        np.testing.assert_allclose(da.grad(g)(X), np.ones(3))
        np.testing.assert_allclose(da.jvp(g, (X,), (X,))[1], X.sum())


def test_two_nested_levels_same_variable():
    # d/dx [x * d/dx (x * d/dx x^2)] = d/dx [x * 4x] = 8x: three levels deep.
    f = lambda x: x * da.grad(lambda z: z * da.grad(lambda w: w * w)(z))(x)
    assert float(da.grad(f)(1.5)) == pytest.approx(12.0)
    assert float(da.jvp(f, (1.5,), (1.0,))[1]) == pytest.approx(12.0)


# ============================================================================
# second-derivative compositions agree
# ============================================================================
def f_scalar(x):
    return np.sin(x) * x ** 3 + np.exp(x * 0.5)


def f_vec(x):
    return (np.tanh(x) * x.sum() + np.log1p(x * x)).sum()


def test_second_derivative_compositions_scalar():
    x = 0.7
    d2 = [
        da.grad(da.grad(f_scalar))(x),
        da.jvp(da.grad(f_scalar), (x,), (1.0,))[1],
        da.grad(lambda x: da.jvp(f_scalar, (x,), (1.0,))[1])(x),
        da.jvp(lambda x: da.jvp(f_scalar, (x,), (1.0,))[1], (x,), (1.0,))[1],
        da.jacrev(da.jacfwd(f_scalar))(x),
        da.jacfwd(da.jacrev(f_scalar))(x),
        da.hessian(f_scalar)(x),
    ]
    for v in d2:
        assert float(v) == pytest.approx(float(d2[0]), rel=1e-12)
    exact = (-np.sin(x) * x ** 3 + 6 * np.cos(x) * x ** 2 + 6 * np.sin(x) * x
             + 0.25 * np.exp(x * 0.5))
    assert float(d2[0]) == pytest.approx(exact, rel=1e-12)


def test_second_derivative_compositions_vector():
    x = np.array([0.3, -0.8, 1.4])
    v = np.array([1.0, 0.5, -2.0])
    H = da.jacrev(da.jacfwd(f_vec))(x)
    np.testing.assert_allclose(da.jacfwd(da.jacrev(f_vec))(x), H, rtol=1e-12)
    np.testing.assert_allclose(da.jacrev(da.grad(f_vec))(x), H, rtol=1e-12)
    np.testing.assert_allclose(da.jvp(da.grad(f_vec), (x,), (v,))[1], H @ v, rtol=1e-12)
    np.testing.assert_allclose(
        da.grad(lambda x: da.jvp(f_vec, (x,), (v,))[1])(x), H @ v, rtol=1e-12)
    np.testing.assert_allclose(da.grad(lambda x: (da.grad(f_vec)(x) * v).sum())(x), H @ v,
                               rtol=1e-12)
    t = da.tensor(x, requires_grad=True)
    (g,) = da.autograd.grad(f_vec(t), t, create_graph=True)
    (g * v).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), H @ v, rtol=1e-12)
