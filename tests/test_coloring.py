"""Colorings (distance-2 columns/rows, star) and compressed evaluation:
color counts on bands and blocks, validity, exact recovery, replay."""
import numpy as np
import pytest

import dualad as da
from dualad.mixed.coloring import (
    column_coloring,
    is_star_coloring,
    row_coloring,
    seed_matrix,
    star_coloring,
)
from dualad.mixed.compressed import sparse_hessian, sparse_jacobian
from dualad.mixed.replay import record
from dualad.mixed.runner import ExecOptions


def band(n, k):
    i = np.arange(n)
    return np.abs(i[:, None] - i[None, :]) <= k


def blocks(n_blocks, size):
    return np.kron(np.eye(n_blocks, dtype=bool), np.ones((size, size), dtype=bool))


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_hessian_ref(x):
    n = x.size
    a, b = x[:-1], x[1:]
    diag = np.zeros(n)
    diag[:-1] = 1200.0 * a * a - 400.0 * b + 2.0
    diag[1:] += 200.0
    h = np.diag(diag)
    h[np.arange(n - 1), np.arange(1, n)] = -400.0 * a
    h[np.arange(1, n), np.arange(n - 1)] = -400.0 * a
    return h


pytestmark = pytest.mark.usefixtures("fresh_cache")


# ============================================================================
# color counts
# ============================================================================
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_band_uses_its_bandwidth(k):
    p = band(60, k)
    assert column_coloring(p).n_colors == 2 * k + 1
    assert row_coloring(p).n_colors == 2 * k + 1
    s = star_coloring(p)
    assert s.n_colors == 2 * k + 1
    assert is_star_coloring(p, s.colors)


def test_tridiagonal_three_colors():
    s = star_coloring(band(1000, 1))
    assert s.n_colors == 3
    assert set(np.unique(s.colors)) == {0, 1, 2}


@pytest.mark.parametrize("size", [2, 4, 7])
def test_block_diagonal_uses_block_size(size):
    p = blocks(9, size)
    assert column_coloring(p).n_colors == size
    assert star_coloring(p).n_colors == size


def test_arrowhead_star_beats_distance_two():
    # One dense row/column plus the diagonal: a star centred on vertex 0.
    n = 30
    p = np.eye(n, dtype=bool)
    p[0, :] = p[:, 0] = True
    assert star_coloring(p).n_colors == 2
    assert column_coloring(p).n_colors == n


def test_diagonal_and_empty():
    assert column_coloring(np.eye(5, dtype=bool)).n_colors == 1
    assert star_coloring(np.eye(5, dtype=bool)).n_colors == 1
    assert column_coloring(np.zeros((3, 4), dtype=bool)).n_colors == 1
    assert row_coloring(np.ones((1, 6), dtype=bool)).n_colors == 1


