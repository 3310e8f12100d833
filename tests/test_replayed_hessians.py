"""Replayed Hessian passes and the O(nnz) star coloring: the colored and
the structured passes are recorded once and replayed compiled after; every
replay must equal a fresh interpreted pass (to ~1e-14), follow new points,
notice a changed closure, never hand out its own constant arrays, and fall
back where a value decides the computation. The star coloring's recovery
equals the dense Hessian on random, banded, arrow and non-symmetric
patterns, through both of its counting paths."""
import numpy as np
import pytest

import dualad as da
from bench.workloads import lj_energy, lj_hessian_ref, lj_positions
from dualad.mixed import coloring as coloring_mod
from dualad.mixed.coloring import is_star_coloring, seed_matrix, star_coloring
from dualad.mixed.compressed import sparse_hessian, structured_hessian
from dualad.mixed.patterns import _cached

sp = pytest.importorskip("scipy.sparse")


pytestmark = pytest.mark.usefixtures("fresh_cache")


def _programs(fn, x, kind):
    return _cached(fn, "colorings", "replay-" + kind, (x,), (0,), True)[2]


def _recovers(p, h):
    """The star coloring of pattern ``p`` reads ``h`` back exactly from
    ``B = S H`` (one row per color)."""
    s = star_coloring(p)
    assert is_star_coloring(p | p.T, s.colors)
    b = seed_matrix(s.colors, s.n_colors) @ h
    np.testing.assert_array_equal(s.to_dense(b), h)
    np.testing.assert_array_equal(s.to_csr(b).toarray(), h)
    return s


def _symmetric_values(p, rng):
    p = p | p.T
    h = np.where(p, rng.standard_normal(p.shape), 0.0)
    return p, h + h.T


# ============================================================================
# star coloring: recovery equals the dense Hessian
# ============================================================================
@pytest.mark.parametrize("seed", range(5))
def test_star_recovery_random_patterns(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    a = rng.random((n, n)) < rng.uniform(0.02, 0.3)
    p, h = _symmetric_values(a | np.diag(rng.random(n) < 0.5), rng)
    _recovers(p, h)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_star_recovery_banded(k):
    rng = np.random.default_rng(k)
    i = np.arange(50)
    p, h = _symmetric_values(np.abs(i[:, None] - i[None, :]) <= k, rng)
    assert _recovers(p, h).n_colors <= 2 * k + 1


def test_star_recovery_arrow():
    rng = np.random.default_rng(7)
    n = 40
    p = np.eye(n, dtype=bool)
    p[0, :] = p[:, 0] = True
    p, h = _symmetric_values(p, rng)
    assert _recovers(p, h).n_colors == 2


def test_non_symmetric_pattern_is_colored_as_its_symmetrisation():
    # Only the upper triangle given: the coloring covers P | P.T (what a
    # symmetric Hessian with that pattern needs), as from the full pattern.
    rng = np.random.default_rng(3)
    full, h = _symmetric_values(rng.random((30, 30)) < 0.1, rng)
    upper = np.triu(full)
    a, b = star_coloring(upper), star_coloring(full)
    np.testing.assert_array_equal(a.colors, b.colors)
    np.testing.assert_array_equal(a.source, b.source)
    np.testing.assert_array_equal(a.to_dense(seed_matrix(a.colors, a.n_colors) @ h), h)
    # and a scipy (CSR, int32 indices) pattern gives the same coloring
    c = star_coloring(sp.csr_matrix(upper))
    np.testing.assert_array_equal(c.source, a.source)


@pytest.mark.parametrize("seed", range(3))
def test_star_source_paths_agree(monkeypatch, seed):
    # The recovery map three ways: the compiled pass, vectorised NumPy with
    # a (rows, colors) count table, and NumPy with sorted keys (many colors).
    from dualad.mixed import greedy
    rng = np.random.default_rng(seed)
    p, h = _symmetric_values(rng.random((60, 60)) < 0.2, rng)
    sources = [star_coloring(p).source]
    monkeypatch.setattr(greedy, "compiled_star_source", lambda: None)
    sources.append(star_coloring(p).source)
    monkeypatch.setattr(coloring_mod, "_table_fits", lambda *a: False)
    s = star_coloring(p)
    sources.append(s.source)
    for other in sources[1:]:
        np.testing.assert_array_equal(other, sources[0])
    np.testing.assert_array_equal(s.to_dense(seed_matrix(s.colors, s.n_colors) @ h), h)


def test_star_source_rejects_a_coloring_that_is_not_star():
    from dualad.mixed import greedy
    # path 0-1-2-3 colored 0,1,0,1: the path is bicolored, (1, 2) unreadable
    ptr = np.array([0, 2, 5, 8, 10])
    cols = np.array([0, 1, 0, 1, 2, 1, 2, 3, 2, 3])
    colors = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="not a star coloring"):
        coloring_mod._star_source(ptr, cols, colors, 2, 4)
    kernel = greedy.compiled_star_source()
    if kernel is not None:
        assert not kernel(ptr, cols, colors, 2)[1]
    assert greedy.star_source(ptr, cols, colors, 2)[1] is False     # the Python loop


