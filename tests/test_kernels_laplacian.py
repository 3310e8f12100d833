"""The fused forward-Laplacian kernels (dualad/kernels/second.py): the
table's f' and f'' against the registry's partials (f'' by differentiating
them), and da.laplacian / da.hessian_diag identical with and without the
kernels (all layouts the hook accepts, float32, inside grad)."""
import numpy as np
import pytest

import dualad as da
from dualad.core.zero import Zero
from dualad.kernels import laplacian_update, second, use_kernels
from dualad.rules.ufuncs import log_p, tanh_p

PRIMS = sorted(second.SECOND, key=lambda p: p.name)
RNG = np.random.default_rng(7)


@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
def test_second_table_matches_registry(prim):
    """One kernel call with g = 1 (d = 1), l = 0 gives f' in g_y and f'' in l_y."""
    assert not prim.singular                      # the kernel multiplies unguarded
    x = np.linspace(-1.3, 1.3, 601)
    y, gy, ly = second.laplacian_update(prim, x, np.ones((1,) + x.shape), Zero, False)
    (d1,) = prim.partials(prim.impl(x), x)
    d2 = da.jvp(lambda x: prim.partials(prim.impl(x), x)[0], (x,), (np.ones_like(x),))[1]
    np.testing.assert_allclose(y, prim.impl(x), rtol=5e-16, atol=0)   # tanh: own value
    np.testing.assert_allclose(gy[0], np.broadcast_to(d1, x.shape), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ly, d2, rtol=1e-13, atol=1e-14)


def _mlp(act):
    W1, W2 = RNG.normal(size=(3, 16)), RNG.normal(size=(16, 8)) / 4
    return lambda X: np.sum(act(act(X @ W1 + 0.1) @ W2) * 0.5, axis=1)


@pytest.mark.parametrize("prim", PRIMS, ids=lambda p: p.name)
@pytest.mark.parametrize("transform", [da.laplacian, da.hessian_diag])
def test_kernel_and_numpy_paths_agree(prim, transform):
    u = _mlp(getattr(np, prim.name))
    X = RNG.uniform(-1, 1, (57, 3))
    with use_kernels("numpy"):
        want = transform(u, batch_axis=0)(X)
    with use_kernels("numba"):
        got = transform(u, batch_axis=0)(X)
        got_f = transform(u, batch_axis=0)(np.asfortranarray(X))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_f, want, rtol=1e-12, atol=1e-12)


def test_kernel_matches_dense_hessian_trace():
    u = _mlp(np.tanh)
    X = RNG.uniform(-1, 1, (5, 3))
    with use_kernels("numba"):
        lap = da.laplacian(u, batch_axis=0)(X)
    want = [np.trace(da.hessian(lambda x: u(x[None])[0])(x)) for x in X]
    np.testing.assert_allclose(lap, want, rtol=1e-12)


def test_float32_stays_float32_and_agrees():
    u = _mlp(np.tanh)
    X = RNG.uniform(-1, 1, (40, 3)).astype(np.float32)
    with use_kernels("numba"):
        got = da.laplacian(u, batch_axis=0)(X)
    with use_kernels("numpy"):
        want = da.laplacian(u, batch_axis=0)(X)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_inside_grad_the_rules_run_and_agree():
    """Traced weights (a PINN loss's gradient): the hook declines, same result."""
    X = RNG.uniform(-1, 1, (20, 3))
    W0 = RNG.normal(size=(3, 6))

    def loss(W):
        return np.sum(da.laplacian(lambda P: np.sum(np.tanh(P @ W), axis=1),
                                   batch_axis=0)(X) ** 2)
    with use_kernels("numba"):
        g1 = da.grad(loss)(W0)
    with use_kernels("numpy"):
        g2 = da.grad(loss)(W0)
    np.testing.assert_allclose(g1, g2, rtol=1e-12)


