"""np.linalg rules: values, forward/reverse to second order, batches, dtypes."""
import numpy as np
import pytest

import dualad as da
from dualad.forward.api import jacfwd
from dualad.reverse.api import jacrev
from dualad.testing import check_grads

MODES = ("fwd", "rev")


# ============================================================================
# well-conditioned inputs
# ============================================================================
def _rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _well(n, batch=(), seed=0):
    """A random matrix (stack) kept far from singular."""
    return _rand(batch + (n, n), seed) + 2.0 * n ** 0.5 * np.eye(n)


def _spd(n, batch=(), seed=0):
    b = _rand(batch + (n, n), seed)
    return b @ np.swapaxes(b, -1, -2) + n * np.eye(n)


def _sym_distinct(n, batch=(), seed=0):
    """Symmetric with well separated eigenvalues 1, 2.5, 4, ..."""
    q, _ = np.linalg.qr(_rand(batch + (n, n), seed))
    w = 1.0 + 1.5 * np.arange(n)
    return (q * w[None, :]) @ np.swapaxes(q, -1, -2)


def _sym(a):
    return (a + np.swapaxes(a, -1, -2)) / 2


def _distinct_singular(m, n, batch=(), seed=0):
    """An m x n matrix (stack) with singular values 1, 2, 3, ..."""
    k = min(m, n)
    u, _ = np.linalg.qr(_rand(batch + (m, k), seed))
    v, _ = np.linalg.qr(_rand(batch + (n, k), seed + 1))
    return (u * (1.0 + np.arange(k))) @ np.swapaxes(v, -1, -2)


def _jac_agree(f, x, want=None):
    """jacfwd and jacrev agree (and match ``want`` if given)."""
    jf, jr = jacfwd(f)(x), jacrev(f)(x)
    assert np.all(np.isfinite(jf))
    np.testing.assert_allclose(jf, jr, rtol=1e-9, atol=1e-10)
    if want is not None:
        np.testing.assert_allclose(jf, want, rtol=1e-9, atol=1e-10)
    return jf


# ============================================================================
# solve
# ============================================================================
@pytest.mark.parametrize("a_batch,b_shape", [
    ((), (4, 3)),          # matrix right-hand side
    ((), (4,)),            # vector right-hand side
    ((2,), (2, 4, 2)),     # stacks on both sides
    ((2,), (4,)),          # a stack of matrices, one vector
    ((2,), (4, 3)),        # a stack of matrices, one matrix
    ((), (3, 4, 2)),       # one matrix, a stack of right-hand sides
])
def test_solve(a_batch, b_shape):
    a, b = _well(4, a_batch), _rand(b_shape, 1)
    x = np.linalg.solve(a, b)
    out, _ = da.jvp(lambda a_, b_: np.linalg.solve(a_, b_), (a, b), (a, b))
    np.testing.assert_allclose(out, x)
    check_grads(lambda a_, b_: np.linalg.solve(a_, b_), (a, b), order=2, modes=MODES)


def test_solve_known_derivatives():
    a, b = _well(3), _rand((3,), 2)
    x = np.linalg.solve(a, b)
    ainv = np.linalg.inv(a)
    # dx/db = A^{-1}; dx/dA[i, j, k] = -A^{-1}[i, j] x[k]
    _jac_agree(lambda b_: np.linalg.solve(a, b_), b, ainv)
    _jac_agree(lambda a_: np.linalg.solve(a_, b), a, -np.einsum("ij,k->ijk", ainv, x))


def test_solve_rejects_non_square():
    with pytest.raises(np.linalg.LinAlgError):
        da.grad(lambda a: np.linalg.solve(a, np.ones(3)).sum())(np.ones((3, 2)))


# ============================================================================
# inv, det, slogdet
# ============================================================================
@pytest.mark.parametrize("batch", [(), (2,), (2, 1)])
def test_inv(batch):
    a = _well(3, batch)
    check_grads(np.linalg.inv, (a,), order=2, modes=MODES)


