"""The vectorised float64 tanh (dualad/kernels/tanh_math.py) against np.tanh:
ulp error over a dense sweep of the whole range, special values, and its use
in the eager kernels, the forward-Laplacian kernels and ``da.jit``'s fused
kernels (results equal to the NumPy route to 1e-14)."""
import numpy as np
import pytest

pytest.importorskip("numba")

import dualad as da  # noqa: E402
from dualad.kernels import use_kernels  # noqa: E402
from dualad.kernels.tanh_math import tanh_array, with_fast_tanh  # noqa: E402


def _ulps(a, b):
    """Distance in units of last place (same-sign finite values)."""
    return np.abs(a.view(np.int64) - b.view(np.int64))


def test_ulp_error_dense_sweep():
    rng = np.random.default_rng(0)
    xs = np.concatenate([
        np.linspace(-30.0, 30.0, 600_001),
        np.geomspace(1e-308, 40.0, 300_001),
        -np.geomspace(1e-308, 40.0, 300_001),
        rng.uniform(-1.0, 1.0, 200_000),
        # around the switch between the rational and the exp branch
        np.linspace(0.62, 0.63, 100_001), -np.linspace(0.62, 0.63, 100_001),
    ])
    got, want = tanh_array(xs), np.tanh(xs)
    assert np.all(np.sign(got) == np.sign(want))
    assert _ulps(got, want).max() <= 2
    # against a long-double reference: no worse than 1.5 ulp (NumPy's own ~1.2)
    ref = np.tanh(xs.astype(np.longdouble))
    err = np.abs((got - ref) / np.spacing(want).astype(np.longdouble))
    assert float(err.max()) <= 1.5


def test_special_values():
    tiny = np.finfo(np.float64).smallest_subnormal
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, tiny, -tiny, 1e-300, -1e-200,
                  1e308, -1e308, 22.0, -22.0, 19.0, 0.625, -0.625,
                  np.nextafter(0.625, 0.0), 1e-8, -3e-9])
    got = tanh_array(x)
    want = np.tanh(x)
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:3], [1.0, -1.0])
    np.testing.assert_array_equal(np.signbit(got[1:]), np.signbit(want[1:]))
    np.testing.assert_array_equal(got[3:7], x[3:7])            # zeros, subnormals exact
    assert _ulps(got[7:], want[7:]).max() <= 2


def test_shapes_and_views():
    x = np.random.default_rng(1).normal(size=(7, 5))[:, ::2]
    np.testing.assert_allclose(tanh_array(x), np.tanh(x), rtol=5e-16, atol=0)


def test_source_rewrite():
    assert with_fast_tanh("y = x + 1") == "y = x + 1"
    src = with_fast_tanh("y = np.tanh(x) + math.tanh(z) + np.arctanh(w)")
    assert "_tanh(x) + _tanh(z) + np.arctanh(w)" in src
    assert src.startswith("from dualad.kernels.tanh_math import tanh_f64 as _tanh")


def _mlp(x):
    w1 = np.linspace(-1.0, 1.0, x.shape[1] * 300).reshape(x.shape[1], 300)
    h = np.tanh(x @ w1 + 0.1)
    return np.sum(np.tanh(h * 0.7 - 0.2) ** 2)


def test_eager_kernel_agrees_with_numpy():
    x = np.random.default_rng(2).normal(size=(400, 4))
    v = np.random.default_rng(3).normal(size=x.shape)
    with use_kernels("numpy"):
        want_g = da.grad(_mlp)(x)
        want_t = da.jvp(_mlp, (x,), (v,))[1]
    with use_kernels("numba"):
        got_g = da.grad(_mlp)(x)
        got_t = da.jvp(_mlp, (x,), (v,))[1]
    np.testing.assert_allclose(got_g, want_g, rtol=1e-14, atol=1e-14 * np.abs(want_g).max())
    np.testing.assert_allclose(got_t, want_t, rtol=1e-13)


def test_jit_fuses_tanh_and_agrees():
    x = np.random.default_rng(4).normal(size=(300, 4))
    v = np.random.default_rng(5).normal(size=x.shape)
    want_g = da.grad(_mlp)(x)
    want_t = da.jvp(_mlp, (x,), (v,))
    g = da.jit(da.grad(_mlp))
    t = da.jit(lambda a, b: da.jvp(_mlp, (a,), (b,)))
    for _ in range(2):                        # record, then replay
        got_g, got_t = g(x), t(x, v)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-14, atol=1e-14 * np.abs(want_g).max())
    np.testing.assert_allclose(got_t[0], want_t[0], rtol=1e-14)
    np.testing.assert_allclose(got_t[1], want_t[1], rtol=1e-13)
    for jitted in (g, t):                     # every tanh went into a fused kernel
        programs = [p for e in jitted.cache._data.values() for p in e.programs]
        assert programs
        assert all(f is not np.tanh for p in programs for f in p.__globals__.values())


_NO_NUMBA = """
import sys
sys.modules["numba"] = None                       # import numba fails
import numpy as np, dualad as da
rng = np.random.default_rng(0)
x = rng.normal(size=(300, 300))
g = da.grad(lambda x: np.sum(np.tanh(x)))(x)
assert np.allclose(g, 1 - np.tanh(x) ** 2)
W = rng.normal(size=(3, 64))
X = rng.uniform(-1, 1, (2048, 3))
lap = da.laplacian(lambda P: np.sum(np.tanh(P @ W), axis=1), batch_axis=0)(X)
t = np.tanh(X @ W)
assert np.allclose(lap, np.sum(-2 * t * (1 - t ** 2) * np.sum(W ** 2, axis=0), axis=1))
print("ok")
"""


def test_without_numba_the_rules_run():
    import subprocess
    import sys
    from pathlib import Path
    res = subprocess.run([sys.executable, "-c", _NO_NUMBA], capture_output=True, text=True,
                         timeout=300, cwd=str(Path(__file__).resolve().parent.parent))
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr
