"""``np.linalg`` factorisations: cholesky, eigh / eigvalsh, qr, svd / svdvals.

Each is one multi-output primitive whose ``jvp`` is the classical
perturbation formula and whose ``vjp`` is its exact adjoint, written term by
term (so forward and reverse agree to rounding, and both differentiate
themselves for higher orders). Stacks ``(..., m, n)`` and lead axes broadcast
as in :mod:`.linalg`. Real floating inputs only.

Symmetric inputs (cholesky, eigh, eigvalsh)
-------------------------------------------
NumPy reads one triangle of the input (``UPLO="L"``, the default, the lower
one; ``"U"`` the upper; ``cholesky(a, upper=True)`` the upper) and ignores the
other. The derivative is that of the function NumPy computes: the traced
input is first rebuilt as the symmetric matrix of the triangle read
(``tril(A) + tril(A, -1)^T``), then factorised. So a tangent's other triangle
has no effect and a gradient lives on the triangle read (off-diagonal entries
count twice there), exact also along non-symmetric directions and at
non-symmetric inputs. For a symmetric ``A`` and a symmetric perturbation it
equals the derivative of ``A -> f((A + A^T) / 2)`` that JAX and PyTorch use;
they differ only off the symmetric matrices, where ours matches NumPy's values.

eigh policy for (near-)degenerate eigenvalues
---------------------------------------------
The eigenvector rule has factors ``F[i, j] = 1 / (w[j] - w[i])``. For pairs
with ``|w[j] - w[i]| <= tol * max|w|``, ``tol = n * max(1e-12, 100 * eps)``
(``eps`` of the dtype: float32 needs the wider band), ``F[i, j]`` is set to 0
instead of infinity. Consequences:

* eigenvalue derivatives are always exact and finite: ``dw = diag(V^T dA V)``
  never involves ``F``, so ``sum(f(w))`` has the exact gradient
  ``V f'(w) V^T`` at any matrix, degenerate or not;
* ``trace``/``sum(w)`` stays exact to every order (its Hessian is 0, with no
  NaN, because the ``F`` terms cancel pairwise);
* derivatives of eigenvectors *inside* a degenerate eigenspace are not defined
  (the basis itself is arbitrary there); their masked value is 0. Second
  derivatives of a non-linear ``sum(f(w))`` at an exactly degenerate point
  miss the within-block ``f''`` term for the same reason.

The SVD uses the same mask on ``|s[j] - s[i]|`` for its ``1 / (s[j]^2 - s[i]^2)``
factors. Its ``U`` / ``V`` derivatives of a non-square matrix divide by the
singular values, so they need full rank.

Sign conventions: eigenvectors, singular vectors and ``Q`` are only defined up
to sign, but NumPy's choice is locally smooth, so the derivatives are those of
the values NumPy returns.

Example::

    >>> import numpy as np, dualad as da
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> g = da.grad(lambda a: np.linalg.eigvalsh(a).sum())(A)
    >>> np.allclose(g, np.eye(2))
    True
"""
from __future__ import annotations

import numpy as np

from dualad.core.backend import namespace_of, peel_keep_batch
from dualad.core.dispatch import implements
from dualad.core.registry import defprimitive, shape_of
from dualad.core.zero import Zero, add_any
from dualad.rules.linalg import col, const_like, diag_embed, diag_part, dtype_of, mT, row, sym

try:  # NumPy >= 2 named tuples
    from numpy.linalg._linalg import EighResult, QRResult, SVDResult
except ImportError:  # pragma: no cover - NumPy 1.x
    EighResult = QRResult = SVDResult = tuple


# ============================================================================
# shared: masked inverse gaps and triangle masks
# ============================================================================
def _gap_rtol(n: int, x) -> float:
    eps = float(np.finfo(dtype_of(x)).eps)
    return n * max(1e-12, 100.0 * eps)


def inverse_gaps(w, squares: bool = False):
    """``F[..., i, j] = 1 / (w[j] - w[i])`` (``1 / (w[j]^2 - w[i]^2)`` with
    ``squares``), 0 on the diagonal and on (near-)degenerate pairs.

    The mask is a constant computed on the primal values; the kept entries
    are dispatched divisions, so ``F`` differentiates itself."""
    n = shape_of(w)[-1]
    diff = row(w) - col(w)
    if squares:
        diff = diff * (row(w) + col(w))
    wv = peel_keep_batch(w)
    xp = namespace_of(wv)
    scale = xp.max(xp.abs(wv), axis=-1, keepdims=True)[..., None] if n else 0.0
    gap = xp.abs(wv[..., None, :] - wv[..., :, None])
    keep = gap > _gap_rtol(n, w) * scale
    return np.where(keep, 1.0 / np.where(keep, diff, 1.0), 0.0)


def _tril_mask(n: int, like, k: int = 0, diag: float = 1.0):
    """Constant lower-triangle mask (below diagonal ``k``), ``diag`` on the
    main diagonal when it is included."""
    m = np.tril(np.ones((n, n)), k)
    if k >= 0:
        m[np.arange(n), np.arange(n)] = diag
    return const_like(m, like)


def _from_triangle(a, lower: bool = True):
    """The symmetric matrix NumPy's factorisation reads from ``a``: its lower
    (or upper) triangle mirrored, as dispatched multiplies by constant masks
    (so every mode differentiates exactly that function of the triangle)."""
    n = shape_of(a)[-1]
    ones = np.ones((n, n))
    if lower:
        keep, mirror = np.tril(ones), np.tril(ones, -1)
    else:
        keep, mirror = np.triu(ones), np.triu(ones, 1)
    return a * const_like(keep, a) + mT(a * const_like(mirror, a))


# ============================================================================
# cholesky: A = L L^T,  dL = L Phi(L^{-1} dA L^{-T}),  Phi = tril with half diagonal
# ============================================================================
def _chol_jvp(primals, tangents, out):
    t = tangents[0]
    if t is Zero:
        return Zero
    L = out
    x = np.linalg.solve(L, sym(t))              # L^{-1} dA
    y = mT(np.linalg.solve(L, mT(x)))            # L^{-1} dA L^{-T}
    return L @ (y * _tril_mask(shape_of(L)[-1], L, diag=0.5))


def _chol_vjp(ct, primals, out, needs):
    # Adjoint of the jvp: Ā = sym(L^{-T} Phi(L^T L̄) L^{-1}).
    L = out
    p = (mT(L) @ ct) * _tril_mask(shape_of(L)[-1], L, diag=0.5)
    x = np.linalg.solve(mT(L), p)                # L^{-T} P
    return (sym(mT(np.linalg.solve(mT(L), mT(x)))),)   # ... L^{-1}


cholesky_p = defprimitive("cholesky", lambda a: namespace_of(a).linalg.cholesky(a),
                          jvp=_chol_jvp, vjp=_chol_vjp)


@implements(np.linalg.cholesky)
def cholesky(a, /, *, upper=False):
    """Lower factor ``L`` (``upper=True``: ``L^T``); see the module docstring
    for the symmetric-input convention."""
    L = cholesky_p(_from_triangle(a, lower=not upper))
    return mT(L) if upper else L


# ============================================================================
# eigh: A = V diag(w) V^T
#   S = V^T dA V,  dw = diag(S),  dV = V (F * S)
# ============================================================================
def _eigh_impl(a, UPLO="L"):
    w, v = namespace_of(a).linalg.eigh(a, UPLO=UPLO)
    return w, v


def _eigh_jvp(primals, tangents, out, UPLO="L"):
    t = tangents[0]
    if t is Zero:
        return Zero, Zero
    w, v = out
    s = mT(v) @ sym(t) @ v
    return diag_part(s), v @ (inverse_gaps(w) * s)


def _eigh_vjp(cts, primals, out, needs, UPLO="L"):
    ct_w, ct_v = cts
    w, v = out
    m = Zero if ct_w is Zero else diag_embed(ct_w)
    if ct_v is not Zero:
        m = add_any(m, inverse_gaps(w) * (mT(v) @ ct_v))
    return (sym(v @ m @ mT(v)),)


eigh_p = defprimitive("eigh", _eigh_impl, jvp=_eigh_jvp, vjp=_eigh_vjp, n_outputs=2)


def _uplo(UPLO) -> str:
    u = str(UPLO).upper()
    if u not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    return u


@implements(np.linalg.eigh)
def eigh(a, UPLO="L"):
    """``(eigenvalues, eigenvectors)`` of a symmetric matrix (stack)."""
    u = _uplo(UPLO)
    return EighResult(*eigh_p(_from_triangle(a, u == "L"), UPLO=u))


@implements(np.linalg.eigvalsh)
def eigvalsh(a, UPLO="L"):
    """Eigenvalues through the ``eigh`` primitive: their second derivatives
    need the eigenvectors' first ones."""
    u = _uplo(UPLO)
    return eigh_p(_from_triangle(a, u == "L"), UPLO=u)[0]


# ============================================================================
# qr (reduced): A = Q R.  Tall or square (m >= n):
#   B = dA R^{-1}, C = Q^T B, O = tril(C, -1) - tril(C, -1)^T,
#   dQ = Q (O - C) + B,  dR = (C - O) R.
# Wide (m < n): A = [A1 A2]; (Q, R1) is the QR of the square A1 and
#   R2 = Q^T A2, so dR2 = dQ^T A2 + Q^T dA2.
# ============================================================================
def _qr_impl(a):
    q, r = namespace_of(a).linalg.qr(a, mode="reduced")
    return q, r


def _tall_jvp(q, r, t):
    b = mT(np.linalg.solve(mT(r), mT(t)))       # dA R^{-1}
    c = mT(q) @ b
    low = c * _tril_mask(shape_of(r)[-1], r, k=-1)
    o = low - mT(low)
    return q @ (o - c) + b, (c - o) @ r


def _tall_vjp(q, r, ct_q, ct_r):
    # Adjoint of _tall_jvp, in reverse order of its lines.
    ob = cb = bb = Zero
    if ct_q is not Zero:
        qtq = mT(q) @ ct_q
        ob, cb, bb = qtq, -qtq, ct_q
    if ct_r is not Zero:
        rrt = ct_r @ mT(r)
        ob, cb = add_any(ob, -rrt), add_any(cb, rrt)
    low = ob - mT(ob)
    cb = cb + low * _tril_mask(shape_of(r)[-1], r, k=-1)
    bb = add_any(bb, q @ cb)
    return mT(np.linalg.solve(r, mT(bb)))        # B̄ R^{-T}


def _split_cols(m: int, n: int, like):
    """Constant selectors ``E1 (n, m)``, ``E2 (n, n-m)`` with ``A1 = A E1``,
    ``A2 = A E2`` (matmuls instead of slices keep the rule to matmul only)."""
    eye = np.eye(n)
    return const_like(eye[:, :m], like), const_like(eye[:, m:], like)


def _qr_jvp(primals, tangents, out):
    t = tangents[0]
    if t is Zero:
        return Zero, Zero
    q, r = out
    m, n = shape_of(primals[0])[-2:]
    if m >= n:
        return _tall_jvp(q, r, t)
    e1, e2 = _split_cols(m, n, r)
    dq, dr1 = _tall_jvp(q, r @ e1, t @ e1)
    dr2 = mT(dq) @ (primals[0] @ e2) + mT(q) @ (t @ e2)
    return dq, dr1 @ mT(e1) + dr2 @ mT(e2)


def _qr_vjp(cts, primals, out, needs):
    ct_q, ct_r = cts
    q, r = out
    a = primals[0]
    m, n = shape_of(a)[-2:]
    if m >= n:
        return (_tall_vjp(q, r, ct_q, ct_r),)
    e1, e2 = _split_cols(m, n, r)
    ct_r1 = Zero if ct_r is Zero else ct_r @ e1
    a2bar = Zero
    if ct_r is not Zero:
        ct_r2 = ct_r @ e2
        ct_q = add_any(ct_q, (a @ e2) @ mT(ct_r2))
        a2bar = q @ ct_r2
    a1bar = _tall_vjp(q, r @ e1, ct_q, ct_r1)
    return (add_any(a1bar @ mT(e1), Zero if a2bar is Zero else a2bar @ mT(e2)),)


qr_p = defprimitive("qr", _qr_impl, jvp=_qr_jvp, vjp=_qr_vjp, n_outputs=2)


@implements(np.linalg.qr)
def qr(a, mode="reduced"):
    """``mode`` 'reduced' (``(Q, R)``), 'r' (``R``); 'complete' only where it
    equals 'reduced' (``m <= n``): the extra columns of a complete ``Q`` are
    not determined by ``A`` and have no derivative."""
    m, n = shape_of(a)[-2:]
    if mode == "complete" and m > n:
        raise NotImplementedError(
            "dualad cannot differentiate numpy.linalg.qr(a, mode='complete') for a tall "
            "matrix: the extra columns of Q are arbitrary. Use mode='reduced'.")
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"Unrecognized mode '{mode}' for differentiable numpy.linalg.qr; "
                         "use 'reduced', 'complete' or 'r'")
    q, r = qr_p(a)
    return r if mode == "r" else QRResult(q, r)


# ============================================================================
# svd (thin): A = U diag(s) V^T, k = min(m, n), dS = U^T dA V
#   ds = diag(dS)
#   dU = U (F * (dS D + D dS^T)) [+ (I - U U^T) dA V D^{-1}   if m > n]
#   dV = V (F * (D dS + dS^T D)) [+ (I - V V^T) dA^T U D^{-1} if n > m]
#   F[i, j] = 1 / (s[j]^2 - s[i]^2) (masked), D = diag(s)
# ============================================================================
def _svd_impl(a, hermitian=False):
    u, s, vh = namespace_of(a).linalg.svd(a, full_matrices=False, hermitian=hermitian)
    return u, s, vh


def _svd_jvp(primals, tangents, out, hermitian=False):
    t = tangents[0]
    if t is Zero:
        return Zero, Zero, Zero
    u, s, vh = out
    m, n = shape_of(primals[0])[-2:]
    v = mT(vh)
    ds = mT(u) @ t @ v
    f = inverse_gaps(s, squares=True)
    sr, sc = row(s), col(s)
    du = u @ (f * (ds * sr + sc * mT(ds)))
    dv = v @ (f * (sc * ds + mT(ds) * sr))
    if m > n:
        tv = t @ v
        du = du + (tv - u @ (mT(u) @ tv)) / sr
    if n > m:
        tu = mT(t) @ u
        dv = dv + (tu - v @ (vh @ tu)) / sr
    return du, diag_part(ds), mT(dv)


def _svd_vjp(cts, primals, out, needs, hermitian=False):
    ct_u, ct_s, ct_vh = cts
    u, s, vh = out
    m, n = shape_of(primals[0])[-2:]
    f = inverse_gaps(s, squares=True)
    sr, sc = row(s), col(s)
    g = Zero if ct_s is Zero else diag_embed(ct_s)
    if ct_u is not Zero:
        mu = f * (mT(u) @ ct_u)
        g = add_any(g, (mu + mT(mu)) * sr)
    if ct_vh is not Zero:
        mv = f * (vh @ mT(ct_vh))
        g = add_any(g, sc * (mv + mT(mv)))
    abar = u @ g @ vh
    if m > n and ct_u is not Zero:
        gu = ct_u / sr
        abar = abar + (gu - u @ (mT(u) @ gu)) @ vh
    if n > m and ct_vh is not Zero:
        gv = mT(ct_vh) / sr
        abar = abar + u @ mT(gv - mT(vh) @ (vh @ gv))
    return (abar,)


svd_p = defprimitive("svd", _svd_impl, jvp=_svd_jvp, vjp=_svd_vjp, n_outputs=3)


@implements(np.linalg.svd)
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """``(U, S, Vh)`` or, with ``compute_uv=False``, the singular values.
    ``full_matrices=True`` is accepted where it equals the thin SVD (square
    matrices); otherwise the extra singular vectors are arbitrary."""
    m, n = shape_of(a)[-2:]
    if compute_uv and full_matrices and m != n:
        raise NotImplementedError(
            "dualad cannot differentiate numpy.linalg.svd(a, full_matrices=True) for a "
            "non-square matrix: the extra singular vectors are arbitrary. Pass "
            "full_matrices=False (or compute_uv=False for the values only).")
    out = svd_p(a, hermitian=bool(hermitian))
    return SVDResult(*out) if compute_uv else out[1]


if hasattr(np.linalg, "svdvals"):
    @implements(np.linalg.svdvals)
    def svdvals(x, /):
        """Singular values (through the ``svd`` primitive, for higher orders)."""
        return svd_p(x, hermitian=False)[1]