def test_inv_known_derivative():
    a = _well(3)
    ainv = np.linalg.inv(a)
    _jac_agree(np.linalg.inv, a, -np.einsum("ij,kl->iljk", ainv, ainv))


@pytest.mark.parametrize("batch", [(), (3,)])
def test_det(batch):
    a = _well(3, batch)
    check_grads(np.linalg.det, (a,), order=2, modes=MODES)


def test_det_gradient_is_cofactor():
    a = np.array([[2.0, 1.0], [0.5, 3.0]])
    g = da.grad(np.linalg.det)(a)
    np.testing.assert_allclose(g, [[3.0, -0.5], [-1.0, 2.0]])


@pytest.mark.parametrize("batch", [(), (2,)])
def test_slogdet(batch):
    a = _well(3, batch)
    a[..., 0, :] *= -1.0                                   # negative determinant
    sign, logdet = np.linalg.slogdet(a)
    assert np.all(sign == -1.0)
    check_grads(lambda a_: np.linalg.slogdet(a_)[1], (a,), order=2, modes=MODES)
    check_grads(lambda a_: np.linalg.slogdet(a_), (a,), order=1, modes=MODES)
    # d logdet / dA = A^{-T}; the sign carries no derivative.
    g = da.grad(lambda a_: np.linalg.slogdet(a_).logabsdet.sum())(a)
    np.testing.assert_allclose(g, np.swapaxes(np.linalg.inv(a), -1, -2))
    (s, ld), (ts, tl) = da.jvp(np.linalg.slogdet, (a,), (np.ones_like(a),))
    np.testing.assert_array_equal(s, sign)
    np.testing.assert_array_equal(ts, 0.0)
    np.testing.assert_allclose(ld, logdet)


# ============================================================================
# cholesky (symmetric-input convention)
# ============================================================================
@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky(batch, upper):
    a = _spd(4, batch)
    f = lambda a_: np.linalg.cholesky(_sym(a_), upper=upper)
    np.testing.assert_allclose(da.jvp(f, (a,), (a,))[0], np.linalg.cholesky(a, upper=upper))
    check_grads(f, (a,), order=2, modes=MODES)


def test_cholesky_logdet_gradient_on_the_lower_triangle():
    a = _spd(3, seed=4)
    # logdet A = 2 sum log diag(L): as a function of the lower triangle NumPy
    # reads, its gradient is A^{-1} there with off-diagonal entries doubled.
    f = lambda a_: 2.0 * np.sum(np.log(np.sum(np.linalg.cholesky(a_) * np.eye(3), axis=-1)))
    g = da.grad(f)(a)
    inv = np.linalg.inv(a)
    np.testing.assert_allclose(g, np.tril(2.0 * inv, -1) + np.diag(np.diag(inv)), rtol=1e-10)
    np.testing.assert_allclose(g + g.T - np.diag(np.diag(g)), 2.0 * inv - np.diag(np.diag(inv)),
                               rtol=1e-10)


# ============================================================================
# eigh / eigvalsh
# ============================================================================
def _eigh_features(a, uplo="L"):
    w, v = np.linalg.eigh(_sym(a), UPLO=uplo)
    return w, v * v                       # v * v does not depend on the sign of v


@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh(batch, uplo):
    a = _sym_distinct(4, batch)
    check_grads(lambda a_: _eigh_features(a_, uplo), (a,), order=2, modes=MODES)


def test_eigh_reconstructs_and_matches_numpy():
    a = _sym_distinct(3, seed=3)
    (w, v), _ = da.jvp(lambda a_: tuple(np.linalg.eigh(a_)), (a,), (a,))
    w0, v0 = np.linalg.eigh(a)
    np.testing.assert_allclose(w, w0)
    np.testing.assert_allclose(v, v0)
    # V diag(w) V^T is A itself: its Jacobian is the (symmetrised) identity.
    f = lambda a_: (lambda w_, v_: (v_ * w_[None, :]) @ v_.T)(*np.linalg.eigh(_sym(a_)))
    eye = np.eye(3)
    want = 0.5 * (np.einsum("ik,jl->ijkl", eye, eye) + np.einsum("il,jk->ijkl", eye, eye))
    _jac_agree(f, a, want)


