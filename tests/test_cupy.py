"""CuPy arrays through the same API: results stay on the GPU and equal the
NumPy path. Skipped (with the reason) where no usable CuPy/GPU exists; run on
a GPU machine with `pytest -m cupy tests/test_cupy.py`."""
import numpy as np
import pytest
from conftest import cupy_usable

import dualad as da
from dualad.core.backend import namespace_of

pytestmark = [pytest.mark.cupy, pytest.mark.gpu,
              pytest.mark.skipif(not cupy_usable(), reason="CuPy with a usable GPU not present")]


def _lj(r):
    i, j = np.triu_indices(r.shape[0], 1)
    d2 = np.sum((r[i] - r[j]) ** 2, axis=-1)
    s6 = 1.0 / d2 ** 3
    return np.sum(4.0 * (s6 * s6 - s6))


@pytest.fixture
def cp():
    import cupy
    return cupy


def _positions(n=6):
    g = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
    return 1.12 * g + 0.05 * np.random.default_rng(0).standard_normal((n, 3))


def test_namespace_is_cupy(cp):
    assert namespace_of(cp.ones(3)) is cp


def test_grad_jvp_on_gpu_match_cpu(cp):
    f = lambda x: np.sum(np.sin(x) * x ** 2 + np.exp(-x ** 2))
    x = np.linspace(-1, 1, 1000)
    g_gpu = da.grad(f)(cp.asarray(x))
    assert isinstance(g_gpu, cp.ndarray)
    np.testing.assert_allclose(g_gpu.get(), da.grad(f)(x), rtol=1e-12)
    y, t = da.jvp(f, (cp.asarray(x),), (cp.ones(1000),))
    np.testing.assert_allclose(float(t), float(da.jvp(f, (x,), (np.ones(1000),))[1]), rtol=1e-12)


def test_fused_gpu_kernel_runs_on_cupy(cp):
    x = cp.linspace(-2, 2, 200_000)
    try:
        da.set_kernels("numba")
        g = da.grad(lambda x: np.sum(np.tanh(x) * np.sin(x)))(x)
    finally:
        da.set_kernels("auto")
    xh = x.get()
    want = (1 - np.tanh(xh) ** 2) * np.sin(xh) + np.tanh(xh) * np.cos(xh)
    np.testing.assert_allclose(g.get(), want, rtol=1e-10, atol=1e-12)


def test_lj_hessian_on_gpu_matches_cpu(cp):
    r = _positions()
    h_cpu = da.hessian(_lj, mode="fwd-rev")(r)
    h_gpu = da.hessian(_lj, mode="fwd-rev")(cp.asarray(r))
    assert isinstance(h_gpu, cp.ndarray)
    np.testing.assert_allclose(h_gpu.get(), h_cpu, rtol=1e-10, atol=1e-10)


def test_jacfwd_jacrev_mlp_on_gpu(cp):
    rng = np.random.default_rng(1)
    w1, w2 = rng.standard_normal((3, 16)), rng.standard_normal((16, 2))
    f = lambda x: np.tanh(x @ w1) @ w2
    x = rng.standard_normal(3)
    f_gpu = lambda x: np.tanh(x @ cp.asarray(w1)) @ cp.asarray(w2)
    jf = da.jacfwd(f_gpu)(cp.asarray(x))
    jr = da.jacrev(f_gpu)(cp.asarray(x))
    np.testing.assert_allclose(jf.get(), da.jacfwd(f)(x), rtol=1e-12)
    np.testing.assert_allclose(jr.get(), jf.get(), rtol=1e-12)


def test_auto_modes_and_planner_on_gpu(cp):
    r = _positions()
    h_auto = da.hessian(_lj)(cp.asarray(r))
    assert isinstance(h_auto, cp.ndarray)
    np.testing.assert_allclose(h_auto.get(), da.hessian(_lj, mode="fwd-rev")(r),
                               rtol=1e-10, atol=1e-10)
    f = lambda x: np.tanh(x[1:] * x[:-1])
    x = np.linspace(-1, 1, 7)
    j = da.jacobian(f)(cp.asarray(x))
    np.testing.assert_allclose(j.get(), da.jacfwd(f)(x), rtol=1e-12)
    plan = da.plan(_lj, cp.asarray(r), kind="hessian")
    assert plan.mode in ("fwd-rev", "rev-rev", "fwd-fwd", "hyperdual", "sparse", "structured")


def test_batched_hvp_and_forward_values_on_gpu(cp):
    f = lambda x: np.sum(np.sin(x) * x ** 2)
    x = np.linspace(-1, 1, 6)
    g, hv = da.hvp(f, (cp.asarray(x),), (cp.asarray(np.eye(6)),))
    np.testing.assert_allclose(hv.get(), da.hessian(f)(x), rtol=1e-12, atol=1e-14)
    hd = da.forward.HyperDual(cp.asarray(0.3), cp.asarray(1.0), cp.asarray(1.0),
                              cp.asarray(0.0))
    y = np.sin(hd)
    np.testing.assert_allclose(float(y.e12), -np.sin(0.3), rtol=1e-14)


def test_forward_over_reverse_through_linear_transposes_on_gpu(cp):
    # reshape/transpose/astype transposes applied to traced cotangents: the
    # rules must bind primitives, never call cupy functions on tracers.
    def flat_lj(x):
        r = x.reshape(-1, 3).T.T.astype(np.float64)
        return _lj(r)
    x = _positions().ravel()
    h_gpu = da.hessian(flat_lj, mode="fwd-rev")(cp.asarray(x))
    np.testing.assert_allclose(h_gpu.get(), da.hessian(flat_lj, mode="fwd-rev")(x),
                               rtol=1e-10, atol=1e-10)
    h_auto = da.hessian(flat_lj)(cp.asarray(x))
    np.testing.assert_allclose(h_auto.get(), h_gpu.get(), rtol=1e-10, atol=1e-10)


def test_vmap_grad_and_batched_jvp_on_gpu(cp):
    w = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    f = lambda x: np.sum(np.tanh(x @ cp.asarray(w)) ** 2) + np.max(x)
    xs = np.random.default_rng(0).normal(size=(6, 3))
    got = da.vmap(da.grad(f))(cp.asarray(xs))
    assert isinstance(got, cp.ndarray)
    want = np.stack([da.grad(f)(cp.asarray(x)).get() for x in xs])
    np.testing.assert_allclose(got.get(), want, rtol=1e-12)
    _, t = da.jvp(np.sin, (cp.asarray(xs[0]),), (cp.asarray(np.eye(3)),), batched=True)
    np.testing.assert_allclose(t.get(), np.diag(np.cos(xs[0])), rtol=1e-14)
