"""Structured Hessians at scale: the planner's probe pass reused by the
compute (one pass per call), the CSR assembly (compiled and SciPy routes,
int32 indices, exact symmetry), scatter-adds folded per position (the
diagonal blocks of a pair potential), and a 10^4-atom periodic
Lennard-Jones box against the hand-written CSR Hessian."""
import numpy as np
import pytest

import dualad as da
from bench.scaling import lj_cut_energy, lj_cut_hessian_ref, neighbour_list, periodic_lattice
from dualad.mixed import planner
from dualad.structured import api, assemble, hessian_structured, stats
from dualad.structured.tangents import Coo, to_coo

sp = pytest.importorskip("scipy.sparse")


pytestmark = pytest.mark.usefixtures("fresh_cache")


def _box(n_atoms, seed=0):
    x, box = periodic_lattice(n_atoms, seed=seed)
    i, j, shift = neighbour_list(x, box)
    return x, (lambda x: lj_cut_energy(x, i, j, shift)), (i, j, shift)


def _entries(t, ctx):
    return sum(int(np.prod(np.broadcast_shapes(*(np.shape(a) for a in c))))
               for c in to_coo(ctx, t).chunks)


# ============================================================================
# one structured pass per call: the probe's is kept for the compute
# ============================================================================
@pytest.mark.parametrize("csr", [True, False])
def test_probe_pass_is_reused_by_the_compute(csr, monkeypatch):
    # above the replay cap (a replayed pass records its own pass on the first
    # call) and with one probe (a cheap probe is measured twice): the regime
    # of large boxes, where a second pass would cost seconds
    from dualad.mixed import compressed, planner
    monkeypatch.setattr(compressed, "STRUCTURED_REPLAY_MAX", 0)
    monkeypatch.setattr(planner, "STRUCTURED_REPLAY_MAX", 0)
    monkeypatch.setattr(planner, "REPROBE_S", 0.0)
    x, f, nl = _box(216)
    before = stats.passes
    h = da.hessian(f, csr=csr)(x)
    assert stats.passes - before == 1                 # the planner's pass, reused
    assert da.plan(f, x, kind="hessian", csr=csr).mode == "structured"
    ref = lj_cut_hessian_ref(x, *nl)
    fresh = hessian_structured(f, x, csr=csr)         # a pass of its own
    if csr:
        assert abs(h - ref).max() <= 1e-12 * abs(ref).max()
        assert (h != fresh).nnz == 0                  # the same numbers, bit for bit
    else:
        np.testing.assert_allclose(h, ref.toarray(), rtol=0, atol=1e-12 * abs(ref).max())
        np.testing.assert_array_equal(h, fresh)
    before = stats.passes
    da.hessian(f, csr=csr)(x)                         # planned (cached): one pass
    assert stats.passes - before == 1


def test_kept_pass_only_serves_the_same_input():
    f = lambda x: np.sum((x[1:] - x[:-1]) ** 4)
    x, y = np.linspace(0, 1, 6), np.linspace(1, 3, 6)
    with api.keep_probe():
        api.structured_estimate(f, x)
        hy = hessian_structured(f, y)                 # another input: its own pass
        hx = hessian_structured(f, x)                 # the kept pass
        hx2 = hessian_structured(f, x)                # taken once: a new pass
    np.testing.assert_array_equal(hx, hx2)
    np.testing.assert_allclose(hy, da.hessian(f, mode="fwd-rev")(y), rtol=1e-12)
    # outside a block nothing is kept
    api.structured_estimate(f, x)
    assert api._take_kept(x) is None


def test_csr_probe_pattern_replaces_detection(monkeypatch):
    # A CSR structured probe assembles T; the coloring's cost check reads the
    # row degrees off it instead of running sparsity detection.
    x, f, nl = _box(512)

    def no_detection(*a, **k):
        raise AssertionError("sparsity detection ran")
    monkeypatch.setattr(planner, "pattern", no_detection)
    p = da.plan(f, x, kind="hessian", csr=True)
    assert p.mode == "structured"
    assert "sparse skipped: coloring" in p.reason