def _on_lower(g):
    """A symmetric gradient ``g`` as NumPy's factorisations see it: a function
    of the lower triangle, off-diagonal entries doubled, upper part 0."""
    n = g.shape[-1]
    return 2.0 * g * np.tril(np.ones((n, n)), -1) + g * np.eye(n)


@pytest.mark.parametrize("batch", [(), (3,)])
def test_eigvalsh(batch):
    a = _sym_distinct(4, batch, seed=5)
    check_grads(lambda a_: np.linalg.eigvalsh(_sym(a_)), (a,), order=2, modes=MODES)
    # dw_i/dA = v_i v_i^T
    if not batch:
        _, v = np.linalg.eigh(a)
        _jac_agree(np.linalg.eigvalsh, a, _on_lower(np.einsum("ki,li->ikl", v, v)))


def _degenerate():
    q, _ = np.linalg.qr(_rand((3, 3), 7))
    return {"identity": np.eye(3), "repeated": (q * [1.0, 1.0, 3.0]) @ q.T}


@pytest.mark.parametrize("which", ["identity", "repeated"])
def test_eigh_degenerate_spectrum_trace_is_exact(which):
    a = _degenerate()[which]
    trace_of_spectrum = lambda a_: np.sum(np.linalg.eigvalsh(a_))
    # First order: exactly the identity in both modes, no NaN.
    g = da.grad(trace_of_spectrum)(a)
    np.testing.assert_allclose(g, np.eye(3), atol=1e-12)
    _jac_agree(trace_of_spectrum, a, np.eye(3))
    # Second order: the Hessian of a linear function is 0 (fwd-over-rev, rev-over-rev).
    hess_fr = jacfwd(da.grad(trace_of_spectrum))(a)
    hess_rr = jacrev(da.grad(trace_of_spectrum))(a)
    for h in (hess_fr, hess_rr):
        assert np.all(np.isfinite(h))
        np.testing.assert_allclose(h, 0.0, atol=1e-12)
    # Directional second derivative through forward-over-forward too.
    d = _sym(_rand((3, 3), 8))
    fwd = lambda a_: da.jvp(trace_of_spectrum, (a_,), (d,))[1]
    np.testing.assert_allclose(da.jvp(fwd, (a,), (d,))[1], 0.0, atol=1e-12)
    check_grads(lambda a_: trace_of_spectrum(_sym(a_)), (a,), order=2, modes=MODES)
    # Any smooth sum f(w) keeps an exact first derivative: d sum(w^2) = 2 A.
    g2 = da.grad(lambda a_: np.sum(np.linalg.eigvalsh(a_) ** 2))(a)
    np.testing.assert_allclose(g2, _on_lower(2.0 * a), atol=1e-12)


def test_eigh_degenerate_vectors_are_finite():
    a = _degenerate()["repeated"]
    _, t = da.jvp(lambda a_: np.linalg.eigh(a_)[1], (a,), (_sym(_rand((3, 3), 9)),))
    assert np.all(np.isfinite(t))


# ============================================================================
# qr
# ============================================================================
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 4, 3), (2, 3, 4)])
def test_qr(shape):
    a = _rand(shape, 11)
    q, r = np.linalg.qr(a)
    (q1, r1), _ = da.jvp(lambda a_: tuple(np.linalg.qr(a_)), (a,), (a,))
    np.testing.assert_allclose(q1, q)
    np.testing.assert_allclose(r1, r)
    check_grads(lambda a_: tuple(np.linalg.qr(a_)), (a,), order=2, modes=MODES)


def test_qr_modes():
    a = _rand((4, 3), 12)
    check_grads(lambda a_: np.linalg.qr(a_, mode="r"), (a,), order=1, modes=MODES)
    # Q^T Q = I whatever A is: its derivative vanishes.
    jac = _jac_agree(lambda a_: (lambda q: q.T @ q)(np.linalg.qr(a_).Q), a)
    np.testing.assert_allclose(jac, 0.0, atol=1e-12)
    with pytest.raises(NotImplementedError, match="complete"):
        da.grad(lambda a_: np.linalg.qr(a_, mode="complete")[0].sum())(a)
    sq = _rand((3, 3), 13)
    check_grads(lambda a_: tuple(np.linalg.qr(a_, mode="complete")), (sq,), order=1, modes=MODES)


