"""``da.jit`` of the forward-Laplacian transforms: the recording reads no
traced value, so the pass replays; a replay equals the eager result (bitwise
where the same kernels run, 1e-14 relative otherwise), re-records when a
closed-over weight changes, and never changes a result by dropping work."""
import numpy as np
import pytest
from test_laplacian import FUNCS, X

import dualad as da
from bench.workloads import mlp_params, pinn_u

PARAMS = mlp_params((3, 16, 16, 1), seed=3)
PTS = np.random.default_rng(4).uniform(-1.0, 1.0, (1500, 3))  # 3 x 1500 x 16 >= 2**16: kernels run


def _close(a, b, rtol=1e-14):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    scale = max(float(np.max(np.abs(b))), 1e-300)
    assert float(np.max(np.abs(a - b))) <= rtol * scale


def _replayed(jitted, *args):
    """Two calls: the first records, the second must replay."""
    first = jitted(*args)
    second = jitted(*args)
    assert jitted.stats["eager"] == 0, list(jitted.reasons)
    assert jitted.stats["records"] == 1 and jitted.stats["replays"] >= 1
    return first, second


@pytest.mark.parametrize("transform", [da.laplacian, da.hessian_diag])
@pytest.mark.parametrize("mode", ["auto", "numba", "numpy"])
def test_pinn_replays_equal_to_eager(transform, mode):
    with da.kernels.use_kernels(mode, min_size=0 if mode == "auto" else None):
        f = transform(lambda p: pinn_u(PARAMS, p), batch_axis=0)
        want = f(PTS)
        first, second = _replayed(da.jit(f), PTS)
    np.testing.assert_array_equal(first, want)      # (the recording's own values)
    if mode == "numpy":
        # da.jit fuses the NumPy rules' elementwise runs (its tanh within 2 ulp)
        _close(second, want)
    else:
        # the same kernels in the same order: the same bits
        np.testing.assert_array_equal(second, want)


def test_pinn_weights_as_arguments():
    g = da.jit(lambda q, p: da.laplacian(lambda x: pinn_u(q, x), batch_axis=0)(p))
    want = da.laplacian(lambda x: pinn_u(PARAMS, x), batch_axis=0)(PTS)
    _, got = _replayed(g, PARAMS, PTS)
    np.testing.assert_array_equal(got, want)
    # new weights: the same program, the new answer
    other = mlp_params((3, 16, 16, 1), seed=5)
    _close(g(other, PTS), da.laplacian(lambda x: pinn_u(other, x), batch_axis=0)(PTS))
    assert g.stats["records"] == 1


def test_pinn_unbatched_point():
    x = PTS[0]
    for transform in (da.laplacian, da.hessian_diag):
        f = transform(lambda p: pinn_u(PARAMS, p[None, :])[0])
        _, got = _replayed(da.jit(f), x)
        _close(got, f(x))
        h = da.hessian(lambda p: pinn_u(PARAMS, p[None, :])[0])(x)
        want = np.trace(h) if transform is da.laplacian else np.diag(h)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sin_exp", "tanh_log", "matmul", "einsum", "product",
                                  "outer_broadcast", "mean_std"])
@pytest.mark.parametrize("transform", [da.laplacian, da.hessian_diag])
def test_op_table_like_functions(name, transform):
    f = transform(FUNCS[name])
    _, got = _replayed(da.jit(f), X)
    _close(got, f(X))
    # a new point: the program's answer is the eager one there too
    y = X[::-1] * 0.9
    _close(da.jit(f)(y), f(y))


def test_batched_elementwise_function():
    u = lambda x: np.sum(np.sin(x) * np.exp(0.5 * x) + x ** 3, axis=1)     # noqa: E731
    pts = np.random.default_rng(1).normal(size=(50, 2))
    for transform in (da.laplacian, da.hessian_diag):
        f = transform(u, batch_axis=0)
        jf = da.jit(f)
        _, got = _replayed(jf, pts)
        _close(got, f(pts))
        _close(jf(pts + 0.25), f(pts + 0.25))


def test_changed_closure_rerecords():
    params = [w.copy() for w in PARAMS]
    f = da.laplacian(lambda p: pinn_u(params, p), batch_axis=0)
    jf = da.jit(f)
    _replayed(jf, PTS)
    params[2] *= 1.5                      # the second layer's weights, in place
    want = f(PTS)
    got = jf(PTS)
    assert jf.stats["records"] == 2
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(jf(PTS), want)
    assert jf.stats["replays"] >= 2


def test_replay_at_new_points_and_layouts():
    f = da.laplacian(lambda p: pinn_u(PARAMS, p), batch_axis=0)
    jf = da.jit(f)
    _replayed(jf, PTS)
    other = np.asfortranarray(PTS[::-1] * 0.7)        # same signature, another layout
    np.testing.assert_array_equal(jf(other), f(other))
    assert jf.stats["records"] == 1


def _lap_calls(jitted):
    from dualad.kernels.second import LapUpdate
    (entry,) = jitted.cache._data.values()
    ns = entry.programs[0].__globals__
    return [v for k, v in ns.items() if k.startswith("f") and type(v) is LapUpdate]


def test_dead_outputs_and_bias_fold_keep_the_bits():
    f = da.laplacian(lambda p: pinn_u(PARAMS, p), batch_axis=0)
    want = f(PTS)
    fused, plain = da.jit(f), da.jit(f, fuse=False)
    _replayed(fused, PTS)
    _replayed(plain, PTS)
    calls = _lap_calls(fused)
    # both tanh layers' updates: the bias adds folded in; the last layer's
    # value and gradient are read by nothing (the output is the Laplacian)
    assert [c.biased for c in calls] == [True, True]
    assert [c.keep for c in calls] == [(True, True), (False, False)]
    assert [c.biased for c in _lap_calls(plain)] == [False, False]
    np.testing.assert_array_equal(fused(PTS), want)
    np.testing.assert_array_equal(plain(PTS), want)
    # the value and gradient still come out where a caller asks for them
    both = da.jit(lambda p: (pinn_u(PARAMS, p), f(p)))
    u, lap = both(PTS)
    u, lap = both(PTS)
    np.testing.assert_array_equal(lap, want)
    _close(u, pinn_u(PARAMS, PTS))        # (its tanh may be a fused loop: 2 ulp)