def test_seed_matrix():
    np.testing.assert_array_equal(seed_matrix(np.array([0, 1, 0, 2]), 3),
                                  [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


def test_dense_pattern_gets_one_color_each():
    p = np.ones((12, 12), dtype=bool)
    s = star_coloring(p)
    assert s.n_colors == 12 and is_star_coloring(p, s.colors)
    assert column_coloring(p).n_colors == 12


def test_is_star_coloring_rejects_bicolored_path():
    path = band(4, 1)
    assert not is_star_coloring(path, np.array([0, 1, 0, 1]))
    assert is_star_coloring(path, np.array([0, 1, 0, 2]))
    assert not is_star_coloring(path, np.array([0, 0, 1, 2]))     # not proper


# ============================================================================
# exact recovery on random patterns
# ============================================================================
@pytest.mark.parametrize("seed", range(8))
def test_star_and_column_recovery_exact_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    n = 40
    a = rng.random((n, n)) < 0.08
    a = a | a.T | np.eye(n, dtype=bool)
    h = rng.normal(size=(n, n))
    h = (h + h.T) * a
    s = star_coloring(a)
    assert is_star_coloring(a, s.colors)
    compressed = seed_matrix(s.colors, s.n_colors) @ h      # row c = (H S)^T
    dense = s.to_dense(compressed)
    np.testing.assert_array_equal(dense, h)
    csr = s.to_csr(compressed)
    np.testing.assert_array_equal(csr.toarray(), h)
    assert (csr != csr.T).nnz == 0
    # the same random graphs through the column (distance-2) coloring
    c = column_coloring(a)
    assert _is_distance2(a, c.colors)
    b = (h @ seed_matrix(c.colors, c.n_colors).T).T     # (colors, rows)
    np.testing.assert_array_equal(c.to_dense(b), h)


@pytest.mark.parametrize("seed", range(6))
def test_column_and_row_recovery_exact(seed):
    rng = np.random.default_rng(100 + seed)
    j = rng.normal(size=(25, 35)) * (rng.random((25, 35)) < 0.12)
    c = column_coloring(j != 0)
    fwd = (j @ seed_matrix(c.colors, c.n_colors).T).T           # one jvp per color
    np.testing.assert_array_equal(c.to_dense(fwd), j)
    r = row_coloring(j != 0)
    rev = seed_matrix(r.colors, r.n_colors) @ j                 # one vjp per color
    np.testing.assert_array_equal(r.to_dense(rev), j)
    np.testing.assert_array_equal(r.to_csr(rev).toarray(), j)


def test_coloring_accepts_scipy_pattern():
    sp = pytest.importorskip("scipy.sparse")
    p = sp.csr_matrix(band(20, 2))
    assert star_coloring(p).n_colors == 5
    assert column_coloring(p).n_colors == 5


# ============================================================================
# compressed evaluation through dualad
# ============================================================================
def test_w6_rosenbrock_sparse_hessian_three_colors_exact():
    x = np.random.default_rng(0).uniform(-1.5, 1.5, 1000)
    h = sparse_hessian(rosen, x)
    assert h.shape == (1000, 1000) and h.nnz == 2998
    np.testing.assert_allclose(h.toarray(), rosen_hessian_ref(x), rtol=1e-13, atol=1e-9)
    assert (h != h.T).nnz == 0
    assert da.plan(rosen, x, kind="hessian").colors == 3
    dense = sparse_hessian(rosen, x, csr=False)
    assert dense.shape == (1000, 1000)
    np.testing.assert_array_equal(dense, h.toarray())


def test_banded_hessian_uses_bandwidth_colors():
    n, k = 50, 2
    a = np.where(band(n, k), np.random.default_rng(1).normal(size=(n, n)), 0.0)
    a = a + a.T
    f = lambda x: np.sum(np.tanh(a @ x) ** 2) * 0.0 + 0.5 * x @ (a @ x) + np.sum(x ** 4)
    x = np.linspace(-1, 1, n)
    h = sparse_hessian(f, x)
    ref = da.hessian(f, mode="fwd-rev")(x)
    np.testing.assert_allclose(h.toarray(), ref, rtol=1e-12, atol=1e-12)
    from dualad.mixed.patterns import coloring_for
    assert coloring_for(f, (x,), (0,), "hessian").n_colors == 2 * k + 1


def test_block_diagonal_hessian_colors():
    def f(x):
        r = x.reshape(-1, 3)
        return np.sum(np.prod(r, axis=1) ** 2) + np.sum(np.sin(r))
    x = np.linspace(0.1, 1.3, 12)
    from dualad.mixed.patterns import coloring_for
    assert coloring_for(f, (x,), (0,), "hessian").n_colors == 3
    np.testing.assert_allclose(sparse_hessian(f, x, csr=False),
                               da.hessian(f, mode="fwd-rev")(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("direction", ["fwd", "rev", "auto"])
def test_sparse_jacobian_directions(direction):
    f = lambda x: np.concatenate([np.tanh(x[1:] - x[:-1]), np.cumsum(x[:3])])
    x = np.linspace(-1, 2, 30)
    ref = da.jacfwd(f)(x)
    j = sparse_jacobian(f, x, direction=direction)
    np.testing.assert_allclose(j.toarray(), ref, rtol=1e-13, atol=1e-15)
    jd = sparse_jacobian(f, x, direction=direction, csr=False)
    assert jd.shape == ref.shape
    np.testing.assert_allclose(jd, ref, rtol=1e-13, atol=1e-15)


def test_sparse_jacobian_bandwidth_colors():
    f = lambda x: x[2:] * x[1:-1] - x[:-2]       # 3 consecutive inputs per row
    from dualad.mixed.patterns import coloring_for
    x = np.linspace(1, 2, 40)
    assert coloring_for(f, (x,), (0,), "jacobian-fwd").n_colors == 3
    np.testing.assert_allclose(sparse_jacobian(f, x, csr=False), da.jacfwd(f)(x))


def test_sparse_hessian_other_args_and_chunks():
    f = lambda x, w: np.sum(w * x[1:] * x[:-1] ** 3)
    x, w = np.linspace(0.5, 1.5, 20), np.linspace(1, 2, 19)
    ref = da.hessian(f, mode="fwd-rev")(x, w)
    for chunk in (None, 1, 2):
        h = sparse_hessian(f, x, args=(x, w), argnum=0, options=ExecOptions(chunk=chunk), csr=False)
        np.testing.assert_allclose(h, ref, rtol=1e-13, atol=1e-13)
    # A new w (same structure): replayed with the new values.
    w2 = w * 3.0
    np.testing.assert_allclose(sparse_hessian(f, x, args=(x, w2), argnum=0, csr=False),
                               3.0 * ref, rtol=1e-13, atol=1e-13)


# ============================================================================
# replay of the single pass
# ============================================================================
def test_replay_matches_and_follows_new_points():
    x = np.random.default_rng(2).uniform(-1, 1, 200)
    first = sparse_hessian(rosen, x).toarray()
    second = sparse_hessian(rosen, x).toarray()        # replayed
    np.testing.assert_array_equal(first, second)
    y = x + 0.25
    np.testing.assert_allclose(sparse_hessian(rosen, y).toarray(), rosen_hessian_ref(y),
                               rtol=1e-13, atol=1e-9)
    np.testing.assert_array_equal(sparse_hessian(rosen, y, replay=False).toarray(),
                                  sparse_hessian(rosen, y).toarray())


def test_replay_follows_integer_index_arguments():
    f = lambda x, idx: np.sum(x[idx] ** 2 * x[idx[::-1]])
    x = np.linspace(0.5, 1.5, 12)
    for idx in (np.array([0, 3, 5]), np.array([0, 3, 5]), np.array([1, 4, 6]),
                np.array([2, 4, 6])):
        got = sparse_hessian(f, x, args=(x, idx), argnum=0, csr=False)
        np.testing.assert_allclose(got, da.hessian(f, mode="fwd-rev")(x, idx), rtol=1e-13)


def test_replay_notices_a_changed_closure():
    scale = [1.0]
    f = lambda x: scale[0] * np.sum(x[1:] * x[:-1] ** 2)
    x = np.linspace(0.5, 1.5, 10)
    h1 = sparse_hessian(f, x).toarray()
    sparse_hessian(f, x)
    scale[0] = 3.0
    np.testing.assert_allclose(sparse_hessian(f, x).toarray(), 3.0 * h1, rtol=1e-14)


def test_branching_function_is_never_replayed():
    f = lambda x: np.sum(np.where(x > 0, x ** 3, -(x ** 2)) * x[::-1])
    out, rep = record(lambda x: np.where(x > 0, x, -x), (np.ones(3),))
    # (the comparison is recorded: the replay follows the condition)
    np.testing.assert_array_equal(rep(np.array([-1.0, 2.0, -3.0]))[0], [1.0, 2.0, 3.0])
    for x in (np.linspace(-1, 1, 8), np.linspace(0.1, 1, 8), np.linspace(-1, -0.1, 8)):
        for _ in range(2):
            np.testing.assert_allclose(sparse_hessian(f, x, csr=False),
                                       da.hessian(f, mode="fwd-rev")(x), rtol=1e-13)


def test_record_replay_unit():
    out, rep = record(lambda x, y: np.sum(np.sin(x) * y), (np.zeros(3), np.ones(3)))
    assert rep is not None and len(rep) == 3
    np.testing.assert_allclose(rep(np.full(3, np.pi / 2), np.arange(3.0))[0], 3.0)
    with pytest.raises(ValueError, match="shape"):
        rep(np.zeros(4), np.zeros(4))
    # A finiteness guard: 1/x at 0 takes the safe branch, so the replay refuses.
    out, rep = record(lambda x: da.grad(lambda z: np.sum(np.sqrt(z)))(x), (np.ones(2),))
    assert rep is not None
    with np.errstate(divide="ignore"):
        assert rep(np.array([0.0, 1.0])) is None
    np.testing.assert_allclose(rep(np.array([4.0, 1.0]))[0], [0.25, 0.5])


# ============================================================================
# colorings at scale (compiled greedy sweeps, no work cap)
# ============================================================================
def _stencil(shape: tuple) -> np.ndarray:
    """Dense boolean pattern of the 2-D 5-point / 3-D 7-point Laplacian."""
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    p = np.eye(n, dtype=bool)
    for axis in range(len(shape)):
        a = np.moveaxis(idx, axis, 0)
        p[a[:-1].ravel(), a[1:].ravel()] = True
        p[a[1:].ravel(), a[:-1].ravel()] = True
    return p


def _is_distance2(pattern, colors) -> bool:
    """Every row's columns have distinct colors (direct column recovery)."""
    p = np.asarray(pattern, dtype=bool)
    return all(len(set(colors[np.nonzero(row)[0]].tolist())) == row.sum() for row in p)


@pytest.mark.parametrize("shape", [(6, 7), (4, 4, 4)])
def test_stencils_are_colored_validly_with_few_colors(shape):
    p = _stencil(shape)
    s = star_coloring(p)
    assert is_star_coloring(p, s.colors)
    assert s.n_colors <= 2 * len(shape) + 2          # a few more than the max degree
    c = column_coloring(p)
    assert _is_distance2(p, c.colors) and c.n_colors <= 2 * (2 * len(shape) + 1)


def test_arrow_pattern_star_colors_in_two():
    n = 30
    p = np.eye(n, dtype=bool)
    p[0, :] = p[:, 0] = True
    s = star_coloring(p)
    assert s.n_colors == 2 and is_star_coloring(p, s.colors)


def test_star_falls_back_to_distance2_where_it_costs_less_work():
    from dualad.mixed import greedy
    n = 60
    p = np.ones((n, n), dtype=bool)
    adj = np.ones((n, n), dtype=bool) & ~np.eye(n, dtype=bool)
    ptr = np.arange(0, n * (n - 1) + 1, n - 1)
    colors, kind = greedy.hessian_colors(ptr, np.nonzero(adj)[1])
    assert kind == "distance-2" and len(set(colors.tolist())) == n
    assert is_star_coloring(p, star_coloring(p).colors)


def test_tridiagonal_million_star_colors_in_three():
    import scipy.sparse as sp
    n = 10**6
    p = sp.diags([np.ones(n - 1), np.ones(n), np.ones(n - 1)], [-1, 0, 1], format="csr")
    s = star_coloring(p)
    assert s.n_colors == 3
    c = column_coloring(p)
    assert c.n_colors == 3