# ============================================================================
# the colored pass, replayed compiled
# ============================================================================
def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_sparse_replay_is_compiled_and_equals_the_interpreted_pass():
    from dualad.mixed.patterns import coloring_for
    x = np.random.default_rng(0).uniform(-1.0, 1.0, 500)
    first = sparse_hessian(rosen, x)
    prog = coloring_for(rosen, (x,), (0,), "hessian").programs["hessian"]
    assert hasattr(prog, "source")                       # compile_program's function
    for y in (x, x * 0.5 + 0.1, -x):
        replayed = sparse_hessian(rosen, y).toarray()
        fresh = sparse_hessian(rosen, y, replay=False).toarray()
        np.testing.assert_allclose(replayed, fresh, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(first.toarray(), sparse_hessian(rosen, x).toarray())


def test_sparse_replay_of_a_quadratic_hands_out_fresh_arrays():
    c = np.linspace(1.0, 2.0, 39)
    f = lambda x: np.sum(c * x[1:] * x[:-1])       # constant Hessian
    x = np.ones(40)
    a = sparse_hessian(f, x, csr=False)
    b = sparse_hessian(f, x, csr=False)            # replayed
    b[...] = 7.0
    np.testing.assert_array_equal(sparse_hessian(f, x, csr=False), a)


# ============================================================================
# the structured pass, replayed compiled
# ============================================================================
@pytest.mark.parametrize("csr", [False, True])
def test_structured_replay_equals_interpreted_and_follows_new_points(csr):
    x = lj_positions(12)
    h = da.hessian(lj_energy, mode="structured", csr=csr)
    h(x)
    programs = _programs(lj_energy, x, "structured-csr" if csr else "structured")
    assert callable(programs.get("structured-csr" if csr else "structured"))
    for y in (x, x * 1.01, x + 0.02):
        got = h(y)
        got = got.toarray() if csr else got
        ref = lj_hessian_ref(y)
        fresh = structured_hessian(lj_energy, lj_energy, (y,), 0, csr, replay=False)
        fresh = fresh.toarray() if csr else fresh
        np.testing.assert_allclose(got, fresh, rtol=1e-14, atol=1e-14 * np.abs(ref).max())
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_structured_replay_notices_a_changed_closure():
    scale = np.array([1.0])
    f = lambda x: scale[0] * np.sum(x[1:] * x[:-1] ** 2)
    x = np.linspace(0.5, 1.5, 10)
    h = da.hessian(f, mode="structured")
    h1 = h(x)
    h(x)
    scale[0] = 3.0
    np.testing.assert_allclose(h(x), 3.0 * h1, rtol=1e-14)


def test_structured_replay_of_a_quadratic_hands_out_fresh_arrays():
    f = lambda x: np.sum(x[1:] * x[:-1]) + np.sum(x * x)
    x = np.ones(6)
    h = da.hessian(f, mode="structured")
    a = h(x)
    b = h(x)                                    # replayed (a constant program output)
    b[...] = -1.0
    np.testing.assert_array_equal(h(x), a)


def test_structured_branching_function_stays_exact():
    def f(x):
        s = np.sum(x)
        return np.sum(x ** 3) if s > 0 else np.sum(np.sin(x) * x[::-1])
    h = da.hessian(f, mode="structured")
    for x in (np.linspace(0.1, 1, 7), np.linspace(-1, -0.1, 7), np.linspace(0.2, 1, 7)):
        for _ in range(2):
            np.testing.assert_allclose(h(x), da.hessian(f, mode="fwd-rev")(x), rtol=1e-13,
                                       atol=1e-14)


def test_structured_replay_inside_jit_and_under_transforms():
    f = lambda x: np.sum(x[1:] * x[:-1] ** 2)
    x = np.linspace(0.5, 1.5, 8)
    h = da.hessian(f, mode="structured")
    ref = da.hessian(f, mode="fwd-rev")(x)
    np.testing.assert_allclose(da.jit(h)(x), ref, rtol=1e-14)
    np.testing.assert_allclose(da.jit(h)(x + 0.1), da.hessian(f, mode="fwd-rev")(x + 0.1),
                               rtol=1e-14)
    # a Hessian inside jacfwd (traced input): falls back, stays exact
    d = da.jacfwd(lambda z: np.trace(h(z)))(x)
    d_ref = da.jacfwd(lambda z: np.trace(da.hessian(f, mode="fwd-rev")(z)))(x)
    np.testing.assert_allclose(d, d_ref, rtol=1e-13)


# ============================================================================
# the plan at small N: whichever mode, exact
# ============================================================================
def test_lj_n32_auto_plan_is_exact_on_repeated_calls():
    x = lj_positions(32)
    p = da.plan(lj_energy, x, kind="hessian")
    assert p.mode in ("structured", "fwd-rev")
    h = da.hessian(lj_energy)
    ref = lj_hessian_ref(x)
    for _ in range(3):
        got = h(x)
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())
        np.testing.assert_array_equal(got, got.T)


