"""The planner: probe, memory budget, cost model, plans with reasons,
caching, chunking under a budget, symmetric Hessians, auto modes."""
import numpy as np
import pytest
from conftest import lj_flat

import dualad as da
from dualad.mixed import planner, runner
from dualad.mixed.cache import clear_cache
from dualad.mixed.planner import (
    Probe,
    budget_chunk,
    format_bytes,
    parse_bytes,
    plan_from_probe,
    probe,
)


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


lj = lj_flat


def lattice(n_atoms, seed=0):
    g = np.arange(3)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)[:n_atoms]
    return (1.12 * grid + np.random.default_rng(seed).normal(0, 0.05, grid.shape)).ravel()


def f_couple(x):
    return (np.sin(x) * x).sum() * (x * x).sum()


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()
    da.set_memory_budget(None)
    yield
    clear_cache()
    da.set_memory_budget(None)


# ============================================================================
# probe and budget
# ============================================================================
def test_probe_counts_ops_and_bytes():
    p = probe(lambda x: np.sum(np.sin(x) * x), (np.ones(10),))
    assert (p.n_ops, p.n_elems, p.n_bytes, p.n_in, p.n_out) == (3, 21, 168, 10, 1)
    p32 = probe(lambda x, c: x * c, (np.ones(4, np.float32), 3.0), (0,))
    assert (p32.n_ops, p32.n_bytes, p32.itemsize, p32.n_out) == (1, 16, 4, 4)


