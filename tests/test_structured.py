"""Structured Hessians (dualad.structured): exact against forward-over-reverse
and hyper-dual on physics energies and Rosenbrock, exactly symmetric, sparse
output equal to dense, and every dense fallback exercised (and counted)."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.forward.hessians import hessian_hyperdual
from dualad.rules.reductions import sum_p
from dualad.rules.ufuncs import multiply_p
from dualad.structured import (
    Coo,
    Structured,
    hessian_structured,
    reset_stats,
    stats,
    structured_fits,
)

RTOL = 1e-10


# ============================================================================
# energies
# ============================================================================
def lattice(n_atoms: int, seed: int = 0, spacing: float = 1.12, jitter: float = 0.05):
    """Flat (3N,) coordinates on a perturbed cubic lattice (as bench W4)."""
    side = int(np.ceil(round(n_atoms ** (1.0 / 3.0), 9)))
    g = np.arange(side)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)[:n_atoms]
    rng = np.random.default_rng(seed)
    return (spacing * grid + rng.normal(0.0, jitter, (n_atoms, 3))).reshape(-1)


def _pairs_triu(x):
    r = x.reshape(-1, 3)
    i, j = np.triu_indices(r.shape[0], 1)
    return r[i] - r[j]


def _pairs_bcast(x):
    r = x.reshape(-1, 3)
    return r[:, None, :] - r[None, :, :], ~np.eye(r.shape[0], dtype=bool)


def lj_triu(x):
    d = _pairs_triu(x)
    s = 1.0 / np.sqrt(np.sum(d * d, axis=1))
    return np.sum(4.0 * (s ** 12 - s ** 6))


def lj_bcast(x):
    d, off = _pairs_bcast(x)
    r2 = np.where(off, np.sum(d * d, axis=-1), 1.0)     # the double-where idiom
    s6 = (1.0 / r2) ** 3
    return 0.5 * np.sum(np.where(off, 4.0 * (s6 * s6 - s6), 0.0))


def morse_triu(x, depth=0.8, a=1.7, r0=1.1):
    d = _pairs_triu(x)
    r = np.linalg.norm(d, axis=1)                         # norm2's structural rule
    return np.sum(depth * (1.0 - np.exp(-a * (r - r0))) ** 2)


def springs_triu(x, k=3.0, r0=1.2):
    d = _pairs_triu(x)
    r = np.sqrt(np.sum(d * d, axis=1))
    return 0.5 * k * np.sum((r - r0) ** 2)


def springs_bcast(x, k=3.0, r0=1.2):
    d, off = _pairs_bcast(x)
    r = np.sqrt(np.where(off, np.sum(d * d, axis=-1), 1.0))
    return 0.25 * k * np.sum(np.where(off, (r - r0) ** 2, 0.0))


RC = 1.8      # between the face (1.58) and body (1.94) diagonals of the lattice


def _cutoff_pair(dist):
    s6 = (1.0 / dist) ** 6
    return 4.0 * (s6 * s6 - s6) * (1.0 - (dist / RC) ** 2) ** 2


def lj_cutoff_bcast(x):
    """The broadcast form keeps the i == j diagonal: dist = 0 there, so sqrt's
    partial is infinite in the branch np.where does not take. Nothing of it
    may leak into the Hessian."""
    d, off = _pairs_bcast(x)
    dist = np.sqrt(np.sum(d * d, axis=-1))
    mask = (dist < RC) & off
    return 0.5 * np.sum(np.where(mask, _cutoff_pair(np.where(mask, dist, 1.0)), 0.0))


def lj_cutoff_naive(x):
    """One where only: the pair term itself is NaN on the diagonal."""
    d, off = _pairs_bcast(x)
    dist = np.sqrt(np.sum(d * d, axis=-1))
    mask = (dist < RC) & off
    return 0.5 * np.sum(np.where(mask, _cutoff_pair(dist), 0.0))


def lj_cutoff_triu(x):
    d = _pairs_triu(x)
    dist = np.sqrt(np.sum(d * d, axis=1))
    return np.sum(np.where(dist < RC, _cutoff_pair(dist), 0.0))


def chain(x):
    """A bonded chain: harmonic bonds and angle bending (3-body, banded)."""
    r = x.reshape(-1, 3)
    b = r[1:] - r[:-1]
    length = np.sqrt(np.sum(b * b, axis=1))
    u = b / length[:, None]
    cos = np.sum(u[1:] * u[:-1], axis=1)
    return np.sum(50.0 * (length - 1.0) ** 2) + np.sum(5.0 * (cos - np.cos(1.9)) ** 2)


def eam(x):
    """Embedded-atom style: a per-atom density (a sum over neighbours) fed to
    a nonlinear embedding, plus a pair term. The embedding breaks the pair
    structure, so this exercises the dense fallback."""
    d, off = _pairs_bcast(x)
    r = np.sqrt(np.where(off, np.sum(d * d, axis=-1), 1.0))
    rho = np.sum(np.where(off, np.exp(-2.0 * (r - 1.0)), 0.0), axis=1)
    pair = 0.5 * np.sum(np.where(off, np.exp(-4.0 * (r - 1.0)), 0.0))
    return np.sum(-np.sqrt(rho)) + pair


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def zigzag(n_atoms: int):
    t = np.arange(n_atoms)
    return np.stack([1.05 * t, 0.5 * (t % 2), 0.1 * np.sin(t)], axis=1).reshape(-1)


X8 = lattice(8)
CASES = [
    ("lj_triu", lj_triu, X8),
    ("lj_bcast", lj_bcast, X8),
    ("morse_triu", morse_triu, X8),
    ("springs_triu", springs_triu, X8),
    ("springs_bcast", springs_bcast, X8),
    ("lj_cutoff_bcast", lj_cutoff_bcast, X8),
    ("lj_cutoff_triu", lj_cutoff_triu, X8),
    ("chain", chain, zigzag(7)),
    ("eam", eam, X8),
    ("rosenbrock", rosenbrock, np.linspace(-1.2, 1.7, 12)),
]


def rel_err(a, b) -> float:
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-300)


def quiet(f, *args, **kw):
    # 1/0 and inf - inf in the unselected branch of a where warn, as in NumPy.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return f(*args, **kw)


# ============================================================================
# exactness, symmetry, sparse output
# ============================================================================
@pytest.mark.parametrize("name, f, x", CASES, ids=[c[0] for c in CASES])
def test_matches_fwd_rev_and_hyperdual(name, f, x):
    h = quiet(hessian_structured, f, x)
    ref = quiet(da.hessian(f, mode="fwd-rev"), x)
    hd = quiet(hessian_hyperdual, f, x)
    assert h.shape == x.shape + x.shape
    assert np.all(np.isfinite(h))
    assert rel_err(h, ref) <= RTOL
    assert rel_err(h, hd) <= RTOL
    n = x.size
    h2 = h.reshape(n, n)
    assert np.array_equal(h2, h2.T)                       # exactly symmetric


@pytest.mark.parametrize("name, f, x", CASES, ids=[c[0] for c in CASES])
def test_sparse_equals_dense(name, f, x):
    import scipy.sparse as sp
    h = quiet(hessian_structured, f, x)
    hs = quiet(hessian_structured, f, x, csr=True)
    assert sp.issparse(hs) and hs.format == "csr"
    assert hs.shape == (x.size, x.size)
    assert rel_err(hs.toarray(), h.reshape(x.size, x.size)) <= 1e-14
    assert (hs != hs.T).nnz == 0                          # exactly symmetric


def test_lj_translation_invariance_and_hand_written_blocks():
    x = lattice(27, seed=3)
    h = hessian_structured(lj_triu, x).reshape(x.size, x.size)
    scale = np.max(np.abs(h))
    for axis in range(3):
        t = np.zeros((27, 3))
        t[:, axis] = 1.0
        assert np.max(np.abs(h @ t.reshape(-1))) <= 1e-12 * scale * 27
    # Against the closed-form 3x3 pair blocks.
    r = x.reshape(-1, 3)
    i, j = np.triu_indices(27, 1)
    d = r[i] - r[j]
    r2 = np.sum(d * d, axis=1)
    inv = 1.0 / np.sqrt(r2)
    s6 = inv ** 6
    dv = 4.0 * (-12.0 * s6 * s6 + 6.0 * s6) * inv
    d2v = 4.0 * (156.0 * s6 * s6 - 42.0 * s6) * inv * inv
    a = dv * inv
    blocks = ((d2v - a) / r2)[:, None, None] * d[:, :, None] * d[:, None, :] \
        + a[:, None, None] * np.eye(3)
    ref = np.zeros((27, 3, 27, 3))
    ref[i, :, j, :] = -blocks
    ref[j, :, i, :] = -blocks
    diag = np.zeros((27, 3, 3))
    np.add.at(diag, i, blocks)
    np.add.at(diag, j, blocks)
    ref[np.arange(27), :, np.arange(27), :] = diag
    assert rel_err(h, ref.reshape(81, 81)) <= 1e-12


def test_pair_potentials_stay_structured():
    for f in (lj_triu, lj_bcast, morse_triu, springs_triu, springs_bcast, lj_cutoff_triu,
              chain, rosenbrock):
        x = zigzag(7) if f is chain else (np.linspace(-1, 1, 9) if f is rosenbrock else X8)
        reset_stats()
        quiet(hessian_structured, f, x)
        assert sum(stats.fallbacks.values()) == 0, (f.__name__, stats)
        assert stats.structured_ops > 10
        fits, reason = quiet(structured_fits, f, x)
        assert fits and "fallbacks: none" in reason


def test_chain_sparse_is_banded():
    x = zigzag(20)
    hs = hessian_structured(chain, x, csr=True)
    # Atoms couple to at most two neighbours on each side: 5 blocks of 3x3 a row.
    assert hs.nnz <= 9 * 5 * 20
    rows, cols = hs.nonzero()
    assert np.max(np.abs(rows // 3 - cols // 3)) <= 2
    assert rel_err(hs.toarray(), da.hessian(chain, mode="fwd-rev")(x)) <= RTOL


def test_eam_falls_back_exactly():
    reset_stats()
    h = hessian_structured(eam, X8)
    assert rel_err(h, da.hessian(eam, mode="fwd-rev")(X8)) <= RTOL
    assert stats.dense_sums >= 1                      # the per-atom density
    assert any(k.startswith("mixed:") for k in stats.fallbacks)
    fits, reason = structured_fits(eam, X8)
    assert not fits and "mixed:" in reason


def test_diagonal_inf_does_not_leak():
    x = lattice(8, seed=5)
    h = quiet(hessian_structured, lj_cutoff_bcast, x)
    assert np.all(np.isfinite(h))
    assert rel_err(h, quiet(hessian_structured, lj_cutoff_triu, x)) <= 1e-12


def test_naive_single_where_with_singular_multiply(monkeypatch):
    """With one where, s6 * s6 is inf * inf on the diagonal and multiply's
    partial (the other factor) is inf: the *gradient* is NaN there in any
    reverse mode (JAX too) unless multiply's rules treat 0 * inf as 0. Marked
    singular (a proposed core change), every mode, structured included, is
    finite and exact; the structured where/elementwise rules add no leak."""
    from dualad.core.registry import _elementwise_vjp
    mul = multiply_p
    monkeypatch.setattr(mul, "singular", True)
    monkeypatch.setattr(mul, "vjp", _elementwise_vjp(mul))
    x = lattice(8, seed=5)
    with np.errstate(divide="ignore", invalid="ignore"):
        d, off = _pairs_bcast(x)
        assert np.isnan(_cutoff_pair(np.sqrt(np.sum(d * d, -1)))).any()
    h = quiet(hessian_structured, lj_cutoff_naive, x)
    assert np.all(np.isfinite(h))
    assert rel_err(h, quiet(hessian_structured, lj_cutoff_triu, x)) <= 1e-12
    assert rel_err(h, quiet(da.hessian(lj_cutoff_naive, mode="fwd-rev"), x)) <= RTOL


# ============================================================================
# structural rules beyond the pair potentials
# ============================================================================
def many_ops(x):
    """transpose, stack/concatenate (with constant parts), norm, max, min,
    prod, astype, where with two traced branches, fancy keys (also separated
    ones, whose axes NumPy moves to the front), expand_dims, mean."""
    y = np.transpose(x) * 2.0
    s = np.stack([x[:, 0], x[:, 1] ** 2, np.zeros(4)], axis=1)
    z = x.reshape(2, 2, 3)
    front = z[[0, 1], :, [2, 0]]                   # shape (2, 2), axes in front
    fancy = x[[0, 2, 3]][:, [1, 0]]
    w = np.where(x > 0.1, np.exp(x), np.sin(x) * x[:, :1])
    return (np.sum(y ** 3) + np.sum(s * np.roll(s, 1, axis=0)) + np.sum(front ** 3)
            + np.sum(np.linalg.norm(x, axis=1) ** 3) + np.sum(np.max(x ** 2, axis=0) * 2.0)
            + np.min(x[1:] * x[:-1]) + np.sum(np.prod(x[:2] + 2.0, axis=1))
            + np.sum(fancy[:, 0] * fancy[:, 1]) + np.sum(w * w)
            + np.mean(np.expand_dims(x.astype(np.float64), 0) ** 4))


def test_many_structural_rules():
    x = np.array([[0.3, -0.5, 1.1], [0.7, 0.2, -0.4], [-0.9, 0.6, 0.5], [0.15, -0.8, 0.35]])
    reset_stats()
    h = hessian_structured(many_ops, x)
    assert sum(stats.fallbacks.values()) == 0, stats
    assert rel_err(h, da.hessian(many_ops, mode="fwd-rev")(x)) <= RTOL
    assert rel_err(h, hessian_hyperdual(many_ops, x)) <= RTOL


def coo_ops(v):
    """A scatter (np.diag of a vector) in the forward pass, then the rules a
    COO tangent has: elementwise, transpose, sum, reshape, where, scatter."""
    m = np.diag(v)
    a = np.sum(np.transpose(m) * m ** 2, axis=0)
    b = np.reshape(np.sin(m), (-1,))
    c = np.where(np.eye(v.size, dtype=bool), m, 2.0 * m)
    e = np.diag(a * v)
    return np.sum(a ** 2) + np.sum(b ** 3) + np.sum(c * m) + np.sum(e ** 3) + np.sum(m + m * m)


def f_coo_getitem(x):
    return np.sum(np.diag(x)[1:, ::-1][:, [0, 2, 2]] ** 3) + np.sum(x ** 3)


def f_coo_broadcast(x):
    return np.sum((np.diag(x) * np.ones((2, 1, 1))) ** 3)


def f_coo_broadcast_to(x):
    return np.sum(np.broadcast_to(np.diag(x), (2, 4, 4)) ** 3)


def f_coo_where(x):
    return np.sum(np.where(np.arange(32).reshape(2, 4, 4) % 3 > 0, np.diag(x), x) ** 3)


def f_coo_concatenate(x):
    return np.sum(np.concatenate([np.diag(x), np.diag(x ** 2), x[None, :]]) ** 3)


def f_coo_prod(x):
    # prod's rules shift lanes (lane_shift) of a scattered tangent.
    return np.sum(np.prod(np.diag(x) + 1.5, axis=1) ** 2)


COO_CASES = [coo_ops, f_coo_getitem, f_coo_broadcast, f_coo_broadcast_to, f_coo_where,
             f_coo_concatenate, f_coo_prod]


@pytest.mark.parametrize("f", COO_CASES, ids=[f.__name__ for f in COO_CASES])
def test_coo_rules(f):
    reset_stats()
    h = hessian_structured(f, V4)
    assert sum(stats.fallbacks.values()) == 0, stats
    assert rel_err(h, da.hessian(f, mode="fwd-rev")(V4)) <= RTOL
    assert rel_err(h, hessian_hyperdual(f, V4)) <= RTOL


def test_scalar_input_linear_function_and_float32():
    assert hessian_structured(lambda t: np.sin(t) * t, 0.5).shape == ()
    assert float(hessian_structured(lambda t: np.sin(t) * t, 0.5)) == pytest.approx(
        2 * np.cos(0.5) - 0.5 * np.sin(0.5), rel=1e-14)
    assert np.array_equal(hessian_structured(lambda x: np.sum(3.0 * x), np.ones(3)),
                          np.zeros((3, 3)))
    assert hessian_structured(lambda x: np.sum(3.0 * x), np.ones(3), csr=True).nnz == 0
    x32 = lattice(8).astype(np.float32)
    h32 = hessian_structured(lj_triu, x32)
    assert h32.dtype == np.float32
    assert rel_err(h32.astype(np.float64), hessian_structured(lj_triu, x32.astype(float))) < 1e-4


def test_position_input_shape_kept():
    x = X8.reshape(8, 3)
    h = hessian_structured(lambda r: lj_triu(r.reshape(-1)), x)
    assert h.shape == (8, 3, 8, 3)
    assert rel_err(h.reshape(24, 24), hessian_structured(lj_triu, X8)) <= 1e-14


def test_inside_another_transform():
    # A traced input (a gradient of a Hessian entry): mixed/ takes the dense
    # route; the structured interpreter itself refuses it.
    f = lambda x: np.sum(x[1:] ** 2 * x[:-1] ** 3)
    x = np.array([0.5, 1.2, -0.7])
    with pytest.raises(ValueError, match="traced input"):
        da.grad(lambda x: np.sum(hessian_structured(f, x) ** 2))(x)
    got = da.grad(lambda x: np.sum(da.hessian(f, mode="structured")(x) ** 2))(x)
    want = da.grad(lambda x: np.sum(da.hessian(f, mode="fwd-rev")(x) ** 2))(x)
    assert rel_err(got, want) <= 1e-13


def test_non_scalar_function_rejected():
    with pytest.raises(ValueError, match="scalar"):
        hessian_structured(lambda x: x ** 2, np.ones(3))
    with pytest.raises(TypeError):
        hessian_structured(lambda x: np.sum(x), np.arange(3))


# ============================================================================
# every fallback: hit, counted, still exact
# ============================================================================
A = np.array([[2.0, 0.3, -0.1, 0.5], [0.3, 1.5, 0.2, 0.0], [-0.1, 0.2, 1.8, 0.4],
              [0.5, 0.0, 0.4, 1.1]])
V4 = np.array([0.4, -1.2, 0.8, 1.5])


def f_matmul(x):
    return x @ A @ x * np.sum(x ** 2) + np.sum(x ** 4)


def f_einsum(x):
    return np.einsum("i,ij,j->", x, A, x) ** 2


def f_det(x):
    return np.linalg.det(np.reshape(x, (2, 2)) + 3.0 * np.eye(2)) ** 2


def f_eigh(x):
    m = np.reshape(x, (2, 2))
    return np.sum(np.linalg.eigh(m + np.transpose(m))[0] ** 3)


def f_cumsum(x):
    return np.sum(np.cumsum(x) ** 3)


def f_mixed(x):
    return np.sum((A @ x) * x ** 2)


def f_slots(x):
    # Four gathers with different maps, added: more slots than directions.
    a, b, c, d = x[[0, 1]], x[[1, 2]], x[[2, 0]], x[[0, 0]]
    return np.sum(np.sin(a + b + c + d) ** 2) + np.sum(x ** 3)


def f_mixed_concatenate(x):
    return np.sum(np.concatenate([A @ x, x]) ** 3)


FALLBACKS = [
    ("rule:matmul", f_matmul), ("rule:einsum", f_einsum), ("rule:det", f_det),
    ("rule:eigh", f_eigh), ("rule:cumsum", f_cumsum), ("mixed:multiply", f_mixed),
    ("slots", f_slots), ("mixed:concatenate", f_mixed_concatenate),
]


@pytest.mark.parametrize("reason, f", FALLBACKS, ids=[r for r, _ in FALLBACKS])
def test_fallback_hit_and_exact(reason, f):
    x = V4 if f is not f_slots else V4[:3]
    reset_stats()
    h = hessian_structured(f, x)
    assert stats.fallbacks[reason] >= 1, stats
    assert rel_err(h, da.hessian(f, mode="fwd-rev")(x)) <= RTOL
    assert rel_err(h, hessian_hyperdual(f, x)) <= RTOL
    assert rel_err(hessian_structured(f, x, csr=True).toarray(), h) <= 1e-14
    fits, text = structured_fits(f, x)
    assert reason in text


def test_lead_fallback_in_the_interpreter():
    # A linear primitive applied with batch axes of its own: densified, exact.
    from dualad.core.levels import new_level
    from dualad.structured.interpreter import StructuredDual, StructuredLevel
    from dualad.structured.tangents import Context

    ctx = Context(6, np.dtype(np.float64))
    reset_stats()
    with new_level(StructuredLevel(ctx)) as level:
        seed = Structured((2, 3), [(np.arange(6).reshape(1, 2, 3), np.ones((1, 1, 1)))])
        x = StructuredDual._make(np.arange(6.0).reshape(2, 3), seed, level)
        out = sum_p(x, axis=(0,), keepdims=False, lead=1)
    assert stats.fallbacks["lead"] == 1
    assert np.array_equal(out.primal, np.array([3.0, 12.0]))
    assert np.array_equal(out.tangent, np.eye(6).reshape(6, 2, 3).sum(axis=2))


def test_tangent_forms_densify_to_the_same():
    from dualad.structured.tangents import Context, densify, to_coo
    ctx = Context(4, np.dtype(np.float64))
    t = Structured((2, 2), [(np.array([[[0, 1], [2, 3]]]), np.array([[[1.0, 2.0], [3.0, 4.0]]])),
                            (np.array([[[3], [0]]]), np.full((1, 1, 1), 0.5))])
    dense = densify(ctx, t)
    assert dense.shape == (4, 2, 2)
    assert dense[0, 0, 0] == 1.0 and dense[3, 0, 0] == 0.5 and dense[3, 1, 1] == 4.0
    assert dense[0, 1, 0] == 0.5 and dense[0, 1, 1] == 0.5
    coo = to_coo(ctx, t)
    assert isinstance(coo, Coo)
    assert np.array_equal(densify(ctx, coo), dense)
