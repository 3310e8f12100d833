"""Sparsity detection: Jacobian and Hessian patterns of plain NumPy code,
checked against the nonzeros of dense derivatives, the cache, the API."""
import numpy as np
import pytest

import dualad as da
from conftest import lj_flat
from dualad.mixed.cache import clear_cache
from dualad.mixed.patterns import pattern
from dualad.mixed.sparsity import hessian_pattern, jacobian_pattern

RNG = np.random.default_rng(7)
A_BAND = np.where(np.abs(np.subtract.outer(np.arange(8), np.arange(8))) <= 1,
                  RNG.normal(size=(8, 8)), 0.0)


pytestmark = pytest.mark.usefixtures("fresh_cache")


def nonzeros_jac(f, x, trials=3):
    """Union of the nonzeros of the dense Jacobian at a few random points."""
    out = None
    for t in range(trials):
        xx = x + np.random.default_rng(t).uniform(0.1, 0.3, x.shape)
        j = np.reshape(da.jacfwd(f)(xx), (-1, x.size)) != 0
        out = j if out is None else out | j
    return out


# Functions whose pattern the tracer finds exactly.
EXACT = {
    "elementwise": lambda x: np.sin(x) * np.exp(x) + x ** 3,
    "shifted": lambda x: x[1:] * x[:-1] - np.tanh(x[2:].sum()) * 0.0 + x[1:] ** 2,
    "reverse": lambda x: x[::-1] * x,
    "fancy": lambda x: x[np.array([0, 3, 3, 5])] * x[np.array([1, 1, 2, 7])],
    "reshape_T": lambda x: (x.reshape(2, 4).T * np.arange(1.0, 3.0)).ravel(),
    "sum_axis": lambda x: np.sum(x.reshape(2, 4) ** 2, axis=0),
    "cumsum": lambda x: np.cumsum(x ** 2),
    "prod": lambda x: np.prod(x.reshape(4, 2), axis=1),
    "norm": lambda x: np.linalg.norm(x.reshape(4, 2), axis=1),
    "concat": lambda x: np.concatenate([x[:3] * 2.0, np.ones(2), np.cos(x[5:])]),
    "stack": lambda x: np.stack([x[:4], x[4:] ** 2], axis=1).ravel(),
    "broadcast": lambda x: (x.reshape(-1, 1) * np.ones((1, 3))).ravel(),
    "matmul_band": lambda x: np.tanh(A_BAND @ x),
    "matmul_right": lambda x: x @ A_BAND,
    "einsum": lambda x: np.einsum("ij,j->i", A_BAND, x ** 2),
    "constant_zero_factor": lambda x: x * np.array([1.0, 0, 2, 0, 3, 0, 4, 0]),
    "difference": lambda x: x[1:] ** 2 - x[:-1] ** 2,
    "roll": lambda x: np.roll(x, 2) * x,
    "mean": lambda x: np.mean(x.reshape(2, 4), axis=1),
    "outer_diag": lambda x: np.diag(np.outer(x, x)),
    "triu_pairs": lambda x: (x[np.triu_indices(8, 1)[0]] - x[np.triu_indices(8, 1)[1]]) ** 2,
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_jacobian_pattern_exact(name):
    f = EXACT[name]
    x = np.linspace(0.3, 1.1, 8)
    got = jacobian_pattern(f, x)
    want = nonzeros_jac(f, x)
    np.testing.assert_array_equal(got, want)


# Functions the tracer handles conservatively: a superset, never a miss.
CONSERVATIVE = {
    "solve": lambda x: np.linalg.solve(np.eye(8) + np.diag(x), np.ones(8)),
    "inv_diag": lambda x: np.diag(np.linalg.inv(np.diag(x) + 4.0 * np.eye(8))),
    "det": lambda x: np.linalg.det(np.diag(x)).reshape(1),
    "where": lambda x: np.where(np.arange(8) % 2 == 0, x, x[::-1] ** 2),
    "max": lambda x: np.max(x.reshape(4, 2), axis=1),
    "clip": lambda x: np.clip(x, 0.2, 0.5) + x[0],
    "matmul_traced": lambda x: x.reshape(2, 4) @ x.reshape(4, 2),
}


@pytest.mark.parametrize("name", sorted(CONSERVATIVE))
def test_jacobian_pattern_is_a_superset(name):
    f = CONSERVATIVE[name]
    x = np.linspace(0.3, 1.1, 8)
    got = jacobian_pattern(f, x)
    want = nonzeros_jac(f, x)
    assert not np.any(want & ~got)


def test_value_dependent_pattern_is_not_reused():
    from dualad.mixed.patterns import volatile_reads
    f = lambda x: np.sort(x ** 3 - x[::-1])
    x = np.linspace(0.3, 1.1, 8)
    p1 = pattern(f, (x,), (0,), "jacobian")
    np.testing.assert_array_equal(p1, np.reshape(da.jacfwd(f)(x), (8, 8)) != 0)
    assert volatile_reads(f, (x,), (0,), "jacobian")
    y = x[np.array([3, 7, 0, 5, 1, 6, 2, 4])]
    p2 = pattern(f, (y,), (0,), "jacobian")          # found again at the new point
    np.testing.assert_array_equal(p2, np.reshape(da.jacfwd(f)(y), (8, 8)) != 0)
    assert not np.array_equal(p1, p2)
    g = lambda x: np.sum(x ** 2)
    pattern(g, (x,), (0,), "hessian")
    assert volatile_reads(g, (x,), (0,), "hessian") == ()


def test_matmul_of_traced_operands_exact():
    f = lambda x: (x.reshape(2, 4) @ x.reshape(4, 2)).ravel()
    x = np.linspace(0.3, 1.1, 8)
    np.testing.assert_array_equal(jacobian_pattern(f, x), nonzeros_jac(f, x))


# ============================================================================
# Hessian patterns (through the reverse gradient)
# ============================================================================
def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_rosenbrock_hessian_is_tridiagonal():
    p = hessian_pattern(rosen, np.linspace(-1, 1, 1000))
    i, j = np.nonzero(p)
    assert np.abs(i - j).max() == 1 and i.size == 2998
    assert np.array_equal(p, p.T)


def test_hessian_pattern_matches_dense_hessian():
    def f(x):
        r = x.reshape(-1, 2)
        d = r[1:] - r[:-1]
        return np.sum(np.sqrt(np.sum(d * d, axis=1))) + np.sum(x[::3] ** 3) + x[0] * x[-1]
    x = np.linspace(0.2, 2.0, 12) ** 2
    got = hessian_pattern(f, x)
    want = np.zeros_like(got)
    for t in range(3):
        xx = x + np.random.default_rng(t).uniform(0.1, 0.3, x.shape)
        want |= da.hessian(f, mode="fwd-rev")(xx) != 0
    np.testing.assert_array_equal(got, want)


def test_quadratic_form_hessian_follows_the_matrix():
    n = 30
    a = np.diag(np.ones(n)) + np.diag(np.ones(n - 3), 3)
    p = hessian_pattern(lambda x: x @ a @ x, np.ones(n))
    np.testing.assert_array_equal(p, (a + a.T) != 0)


def test_zero_cotangent_cuts_dependencies():
    # The tanh term is multiplied by an exact constant zero: no coupling.
    a = np.ones((5, 5))
    p = hessian_pattern(lambda x: 0.0 * np.sum(np.tanh(a @ x) ** 2) + np.sum(x ** 3),
                        np.ones(5))
    np.testing.assert_array_equal(p, np.eye(5, dtype=bool))


def test_lennard_jones_pattern_is_dense():
    x = np.arange(12.0) * 1.1 + np.linspace(0, 0.1, 12)
    assert hessian_pattern(lj_flat, x).all()


def test_branch_follows_the_point():
    f = lambda x: np.sum(x ** 2) if x[0] > 0 else np.sum(x[1:] * x[:-1])
    assert hessian_pattern(f, np.ones(3)).sum() == 3
    assert hessian_pattern(f, -np.ones(3)).sum() == 4


# ============================================================================
# public API and cache
# ============================================================================
def test_public_sparsity_returns_csr():
    sp = pytest.importorskip("scipy.sparse")
    import dualad.mixed.sparsity  # noqa: F401  (loading the module must not hide the function)
    h = da.sparsity(rosen, np.ones(6), kind="hessian")
    assert sp.issparse(h) and h.format == "csr" and h.dtype == bool
    np.testing.assert_array_equal(h.toarray(), hessian_pattern(rosen, np.ones(6)))
    j = da.sparsity(lambda x: x[1:] - x[:-1], np.ones(4))
    np.testing.assert_array_equal(j.toarray().astype(int), [[1, 1, 0, 0], [0, 1, 1, 0],
                                                           [0, 0, 1, 1]])
    with pytest.raises(ValueError, match="'jacobian', 'hessian'"):
        da.sparsity(rosen, np.ones(3), kind="laplacian")


def test_pattern_cache_per_function_shape_and_structure():
    f = lambda x, w: np.sum(w * x ** 2)
    x = np.ones(5)
    w1 = np.array([1.0, 0, 1, 0, 1])
    p1 = pattern(f, (x, w1), (0,), "hessian")
    assert pattern(f, (x * 2, w1), (0,), "hessian") is p1              # another point
    # other constants: never a stale hit (the key holds their content), same pattern
    np.testing.assert_array_equal(pattern(f, (x, w1 * 3), (0,), "hessian"), p1)
    p2 = pattern(f, (x, np.ones(5)), (0,), "hessian")                   # new zeros
    assert p2 is not p1
    np.testing.assert_array_equal(np.diag(p1), w1 != 0)
    np.testing.assert_array_equal(np.diag(p2), np.ones(5, dtype=bool))
    assert pattern(f, (np.ones(6), np.ones(6)), (0,), "hessian").shape == (6, 6)
    clear_cache()
    assert pattern(f, (x, w1), (0,), "hessian") is not p1


def test_integer_input_rejected():
    with pytest.raises(TypeError, match="floating"):
        jacobian_pattern(lambda x: x * 2, np.arange(3))


def test_linear_primitives_with_cancelling_coefficients_keep_their_dependencies():
    # An FFT of equal indicators cancels at every nonzero frequency: the
    # pattern must still show that every output depends on every input.
    f = lambda x: np.real(np.fft.fft(x)) + np.imag(np.fft.fft(x))
    x = np.linspace(0.1, 0.9, 6)
    p = da.sparsity(f, x)
    dense = p.toarray() if hasattr(p, "toarray") else np.asarray(p)
    assert dense.all()
    np.testing.assert_allclose(da.jacobian(f, mode="sparse")(x), da.jacfwd(f)(x), atol=1e-12)


# ============================================================================
# sparse index sets: large patterns stay O(nnz)
# ============================================================================
def test_large_pattern_is_csr_and_linear_in_nnz():
    sp = pytest.importorskip("scipy.sparse")
    n = 200_000                       # dense bitsets would need 5 GB here
    p = hessian_pattern(rosen, np.linspace(-1, 1, n))
    assert sp.issparse(p) and p.shape == (n, n) and p.nnz == 3 * n - 2
    i, j = p.nonzero()
    assert np.abs(i - j).max() == 1


def test_cumsum_scatter_and_repeats_match_dense():
    idx = np.array([0, 3, 3, 5, 5, 5, 1])

    def f(x):
        y = np.cumsum(x[idx] * x[::-1][:7])[::-1]
        return np.concatenate([y, np.cumsum(x.reshape(2, 4), axis=1)[:, ::2].ravel()])
    x = np.linspace(0.3, 1.1, 8)
    np.testing.assert_array_equal(jacobian_pattern(f, x), nonzeros_jac(f, x))
    g = lambda x: np.sum(np.cumsum(x[idx]) ** 2) + np.sum(np.tanh(x[1:] * x[:-1]))
    want = np.zeros((8, 8), dtype=bool)
    for t in range(3):
        xx = x + np.random.default_rng(t).uniform(0.1, 0.3, x.shape)
        want |= da.hessian(g, mode="fwd-rev")(xx) != 0
    np.testing.assert_array_equal(hessian_pattern(g, x), want)


def test_pair_list_energy_pattern_follows_the_pairs():
    # A neighbour-list energy: coordinates couple only within listed pairs.
    i = np.array([0, 0, 1, 3])
    j = np.array([1, 2, 2, 4])

    def e(x):
        r = x.reshape(-1, 3)
        d = r[i] - r[j]
        return np.sum(1.0 / np.sum(d * d, axis=1) ** 3)
    p = hessian_pattern(e, np.arange(15.0) ** 1.1)
    atoms = np.zeros((5, 5), dtype=bool)
    atoms[i, j] = atoms[j, i] = True
    atoms |= np.eye(5, dtype=bool)
    want = np.kron(atoms, np.ones((3, 3), dtype=bool))
    np.testing.assert_array_equal(p, want)