def test_hook_declines_what_it_cannot_take():
    x = np.ones((4, 5))
    g = np.ones((3, 4, 5))
    with use_kernels("numba"):
        assert laplacian_update(log_p, x, g, Zero, False) is None          # not in the table
        assert laplacian_update(tanh_p, x, g.astype(np.float32), Zero, False) is None
        assert laplacian_update(tanh_p, x, np.ones((3, 4, 1)), Zero, False) is None
        assert laplacian_update(tanh_p, x, g, np.ones(5), False) is None    # lap not x-shaped
        assert laplacian_update(tanh_p, x, g, Zero, False) is not None
    with use_kernels("numpy"):
        assert laplacian_update(tanh_p, x, g, Zero, False) is None
    with use_kernels("auto"):
        assert laplacian_update(tanh_p, x, g, Zero, False) is None          # below min_size


def test_generated_source_goes_to_the_cache_dir_or_falls_back(tmp_path, monkeypatch):
    """Numba caches only file-backed functions: the kernel source is written
    under DUALAD_CACHE_DIR (name carries its hash); an unusable directory
    falls back to exec without a cache."""
    src = "import math\nimport numpy as np\ndef kernel(x):\n    return x + 1.0\n"
    monkeypatch.setenv("DUALAD_CACHE_DIR", str(tmp_path))
    fn, cacheable = second._load(src, "probe")
    assert cacheable and fn(1.0) == 2.0
    assert len(list((tmp_path / "kernels").glob("probe_*.py"))) == 1
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("DUALAD_CACHE_DIR", str(blocker))       # not a directory
    fn, cacheable = second._load(src, "probe")
    assert not cacheable and fn(1.0) == 2.0


def test_kernel_tanh_value_within_two_ulp_and_special_values():
    """The tanh kernel computes the value itself (vectorised): within 2 ulp
    of np.tanh over a wide range, exact at the special values."""
    x = np.concatenate([np.random.default_rng(3).normal(size=20000) * 4,
                        np.linspace(-0.7, 0.7, 2001), np.linspace(-25, 25, 2001),
                        [0.0, -0.0, 1e-300, -5e-324, 0.625, -0.625, np.nextafter(0.625, 0),
                         19.0, 22.0, 700.0, -800.0, np.inf, -np.inf, np.nan]])
    y, _, _ = second.laplacian_update(tanh_p, x, np.ones((1,) + x.shape), Zero, False)
    ref = np.tanh(x)
    ok = ~np.isnan(ref)
    assert np.all(np.abs(y[ok] - ref[ok]) <= 4.5e-16 * np.maximum(np.abs(ref[ok]), 1e-300))
    assert np.isnan(y[-1])
    assert np.array_equal(np.signbit(y[ok]), np.signbit(ref[ok]))
    assert y[-3] == 1.0 and y[-2] == -1.0


def test_shared_row_seeds_path_agrees():
    """Batched seeds stay a stride-0 view through the first matmul; the tanh
    kernel then reads the one shared (d, width) row: same result as dense."""
    W1, W2 = RNG.normal(size=(3, 40)), RNG.normal(size=(40, 24)) / 6
    u = lambda X: np.sum(np.tanh(np.tanh(X @ W1 + 0.2) @ W2), axis=1)   # noqa: E731
    X = RNG.uniform(-1, 1, (300, 3))
    g = np.broadcast_to(W1[:, None, :], (3, 300, 40))
    assert second._shared_row(g).shape == (3, 40)
    assert second._shared_row(np.ascontiguousarray(g)) is None
    with use_kernels("numpy"):
        want = da.laplacian(u, batch_axis=0)(X), da.hessian_diag(u, batch_axis=0)(X)
    with use_kernels("numba"):
        got = da.laplacian(u, batch_axis=0)(X), da.hessian_diag(u, batch_axis=0)(X)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * np.abs(b).max())
    dense = [np.trace(da.hessian(lambda x: u(x[None])[0])(x)) for x in X[:4]]
    np.testing.assert_allclose(got[0][:4], dense, rtol=1e-12)


def test_one_cache_root_for_eager_and_fused_kernels(monkeypatch, tmp_path):
    from dualad.kernels.second import cache_root
    monkeypatch.delenv("DUALAD_CACHE_DIR", raising=False)
    monkeypatch.setenv("DUALAD_CACHE", str(tmp_path / "old"))
    assert cache_root() == str(tmp_path / "old")          # the older name still works
    monkeypatch.setenv("DUALAD_CACHE_DIR", str(tmp_path / "new"))
    assert cache_root() == str(tmp_path / "new")          # the documented one wins