# ============================================================================
# the CSR assembly
# ============================================================================
def _random_chunks(rng, n, m):
    rows = rng.integers(0, n, size=(3, m, 1))
    cols = rng.integers(0, n, size=(m, 3))
    vals = rng.normal(size=(3, m, 3))
    return [(rows, cols, vals), (rng.integers(0, n, size=m), rng.integers(0, n, size=m),
                                 rng.normal(size=m))]


def _coo_reference(chunks, n):
    r, c, v = [], [], []
    for a, b, w in chunks:
        shape = np.broadcast_shapes(np.shape(a), np.shape(b), np.shape(w))
        r.append(np.broadcast_to(a, shape).ravel())
        c.append(np.broadcast_to(b, shape).ravel())
        v.append(np.broadcast_to(w, shape).ravel())
    return sp.coo_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))),
                         shape=(n, n)).toarray()


@pytest.mark.parametrize("compiled", [False, True])
def test_entries_to_csr_sums_duplicates(compiled):
    rng = np.random.default_rng(3)
    n = 40
    chunks = _random_chunks(rng, n, 500)
    t = assemble.entries_to_csr(chunks, n, compiled=compiled)
    assert t.indices.dtype == np.int32 and t.indptr.dtype == np.int32
    dense = t.toarray()
    np.testing.assert_allclose(dense, _coo_reference(chunks, n), rtol=1e-13, atol=1e-13)
    # no duplicates left: one stored entry per (row, col)
    rows = np.repeat(np.arange(n), np.diff(t.indptr))
    assert len(set(zip(rows.tolist(), t.indices.tolist()))) == t.nnz


def test_compiled_and_scipy_routes_agree_on_a_pair_potential():
    x, f, nl = _box(216)
    t, ctx = api._run(f, x, None)
    chunks = [(e, d, v) for d, e, v in to_coo(ctx, t).chunks]
    a = assemble.entries_to_csr(chunks, ctx.n, compiled=False)
    b = assemble.entries_to_csr(chunks, ctx.n, compiled=True)
    assert a.nnz == b.nnz
    assert abs(a - b).max() <= 1e-14 * abs(a).max()


@pytest.mark.parametrize("structural", [True, False])
def test_symmetrize_is_exact(structural, monkeypatch):
    rng = np.random.default_rng(5)
    n = 30
    a = rng.normal(size=(n, n)) * (rng.random((n, n)) < 0.2)
    if structural:
        a = a + (a.T != 0) * rng.normal(size=(n, n))  # same pattern both ways
    t = assemble.entries_to_csr([np.nonzero(a) + (a[np.nonzero(a)],)], n, compiled=False)
    for compiled_min in (0, 1 << 60):             # the in-place average, SciPy's sum
        monkeypatch.setattr(assemble, "COMPILED_MIN", compiled_min)
        h = assemble.symmetrize(t)
        assert h.has_sorted_indices
        assert (h != h.T).nnz == 0                  # exactly symmetric
        np.testing.assert_allclose(h.toarray(), (a + a.T) / 2, rtol=1e-15, atol=0)


