"""Forward Laplacian / Hessian diagonal against the dense Hessian."""
import numpy as np
import pytest

import dualad as da
from bench.workloads import mlp_params, pinn_u
from dualad.core.tree import tree_flatten
from dualad.forward.laplacian import hessian_diag, laplacian

X = np.array([0.3, -0.7, 1.1, 0.45])
A = np.random.default_rng(0).normal(size=(4, 4))

FUNCS = {
    "sin_exp": lambda x: np.sum(np.sin(x) * np.exp(0.3 * x)),
    "tanh_log": lambda x: np.sum(np.tanh(x) ** 2 + np.log(x * x + 1.0)),
    "divide_sqrt": lambda x: np.sum(np.sqrt(x * x + 2.0) / (x + 3.0)),
    "power": lambda x: np.sum((x * x + 1.0) ** 1.5) + np.sum(x ** 3),
    "product": lambda x: x[0] * x[1] * x[2] + x[3] / x[0],
    "matmul": lambda x: x @ A @ x + np.sum(np.tanh(A @ x)),
    "matmul_2d": lambda x: np.sum(np.tanh(x.reshape(2, 2) @ x.reshape(2, 2).T)),
    "einsum": lambda x: np.einsum("i,ij,j->", x, A, np.sin(x)),
    "outer_broadcast": lambda x: np.sum(np.cos(x[:, None] * x[None, :] + x)),
    "reductions": lambda x: np.prod(np.cos(x)) + np.max(x ** 2) + np.sum(x) ** 2,
    "where_abs": lambda x: np.sum(np.where(x > 0, x ** 3, np.sin(x)) + np.abs(x) * x),
    "linalg_det": lambda x: np.linalg.det(x.reshape(2, 2) + 3 * np.eye(2)),
    "concat_getitem": lambda x: np.sum(np.concatenate([x[:2] ** 2, np.exp(x[1:])]) ** 2),
    "mean_std": lambda x: np.mean(x ** 2) * np.std(x),
}


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_against_hessian(name):
    f = FUNCS[name]
    h = np.asarray(da.hessian(f)(X))
    np.testing.assert_allclose(hessian_diag(f)(X), np.diag(h), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(laplacian(f)(X), np.trace(h), rtol=1e-10, atol=1e-10)


def test_matrix_input_and_vector_output():
    x = X.reshape(2, 2)
    f = lambda m: np.stack([np.sum(np.sin(m) * m), np.sum(m @ m)])   # noqa: E731
    for k in range(2):
        h = np.asarray(da.hessian(lambda m: f(m)[k])(x)).reshape(4, 4)
        np.testing.assert_allclose(laplacian(f)(x)[k], np.trace(h), rtol=1e-12)
        np.testing.assert_allclose(hessian_diag(f)(x)[k], np.diag(h).reshape(2, 2), rtol=1e-12)


def _params(sizes=(3, 8, 8, 1), seed=0):
    return mlp_params(sizes, seed)           # the W5 network (bench.workloads)


def test_pinn_batched_against_hessian():
    params = _params()
    pts = np.random.default_rng(1).uniform(-1, 1, (5, 3))
    lap = laplacian(lambda p: pinn_u(params, p), batch_axis=0)(pts)
    diag = hessian_diag(lambda p: pinn_u(params, p), batch_axis=0)(pts)
    assert lap.shape == (5,) and diag.shape == (5, 3)
    for n in range(5):
        h = np.asarray(da.hessian(lambda x: pinn_u(params, x[None, :])[0])(pts[n]))
        np.testing.assert_allclose(diag[n], np.diag(h), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(lap[n], np.trace(h), rtol=1e-10, atol=1e-12)


def test_batch_axis_one():
    pts = np.random.default_rng(2).normal(size=(3, 6))
    f = lambda p: np.sum(np.sin(p) * p[0], axis=0)   # noqa: E731 (columns are points)
    ref = laplacian(lambda q: f(q.T), batch_axis=0)(pts.T)
    np.testing.assert_allclose(laplacian(f, batch_axis=1)(pts), ref, rtol=1e-12)
    np.testing.assert_allclose(hessian_diag(f, batch_axis=1)(pts),
                               hessian_diag(lambda q: f(q.T), batch_axis=0)(pts.T), rtol=1e-12)


def test_under_grad_pinn_loss():
    params = _params()
    pts = np.random.default_rng(3).uniform(-1, 1, (6, 3))

    def loss(ps):
        lap = laplacian(lambda p: pinn_u(ps, p), batch_axis=0)(pts)
        return np.sum((lap + 1.0) ** 2)

    g = da.grad(loss)(params)
    eps = 1e-6
    for k in (0, 1, 2):
        d = np.zeros_like(params[k])
        d.flat[1] = eps
        up = tuple(p + d if i == k else p for i, p in enumerate(params))
        dn = tuple(p - d if i == k else p for i, p in enumerate(params))
        fd = (loss(up) - loss(dn)) / (2 * eps)
        np.testing.assert_allclose(g[k].flat[1], fd, rtol=1e-6, atol=1e-8)


def test_under_grad_wrt_x():
    f = FUNCS["sin_exp"]
    g = da.grad(lambda x: laplacian(f)(x))(X)
    # d/dx sum_i f_ii for separable f: third derivatives of sin(x) exp(.3x)
    third = np.array([float(da.derivative(lambda t: np.sin(t) * np.exp(0.3 * t), v, order=3))
                      for v in X])
    np.testing.assert_allclose(g, third, rtol=1e-10)


def test_constant_output_and_scalar_input():
    assert float(laplacian(lambda x: 3.0)(np.ones(2))) == 0.0
    np.testing.assert_allclose(laplacian(lambda x: np.sin(x) * x)(0.5),
                               2 * np.cos(0.5) - 0.5 * np.sin(0.5))
    np.testing.assert_allclose(hessian_diag(lambda x: np.exp(x))(np.zeros(3)), np.eye(3))


def test_rows_interacting_is_not_per_point():
    # documented: batch_axis assumes independent rows; here row 0 feeds row 1
    pts = np.array([[0.5], [0.2]])
    f = lambda p: np.sin(p[:, 0] + p[::-1, 0])   # noqa: E731
    per_point = [np.asarray(da.hessian(lambda x: f(np.stack([x, pts[1 - n]])
                                                   if n == 0 else np.stack([pts[0], x]))[n])(
                     pts[n])).item() for n in range(2)]
    assert not np.allclose(laplacian(f, batch_axis=0)(pts), per_point)


def test_scalar_batch_error():
    with pytest.raises(ValueError, match="batch_axis"):
        laplacian(np.sin, batch_axis=0)(1.0)


# ----------------------------------------------------------------------------
# every op-table row (first shape family): against the dense Hessian
# ----------------------------------------------------------------------------
def _op_cases():
    import test_op_table as table
    seen, out = set(), []
    for spec, family in table.CASES:
        if spec.name not in seen:
            seen.add(spec.name)
            out.append((spec, family))
    return out


_OPS = _op_cases()


@pytest.mark.parametrize("spec, family", _OPS, ids=[s.name for s, _ in _OPS])
def test_op_table_rows(spec, family):
    args = spec.args(family)

    def f(x):
        leaves = [leaf for leaf in tree_flatten(spec.fn(x, *args[1:]))[0]
                  if hasattr(leaf, "_level") or np.asarray(leaf).dtype.kind == "f"]
        return sum(np.sum(np.sin(leaf) + leaf ** 2) for leaf in leaves)

    x = args[0]
    n = max(x.size, 1)
    h = np.asarray(da.hessian(f, mode="fwd-rev")(x)).reshape(n, n)
    np.testing.assert_allclose(laplacian(f)(x), np.trace(h), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(np.reshape(hessian_diag(f)(x), -1), np.diag(h),
                               rtol=1e-8, atol=1e-9)


def test_pytree_output_and_int_input():
    f = lambda x: {"a": np.sum(x ** 3), "b": (np.sin(x), 2.0)}   # noqa: E731
    x = np.array([1, 2])
    lap = laplacian(f)(x)
    np.testing.assert_allclose(lap["a"], 6.0 * 3.0)
    np.testing.assert_allclose(lap["b"][0], -np.sin(x.astype(float)))
    assert float(lap["b"][1]) == 0.0
    diag = hessian_diag(f)(x.astype(float))
    np.testing.assert_allclose(diag["a"], [6.0, 12.0])
    assert diag["b"][0].shape == (2, 2)


def test_float32_and_forward_over_laplacian():
    x = np.array([0.3, 0.6], dtype=np.float32)
    lap = laplacian(lambda v: np.sum(np.exp(v)))(x)
    assert lap.dtype == np.float32
    np.testing.assert_allclose(lap, np.sum(np.exp(x)), rtol=1e-6)
    # d/dt of the Laplacian along x + t*v, by jvp over laplacian
    f = lambda v: np.sum(np.sin(v) * v)   # noqa: E731
    v = np.array([1.0, -0.5])
    _, t = da.jvp(laplacian(f), (x.astype(float),), (v,))
    third = lambda a: -3 * np.sin(a) - a * np.cos(a)   # noqa: E731  (d3/da3 of a sin a)
    np.testing.assert_allclose(t, np.sum(third(x.astype(float)) * v), rtol=1e-10)


def test_grad_inside_fn():
    x = np.array([0.3, -0.4, 0.9])
    f = lambda x: np.sum(da.grad(lambda y: np.sum(np.sin(y) ** 2 * y[0]))(x) ** 2)  # noqa: E731
    h = np.asarray(da.hessian(f, mode="fwd-fwd")(x))
    np.testing.assert_allclose(laplacian(f)(x), np.trace(h), rtol=1e-12)
    np.testing.assert_allclose(hessian_diag(f)(x), np.diag(h), rtol=1e-12)