def test_parse_and_format_bytes():
    assert parse_bytes("2GB") == 2 * 2**30
    assert parse_bytes("512 MiB") == 512 * 2**20
    assert parse_bytes(1000) == 1000
    assert format_bytes(2 * 2**30) == "2.0 GB" and format_bytes(100) == "100 B"
    for bad in ("lots", -5, "3 parsecs"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


def test_memory_budget_setting():
    default = planner.get_memory_budget()
    assert default >= 64 * 2**20
    da.set_memory_budget("1GB")
    assert planner.get_memory_budget() == 2**30
    assert planner.get_memory_budget("10MB") == 10 * 2**20
    da.set_memory_budget(None)
    assert planner.get_memory_budget() == default


def test_budget_chunk_rule():
    assert budget_chunk(1000, 10**6, 2 * 10**8) == 200          # budget-bound, even split
    assert budget_chunk(1000, 10, 10**9) == 250                  # MAX_CHUNK-bound: 4 x 250
    assert budget_chunk(1000, 10**9, 10**6) == 1                 # one direction always runs
    assert budget_chunk(7, 1, 10**9) == 7


# ============================================================================
# choices and reasons (pure: synthetic probes)
# ============================================================================
def test_choose_jacobian_directions():
    wide = plan_from_probe("jacobian", Probe(20, 20_000, 160_000, 384, 1), 2**31)
    assert wide.mode == "rev" and wide.n_chunks == 1
    assert "n_in=384, n_out=1" in wide.reason and "reverse (1 pass" in wide.reason
    assert "forward (2 chunks of 192" in wide.reason and "fits 2.0 GB budget" in wide.reason
    tall = plan_from_probe("jacobian", Probe(20, 20_000, 160_000, 3, 500), 2**31)
    assert tall.mode == "fwd" and tall.chunk == 3


def test_choose_hessian_chunk_under_budget():
    pr = Probe(10, 10**6, 8 * 10**6, 1000, 1)
    p = plan_from_probe("hessian", pr, 100 * 2**20)
    assert p.mode == "fwd-rev"
    assert p.bytes_per_direction == 24 * 10**6
    assert p.chunk == 4 and p.n_chunks == 250
    assert "chunk 4 fits 100.0 MB budget" in p.reason
    tiny = plan_from_probe("hessian", pr, 2**20)
    assert tiny.chunk == 1 and tiny.n_chunks == 1000 and "over the 1.0 MB budget" in tiny.reason


def test_choose_keeps_default_unless_twice_cheaper():
    small = plan_from_probe("hessian", Probe(3, 7, 56, 3, 1), 2**30)
    assert small.mode == "fwd-rev" and "keeping the default" in small.reason
    assert small.costs["hyperdual"] < small.costs["fwd-rev"] < 2 * small.costs["hyperdual"]


def test_choose_fixed_mode_and_unknown():
    p = plan_from_probe("hessian", Probe(3, 7, 56, 3, 1), 2**30, mode="rev-rev")
    assert p.mode == "rev-rev" and "as requested" in p.reason
    with pytest.raises(ValueError, match="cannot be planned"):
        plan_from_probe("hessian", Probe(3, 7, 56, 3, 1), 2**30, mode="sparse")


# ============================================================================
# plans of real functions
# ============================================================================
def test_plan_w6_hessian_is_sparse_with_three_colors():
    x = np.random.default_rng(0).uniform(-1.5, 1.5, 1000)
    p = da.plan(rosen, x, kind="hessian")
    assert p.mode == "sparse" and p.colors == 3 and p.chunk == 3 and p.n_chunks == 1
    assert p.nnz == 2998
    for text in ("n_in=1000", "3 colors", "2998 nonzeros", "0.30%", "budget"):
        assert text in p.reason
    assert p.costs["sparse"] < p.costs["fwd-rev"] / 10


def test_plan_jacobian_scalar_and_sparse():
    p = da.plan(lambda x: np.sum(x ** 2), np.ones(384))
    assert p.mode == "rev" and "n_in=384, n_out=1" in p.reason
    q = da.plan(lambda x: np.sin(x) * x[::-1], np.ones(384))
    assert q.mode == "sparse" and q.colors == 2 and q.direction == "fwd"
    assert "column coloring" in q.reason


def test_plan_dense_hessian_does_not_pick_sparse():
    x = lattice(12)
    p = da.plan(lj, x, kind="hessian")
    assert p.mode in ("fwd-rev", "structured")
    assert p.costs["sparse"] >= p.costs["fwd-rev"] * 0.9
    assert "sparse" in p.reason


def test_plan_is_cached_per_function_and_shape():
    f = lambda x: np.sum(np.exp(x))
    p1 = da.plan(f, np.ones(5), kind="hessian")
    assert da.plan(f, np.zeros(5), kind="hessian") is p1
    assert da.plan(f, np.ones(6), kind="hessian") is not p1
    assert da.plan(f, np.ones(5), kind="hessian", memory_budget="1MB") is not p1
    assert da.plan(f, np.ones(5), kind="jacobian") is not p1
    clear_cache()
    assert da.plan(f, np.ones(5), kind="hessian") is not p1


def test_plan_jacobian_of_several_outputs_is_forward():
    f = lambda x: (x[:2] * 3.0, np.sum(x ** 2))
    x = np.ones(100)
    assert da.plan(f, x).mode == "fwd"
    ja, jb = da.jacobian(f)(x)
    np.testing.assert_allclose(ja, 3.0 * np.eye(100)[:2])
    np.testing.assert_allclose(jb, 2.0 * x)


def test_plan_errors():
    with pytest.raises(ValueError, match="'jacobian', 'hessian'"):
        da.plan(np.sin, np.ones(3), kind="gradient")


def test_plan_value_dependent_pattern_not_reused_for_auto():
    f = lambda x: np.sum(np.sort(x) * np.arange(x.size)) + np.sum(x[1:] * x[:-1])
    x = np.linspace(1.0, 0.0, 40)
    p = da.plan(f, x, kind="hessian")
    h = da.hessian(f)(x)
    np.testing.assert_allclose(h, da.hessian(f, mode="fwd-rev")(x), atol=1e-12)
    assert p.mode in ("fwd-rev", "sparse", "structured")


# ============================================================================
# chunking under the memory budget
# ============================================================================
def count_chunks(monkeypatch):
    calls = []
    real = runner.run_chunks

    def spy(task, n, chunk, **kw):
        calls.append((n, chunk))
        return real(task, n, chunk, **kw)

    monkeypatch.setattr(runner, "run_chunks", spy)
    return calls


def test_hessian_over_budget_runs_in_chunks(monkeypatch):
    x = lattice(16)                               # n = 48
    one_shot = da.hessian(lj, mode="fwd-rev", chunk=48)(x)
    budget = 5 * da.plan(lj, x, kind="hessian", mode="fwd-rev").bytes_per_direction
    p = da.plan(lj, x, kind="hessian", mode="fwd-rev", memory_budget=budget)
    assert p.chunk * p.bytes_per_direction <= budget < 48 * p.bytes_per_direction
    assert p.chunk == 5 and p.n_chunks == 10
    calls = count_chunks(monkeypatch)
    h = da.hessian(lj, mode="fwd-rev", memory_budget=budget)(x)
    assert calls == [(48, p.chunk)]
    np.testing.assert_allclose(h, one_shot, rtol=1e-13, atol=1e-12)
    assert np.array_equal(h, h.T)


def test_single_direction_over_budget_still_computed(monkeypatch):
    x = np.linspace(0.1, 1.0, 10)
    calls = count_chunks(monkeypatch)
    h = da.hessian(f_couple, mode="fwd-rev", memory_budget=1)(x)
    assert calls == [(10, 1)]
    np.testing.assert_allclose(h, da.hessian(f_couple, mode="hyperdual")(x), rtol=1e-12)


def test_sparse_hessian_colors_chunked_under_budget(monkeypatch):
    # Half-bandwidth 3: 7 colors.
    f = lambda x: sum(np.sum(x[k:] * x[:-k] ** 2) for k in (1, 2, 3)) + np.sum(np.cos(x))
    x = np.linspace(-1, 1, 60)
    ref = da.hessian(f, mode="fwd-rev")(x)
    budget = 3 * da.plan(f, x, kind="hessian", mode="sparse").bytes_per_direction
    p = da.plan(f, x, kind="hessian", mode="sparse", memory_budget=budget)
    assert p.colors == 7 and p.chunk == 3 and p.n_chunks == 3
    calls = count_chunks(monkeypatch)
    h = da.hessian(f, mode="sparse", memory_budget=budget)(x)
    assert calls == [(7, p.chunk)]
    np.testing.assert_allclose(h, ref, rtol=1e-13, atol=1e-12)


# ============================================================================
# auto modes through the public transforms
# ============================================================================
CASES = [
    (f_couple, np.array([0.3, -0.7, 1.1, 2.0])),
    (rosen, np.linspace(-1, 1, 50)),
    (lj, lattice(12)),
    (lambda x: np.sum(np.where(x > 0, x ** 3, np.sin(x))) + x.mean() ** 2,
     np.linspace(-1, 1, 40)),
]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_hessian_auto_matches_fixed_and_is_symmetric(i):
    f, x = CASES[i]
    ref = da.hessian(f, mode="fwd-rev")(x)
    for mode in ("auto", "fwd-rev", "rev-rev", "sparse"):
        h = da.hessian(f, mode=mode)(x)
        assert np.array_equal(h, h.T), mode
        np.testing.assert_allclose(h, ref, rtol=1e-11, atol=1e-10 * np.abs(ref).max())
    hs = da.hessian(f, csr=True)(x)
    assert hs.format == "csr" and (hs != hs.T).nnz == 0
    np.testing.assert_allclose(hs.toarray(), ref, rtol=1e-11, atol=1e-10 * np.abs(ref).max())


def test_hessian_sparse_mode_tuple_argnums_rejected():
    with pytest.raises(ValueError, match="one plain array argument"):
        da.hessian(lambda a, b: np.sum(a * b), argnums=(0, 1), mode="sparse")(np.ones(3),
                                                                               np.ones(3))


def test_jacobian_auto_sparse_and_csr():
    f = lambda x: np.tanh(x[1:] - x[:-1]) * x[1:]
    x = np.linspace(-1, 1, 100)
    ref = da.jacfwd(f)(x)
    assert da.plan(f, x).mode == "sparse"
    np.testing.assert_allclose(da.jacobian(f)(x), ref, rtol=1e-14)
    j = da.jacobian(f, csr=True)(x)
    assert j.format == "csr" and j.nnz == 198
    np.testing.assert_allclose(j.toarray(), ref, rtol=1e-14)
    for mode in ("fwd", "rev", "sparse"):
        np.testing.assert_allclose(da.jacobian(f, mode=mode)(x), ref, rtol=1e-14)
        np.testing.assert_allclose(da.jacobian(f, mode=mode, csr=True)(x).toarray(), ref,
                                   rtol=1e-14)


def test_jacobian_chunk_follows_budget(monkeypatch):
    a = np.random.default_rng(3).normal(size=(40, 40))
    f = lambda x: np.tanh(a @ x)
    x = np.linspace(-1, 1, 40)
    p = da.plan(f, x, mode="fwd", memory_budget=2000)
    assert 1 <= p.chunk < 40
    np.testing.assert_allclose(da.jacobian(f, mode="fwd", memory_budget=2000)(x),
                               da.jacfwd(f)(x), rtol=1e-14)