def test_python_loops_match_the_compiled_ones(monkeypatch):
    # The loops are plain Python too (without Numba): run them directly.
    rng = np.random.default_rng(7)
    n, m = 12, 200
    rows, cols, vals = rng.integers(0, n, m), rng.integers(0, n, m), rng.normal(size=m)
    counts = np.bincount(rows, minlength=n)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    ind, dat = np.empty(m, np.int32), np.empty(m)
    assemble._scatter(rows, cols, vals, indptr[:-1].copy(), ind, dat)
    nnz = assemble._dedupe(indptr, ind, dat, n)
    t = sp.csr_matrix((dat[:nnz], ind[:nnz], indptr), shape=(n, n))
    np.testing.assert_allclose(t.toarray(), _coo_reference([(rows, cols, vals)], n),
                               rtol=1e-14, atol=1e-14)
    # the in-place average: refused on a pattern that is not symmetric (a
    # cycle: every row of t and of its transpose holds one entry) ...
    c = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), (np.array([0, 1, 2]), np.array([1, 2, 0]))),
                      shape=(3, 3))
    ct = c.T.tocsr()
    assert not assemble._average(c.indptr, c.indices, c.data, ct.indptr, ct.indices,
                                 ct.data, 3)
    for compiled_min in (0, 1 << 60):          # compiled: refused, then SciPy's sum
        monkeypatch.setattr(assemble, "COMPILED_MIN", compiled_min)
        np.testing.assert_array_equal(assemble.symmetrize(c).toarray(),
                                      (c.toarray() + c.toarray().T) / 2)
    # ... and exact on one that is
    u = (t + t.T).tocsr()
    u.sort_indices()
    w = u.T.tocsr()
    assert assemble._average(u.indptr, u.indices, u.data, w.indptr, w.indices, w.data, n)
    np.testing.assert_allclose(w.toarray(), (u.toarray() + u.toarray().T) / 2, rtol=1e-15)


# ============================================================================
# scatter-adds folded per position
# ============================================================================
def test_pair_potential_diagonal_blocks_are_folded():
    x, f, nl = _box(216)
    t, ctx = api._run(f, x, None)
    assert isinstance(t, Coo)
    n_pairs = nl[0].size
    # off-diagonal blocks: 9 entries per pair each way; diagonal blocks:
    # 9 per atom, once per side (every atom but the last is some pair's i)
    assert _entries(t, ctx) <= 18 * n_pairs + 18 * (x.size // 3)
    h = hessian_structured(f, x, csr=True)
    ref = lj_cut_hessian_ref(x, *nl)
    assert h.nnz == ref.nnz
    assert abs(h - ref).max() <= 1e-12 * abs(ref).max()


@pytest.mark.parametrize("seed", [0, 1])
def test_fold_with_repeats_and_unreached_positions(seed):
    # Random pairs (repeats, atoms no pair reaches), a chain and a cutoff by
    # np.where: folded and unfolded terms side by side, against fwd-rev.
    rng = np.random.default_rng(seed)
    n_atoms = 9
    i = rng.integers(0, n_atoms - 2, 25)
    j = (i + 1 + rng.integers(0, 2, 25)) % (n_atoms - 1)

    def f(x):
        r = x.reshape(-1, 3)
        d = r[i] - r[j]
        r2 = np.sum(d * d, axis=1) + 0.5
        return np.sum(np.where(r2 < 6.0, 1.0 / r2, 0.0)) + np.sum(r[:, 0] ** 3)

    x = rng.normal(size=3 * n_atoms)
    ref = da.hessian(f, mode="fwd-rev")(x)
    h = hessian_structured(f, x)
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    hc = hessian_structured(f, x, csr=True)
    np.testing.assert_allclose(hc.toarray(), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


# ============================================================================
# a 10^4-atom periodic box (small enough for CI: about a second)
# ============================================================================
def test_periodic_lj_ten_thousand_atoms_against_hand_written():
    x, f, nl = _box(10_000)
    h = da.hessian(f, csr=True)(x)
    ref = lj_cut_hessian_ref(x, *nl)
    assert h.shape == ref.shape == (x.size, x.size)
    assert h.indices.dtype == np.int32
    assert h.nnz == ref.nnz
    assert abs(h - ref).max() <= 1e-12 * abs(ref).max()
    assert (h != h.T).nnz == 0
    v = np.random.default_rng(1).normal(size=x.shape)
    hv = da.hvp(f, (x,), (v,))[1]
    np.testing.assert_allclose(h @ v, hv, rtol=1e-10, atol=1e-10 * np.abs(hv).max())