def test_jit_compares_sparse_results_without_densifying():
    from dualad.mixed.jit import _agree
    n = 10**6                                   # dense: 8 TB
    ptr = np.array([0, 1] + [2] * (n - 1))
    a = sp.csr_matrix((np.array([1.0, 2.0]), np.array([0, n - 1]), ptr), shape=(n, n))
    assert _agree(a, a.copy())
    b = a.copy()
    b.data[1] += 1e-6
    assert not _agree(a, b)
    x = np.linspace(-1.2, 1.1, 2000)
    h = da.jit(da.hessian(rosen, csr=True, mode="sparse"))
    for y in (x, x * 0.9):
        np.testing.assert_allclose(h(y).toarray(), sparse_hessian(rosen, y, replay=False).toarray(),
                                   rtol=1e-14, atol=0)


@pytest.mark.parametrize("seed", range(4))
def test_greedy_lower_bounds_never_change_the_coloring(seed):
    # The bound only skips sweeps that could not use fewer colors: the
    # result equals the full search over both orders.
    from dualad.mixed import greedy
    rng = np.random.default_rng(seed)
    n = 50
    a = rng.random((n, n)) < (0.03 if seed % 2 else 0.15)
    p = (a | a.T) & ~np.eye(n, dtype=bool)
    ptr = np.concatenate([[0], np.cumsum(p.sum(axis=1))]).astype(np.int64)
    idx = np.nonzero(p)[1].astype(np.int64)
    kernel = greedy._compiled()[1]
    sweeps = []

    def sweep(order):
        sweeps.append(1)
        return kernel(ptr, idx, order)
    full = greedy._best(sweep, np.diff(ptr))
    bound = greedy._star_lower_bound(ptr, idx, np.diff(ptr))
    np.testing.assert_array_equal(greedy.star(ptr, idx), greedy._best(sweep, np.diff(ptr), bound))
    assert full.max() + 1 >= bound
    assert greedy.star(ptr, idx).max() == full.max()


def test_star_lower_bound_on_small_graphs():
    from dualad.mixed import greedy

    def bound(edges, n):
        p = np.zeros((n, n), dtype=bool)
        for i, j in edges:
            p[i, j] = p[j, i] = True
        ptr = np.concatenate([[0], np.cumsum(p.sum(axis=1))]).astype(np.int64)
        return greedy._star_lower_bound(ptr, np.nonzero(p)[1], np.diff(ptr))
    assert bound([], 3) == 1
    assert bound([(0, 1)], 3) == 2
    assert bound([(0, 1), (0, 2), (0, 3)], 4) == 2            # a star: two colors do
    assert bound([(0, 1), (1, 2), (2, 3)], 4) == 3            # a path on four vertices
    assert bound([(0, 1), (1, 2), (2, 0)], 3) == 3            # a triangle


def test_structured_pass_past_the_size_cap_is_interpreted(monkeypatch):
    from dualad.mixed import compressed
    f = lambda x: np.sum(x[1:] * x[:-1] ** 2)
    x = np.linspace(0.5, 1.5, 20)
    monkeypatch.setattr(compressed, "STRUCTURED_REPLAY_MAX", 10)
    h = da.hessian(f, mode="structured")
    for _ in range(2):
        np.testing.assert_allclose(h(x), da.hessian(f, mode="fwd-rev")(x), rtol=1e-14)
    assert _programs(f, x, "structured") is None           # nothing recorded or cached
