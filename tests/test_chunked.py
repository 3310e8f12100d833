"""The chunk runner: ordering, progress bars (tqdm and the text fallback),
batched HVPs, and executors (ProcessPoolExecutor, Dask) against the local path."""
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

import dualad as da
from dualad.mixed.cache import clear_cache
from dualad.mixed.runner import Progress, chunk_ranges, run_chunks


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


A = np.random.default_rng(0).normal(size=(30, 30)) / 6.0
X = np.linspace(-1.0, 1.0, 30)


def energy(x):
    return np.sum(np.tanh(A @ x) ** 2) + np.sum(x ** 4)


def band_map(x):
    return np.tanh(x[1:] - x[:-1]) * x[1:]


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()
    yield
    clear_cache()


# ============================================================================
# the runner
# ============================================================================
def test_chunk_ranges():
    assert chunk_ranges(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert chunk_ranges(4, 10) == [(0, 4)]
    assert chunk_ranges(0, 3) == [(0, 0)]


def test_run_chunks_local_and_threads_in_order():
    task = lambda a, b: list(range(a, b))
    assert run_chunks(task, 7, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with ThreadPoolExecutor(3) as ex:
        assert run_chunks(task, 7, 3, executor=ex) == [[0, 1, 2], [3, 4, 5], [6]]


# ============================================================================
# progress
# ============================================================================
def test_progress_with_tqdm(capsys):
    pytest.importorskip("tqdm", reason="tqdm (the 'progress' extra) is not installed")
    h = da.hessian(energy, mode="fwd-rev", chunk=6, progress=True)(X)
    err = capsys.readouterr().err
    assert "hessian fwd-rev" in err and "5/5" in err
    np.testing.assert_allclose(h, da.hessian(energy, mode="fwd-rev")(X), rtol=1e-13)


def test_progress_text_fallback_without_tqdm(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)       # import fails
    da.hessian(energy, mode="fwd-rev", chunk=10, progress=True)(X)
    err = capsys.readouterr().err
    for k in range(4):
        assert f"hessian fwd-rev: {k}/3 chunks" in err


def test_progress_disabled_prints_nothing(capsys):
    with Progress(3, "quiet", enabled=False) as bar:
        bar.update()
    da.hessian(energy, mode="fwd-rev", chunk=6)(X)
    assert capsys.readouterr().err == ""


def test_jacobian_progress_fwd_rev_sparse(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    ref = da.jacfwd(band_map)(X)
    for mode in ("fwd", "rev"):
        j = da.jacobian(band_map, mode=mode, chunk=8, progress=True)(X)
        np.testing.assert_allclose(j, ref, rtol=1e-14)
    j = da.jacobian(band_map, mode="sparse", chunk=1, progress=True)(X)
    np.testing.assert_allclose(j, ref, rtol=1e-14)
    err = capsys.readouterr().err
    assert "jacobian fwd: 4/4 chunks" in err and "jacobian rev: 4/4 chunks" in err
    assert "sparse jacobian: 2/2 chunks" in err


def test_batched_hvp_in_chunks_with_progress(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    v = np.random.default_rng(1).normal(size=(7, 30))
    g, hv = da.hvp(energy, (X,), (v,), chunk=3, progress=True)
    h = da.hessian(energy, mode="fwd-rev")(X)
    np.testing.assert_allclose(hv, v @ h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, da.grad(energy)(X), rtol=1e-14)
    assert "hvp: 3/3 chunks" in capsys.readouterr().err
    single = da.hvp(energy, (X,), (v[2],))[1]
    np.testing.assert_allclose(hv[2], single, rtol=1e-13)


def test_batched_hvp_several_primals_and_errors():
    f = lambda a, b: np.sum(a ** 2 * b) + np.sum(np.sin(b))
    a, b = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    va, vb = np.eye(2), np.zeros((2, 2))
    _, (ha, hb) = da.hvp(f, (a, b), (va, vb))
    np.testing.assert_allclose(ha, np.diag(2 * b))
    np.testing.assert_allclose(hb, np.diag(2 * a))
    with pytest.raises(ValueError, match="one batch size"):
        da.hvp(f, (a, b), (np.eye(2), np.zeros((3, 2))))


def test_modes_without_chunks_refuse_executor():
    with ThreadPoolExecutor(1) as ex, pytest.raises(ValueError, match="chunked Hessian mode"):
        da.hessian(energy, mode="hyperdual", executor=ex)(X)


# ============================================================================
# executors: processes and Dask give the local results
# ============================================================================
def _all_paths(ex):
    """(name, local result, executor result) for every chunked path."""
    shift = 0.3
    closure = lambda x: energy(x) + shift * np.sum(x[1:] * x[:-1])   # shipped by value
    out = []
    for name, local, remote in [
        ("hessian fwd-rev", lambda: da.hessian(closure, mode="fwd-rev", chunk=7)(X),
         lambda: da.hessian(closure, mode="fwd-rev", chunk=7, executor=ex)(X)),
        ("hessian sparse", lambda: da.hessian(rosen, mode="sparse", chunk=1)(X),
         lambda: da.hessian(rosen, mode="sparse", chunk=1, executor=ex)(X)),
        ("hessian auto", lambda: da.hessian(rosen)(X),
         lambda: da.hessian(rosen, executor=ex)(X)),
        ("jacobian fwd", lambda: da.jacobian(band_map, mode="fwd", chunk=8)(X),
         lambda: da.jacobian(band_map, mode="fwd", chunk=8, executor=ex)(X)),
        ("jacobian rev", lambda: da.jacobian(band_map, mode="rev", chunk=8)(X),
         lambda: da.jacobian(band_map, mode="rev", chunk=8, executor=ex)(X)),
        ("jacobian sparse rev", lambda: da.jacobian(lambda x: x * np.sum(x), mode="sparse")(X),
         lambda: da.jacobian(lambda x: x * np.sum(x), mode="sparse", chunk=1, executor=ex)(X)),
        ("hvp", lambda: da.hvp(closure, (X,), (np.eye(30)[:9],), chunk=4)[1],
         lambda: da.hvp(closure, (X,), (np.eye(30)[:9],), chunk=4, executor=ex)[1]),
    ]:
        out.append((name, local(), remote()))
    return out


def test_process_pool_matches_local():
    pytest.importorskip("cloudpickle", reason="executor= ships functions with cloudpickle")
    with ProcessPoolExecutor(2) as ex:
        results = _all_paths(ex)
    for name, local, remote in results:
        assert np.array_equal(local, remote), name


def test_dask_local_cluster_matches_local():
    pytest.importorskip("cloudpickle", reason="executor= ships functions with cloudpickle")
    distributed = pytest.importorskip(
        "distributed", reason="Dask is optional: pip install 'dualad[distributed]'")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        results = _all_paths(client.get_executor())
    for name, local, remote in results:
        assert np.array_equal(local, remote), name