# ============================================================================
# svd / svdvals
# ============================================================================
def _svd_features(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    # Sign-invariant: u*u, vh*vh, and U Vh (each u_i v_i^T is sign free).
    return s, u * u, vh * vh, u @ vh


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 4, 3), (2, 3, 3)])
def test_svd(shape):
    a = _distinct_singular(shape[-2], shape[-1], shape[:-2], seed=14)
    check_grads(_svd_features, (a,), order=2, modes=MODES)
    out, _ = da.jvp(_svd_features, (a,), (a,))
    np.testing.assert_allclose(out[0], np.linalg.svd(a, compute_uv=False))


def test_svd_values_only():
    a = _distinct_singular(4, 3, seed=15)
    f = lambda a_: np.linalg.svd(a_, compute_uv=False)
    check_grads(f, (a,), order=2, modes=MODES)
    u, _, vh = np.linalg.svd(a, full_matrices=False)
    _jac_agree(f, a, np.einsum("ki,il->ikl", u, vh))      # ds_i/dA = u_i v_i^T
    if hasattr(np.linalg, "svdvals"):
        np.testing.assert_allclose(jacrev(np.linalg.svdvals)(a), jacrev(f)(a))
    # Nuclear norm: sum(s) has gradient U Vh.
    np.testing.assert_allclose(da.grad(lambda a_: np.sum(f(a_)))(a), u @ vh, rtol=1e-10)


def test_svd_hermitian():
    a = _sym_distinct(3, seed=26)
    f = lambda a_: (lambda u, s, vh: (s, u * u, u @ vh))(
        *np.linalg.svd(_sym(a_), hermitian=True))
    check_grads(f, (a,), order=2, modes=MODES)
    _, v = np.linalg.eigh(a)             # positive definite: s = w, ds = v_i v_i^T
    want = np.einsum("ki,li->ikl", v, v)[::-1]
    _jac_agree(lambda a_: f(a_)[0], a, 0.5 * (want + np.swapaxes(want, -1, -2)))


def test_svd_full_matrices():
    sq = _distinct_singular(3, 3, seed=16)
    check_grads(lambda a_: np.linalg.svd(a_)[1], (sq,), order=2, modes=MODES)
    with pytest.raises(NotImplementedError, match="full_matrices"):
        da.grad(lambda a_: np.linalg.svd(a_)[1].sum())(_rand((4, 3)))


# ============================================================================
# pinv, matrix_power, multi_dot, matrix_transpose
# ============================================================================
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (3, 3), (2, 4, 3)])
def test_pinv(shape):
    a = _distinct_singular(shape[-2], shape[-1], shape[:-2], seed=17)
    np.testing.assert_allclose(da.jvp(np.linalg.pinv, (a,), (a,))[0], np.linalg.pinv(a))
    check_grads(np.linalg.pinv, (a,), order=2, modes=MODES)


@pytest.mark.parametrize("n", [1, 2, 3, 5, -1, -2])
def test_matrix_power(n):
    a = _well(3, (2,), seed=18) / 3.0
    y, _ = da.jvp(lambda a_: np.linalg.matrix_power(a_, n), (a,), (a,))
    np.testing.assert_allclose(y, np.linalg.matrix_power(a, n))
    check_grads(lambda a_: np.linalg.matrix_power(a_, n), (a,), order=2, modes=MODES)


def test_matrix_power_zero_is_constant():
    a = _well(3, seed=19)
    y, t = da.jvp(lambda a_: np.linalg.matrix_power(a_, 0), (a,), (a,))
    np.testing.assert_array_equal(y, np.eye(3))
    np.testing.assert_array_equal(t, 0.0)
    _jac_agree(lambda a_: np.linalg.matrix_power(a_, 2), a,
               np.einsum("ik,lj->ijkl", np.eye(3), a) + np.einsum("ik,jl->ijkl", a, np.eye(3)))


def test_multi_dot_and_matrix_transpose():
    a, b, c = _rand((2, 3), 20), _rand((3, 4), 21), _rand((4, 2), 22)
    f = lambda a_, b_, c_: np.linalg.multi_dot([a_, b_, c_])
    np.testing.assert_allclose(da.jvp(f, (a, b, c), (a, b, c))[0], a @ b @ c)
    check_grads(f, (a, b, c), order=2, modes=MODES)
    if hasattr(np.linalg, "matrix_transpose"):
        g = da.grad(lambda x: np.sum(np.linalg.matrix_transpose(x) * b.T))(_rand((3, 4), 23))
        np.testing.assert_allclose(g, b)


# ============================================================================
# float32 stays float32; Jacobians by both modes agree
# ============================================================================
_F32_CASES = {
    "solve": (lambda a: np.linalg.solve(a, np.ones(3, np.float32)), "well"),
    "inv": (np.linalg.inv, "well"),
    "det": (np.linalg.det, "well"),
    "slogdet": (lambda a: np.linalg.slogdet(a)[1], "well"),
    "cholesky": (lambda a: np.linalg.cholesky(_sym(a)), "spd"),
    "eigh": (_eigh_features, "sym"),
    "qr": (lambda a: tuple(np.linalg.qr(a)), "well"),
    "svd": (_svd_features, "svd"),
    "pinv": (np.linalg.pinv, "well"),
}


def _input(kind, seed=0):
    return {"well": lambda: _well(3, seed=seed), "spd": lambda: _spd(3, seed=seed),
            "sym": lambda: _sym_distinct(3, seed=seed),
            "svd": lambda: _distinct_singular(3, 3, seed=seed)}[kind]()


@pytest.mark.parametrize("name", sorted(_F32_CASES))
def test_float32_stays_float32(name):
    f, kind = _F32_CASES[name]
    a = _input(kind, seed=24).astype(np.float32)
    out, tan = da.jvp(f, (a,), (np.ones_like(a),))
    for leaf in (out, tan) if not isinstance(out, tuple) else (*out, *tan):
        assert leaf.dtype == np.float32, name
    _, pull = da.vjp(f, a)
    ct = pull(tuple(np.ones_like(o) for o in out) if isinstance(out, tuple) else np.ones_like(out))
    assert ct[0].dtype == np.float32
    check_grads(f, (a,), order=1, modes=MODES)


_JAC_CASES = {
    "solve_matrix": (lambda a: np.linalg.solve(a, np.arange(6.0).reshape(3, 2)), "well"),
    "inv": (np.linalg.inv, "well"),
    "det": (np.linalg.det, "well"),
    "cholesky": (lambda a: np.linalg.cholesky(_sym(a)), "spd"),
    "eigvalsh": (lambda a: np.linalg.eigvalsh(_sym(a)), "sym"),
    "eigvecs_sq": (lambda a: np.linalg.eigh(_sym(a))[1] ** 2, "sym"),
    "qr_q": (lambda a: np.linalg.qr(a)[0], "well"),
    "qr_r": (lambda a: np.linalg.qr(a)[1], "well"),
    "svd_polar": (lambda a: (lambda u, s, vh: u @ vh)(*np.linalg.svd(a)), "svd"),
    "pinv": (np.linalg.pinv, "well"),
}


@pytest.mark.parametrize("name", sorted(_JAC_CASES))
def test_jacfwd_matches_jacrev(name):
    f, kind = _JAC_CASES[name]
    a = _input(kind, seed=25)
    jac = _jac_agree(f, a)
    # ... and central differences along every input entry.
    eps, num = 1e-6, np.zeros_like(jac)
    for idx in np.ndindex(a.shape):
        e = np.zeros_like(a)
        e[idx] = eps
        num[(...,) + idx] = (f(a + e) - f(a - e)) / (2 * eps)
    np.testing.assert_allclose(jac, num, rtol=1e-5, atol=1e-6)
