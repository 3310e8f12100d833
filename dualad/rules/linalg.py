"""``np.linalg``: solve, inv, det, slogdet, pinv, matrix_power, multi_dot.

The factorisations (cholesky, eigh, qr, svd) live in :mod:`.linalg_decomp`;
the small matrix helpers they share are defined here.

Every primitive works on stacks ``(..., m, n)`` as NumPy does. Tangents and
cotangents carry ``lead`` batch axes in front; a batch of tangents of a stack
of matrices is just a bigger stack, so ``np.matmul`` and ``np.linalg.solve``
broadcasting handle it, with :func:`~dualad.core.registry.align` inserting unit
axes where an input has fewer batch axes than the output. Transposes are
always ``swapaxes(-1, -2)`` (never ``.T``, which would also flip batch axes).

Rules are written with dispatched NumPy calls only (``@``, ``np.linalg.solve``,
``np.linalg.inv``...), so they differentiate themselves to any order. Solves
are preferred to explicit inverses. Derivatives are those of the smooth
branch: a singular matrix has no derivative of ``inv``/``solve``/``slogdet``
(slogdet raises ``LinAlgError`` saying so rather than return -inf/NaN
derivatives). ``det`` is a polynomial and has one everywhere: the adjugate,
``det(A) A^{-T}`` when ``det(A) != 0`` and the cofactor matrix (Laplace
expansion, as ``det`` of row-replaced matrices) where ``det(A) == 0``.

Example::

    >>> import numpy as np, dualad as da
    >>> A = np.array([[2.0, 1.0], [0.0, 3.0]])
    >>> da.grad(lambda a: np.linalg.det(a))(A)     # det(A) A^{-T}
    array([[ 3.,  0.],
           [-1.,  2.]])
"""
from __future__ import annotations

import operator

import numpy as np

from dualad.core.backend import namespace_of, peel, result_float_dtype
from dualad.core.dispatch import implements, register_nondiff
from dualad.core.registry import (
    align,
    defprimitive,
    lead_of,
    ndim_of,
    shape_of,
    unbroadcast,
)
from dualad.core.zero import Zero, add_any

try:  # NumPy >= 2 returns named tuples; keep the same types for traced values
    from numpy.linalg._linalg import SlogdetResult
except ImportError:  # pragma: no cover - NumPy 1.x
    SlogdetResult = tuple


# ============================================================================
# helpers shared with linalg_decomp (all written with dispatched NumPy calls)
# ============================================================================
def mT(x):
    """Transpose of the last two axes (batch and lead axes untouched)."""
    return np.swapaxes(x, -1, -2)


def sym(x):
    """``(x + x^T) / 2`` on the last two axes."""
    return (x + mT(x)) * 0.5


def dtype_of(x):
    """The floating dtype of ``x`` (through any tracer levels), for constants."""
    return result_float_dtype(x)


def eye_like(n: int, x):
    """An ``n x n`` identity with ``x``'s dtype and array module (a constant)."""
    return namespace_of(x).eye(n, dtype=dtype_of(x))


def const_like(array, x):
    """A NumPy constant moved to ``x``'s array module and dtype."""
    return namespace_of(x).asarray(array, dtype=dtype_of(x))


def diag_part(x):
    """The diagonal of the last two axes, ``(..., n, n) -> (..., n)``.

    Written as ``sum(x * I, -1)`` so it only needs multiply and sum."""
    return np.sum(x * eye_like(shape_of(x)[-1], x), axis=-1)


def diag_embed(v):
    """``(..., n) -> (..., n, n)`` with ``v`` on the diagonal."""
    return col(v) * eye_like(shape_of(v)[-1], v)


def row(v):
    """``(..., n) -> (..., 1, n)``: ``row(v)[i, j] = v[j]``."""
    s = shape_of(v)
    return v.reshape(s[:-1] + (1, s[-1]))


def col(v):
    """``(..., n) -> (..., n, 1)``: ``col(v)[i, j] = v[i]``."""
    return v.reshape(shape_of(v) + (1,))


def trace2(x):
    """Trace over the last two axes."""
    return np.sum(x * eye_like(shape_of(x)[-1], x), axis=(-2, -1))


def _square(a, name: str) -> int:
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise np.linalg.LinAlgError(
            f"numpy.linalg.{name} needs a (stack of) square matrices, got shape {s}")
    return s[-1]


# ============================================================================
# solve: x = A^{-1} B, B a (stack of) matrices (vectors are promoted at dispatch)
# ============================================================================
def _solve_jvp(primals, tangents, out):
    # dx = A^{-1} (dB - dA x); align() puts unit axes after the lead axes when
    # an input has fewer batch axes than x, so the matmul broadcasts right.
    a, b = primals
    ta, tb = tangents
    nd = ndim_of(out)
    rhs = Zero if tb is Zero else align(tb, ndim_of(b), nd)
    if ta is not Zero:
        rhs = add_any(rhs, -(align(ta, ndim_of(a), nd) @ out))
    return Zero if rhs is Zero else np.linalg.solve(a, rhs)


def _solve_vjp(ct, primals, out, needs):
    # B̄ = A^{-T} x̄, Ā = -B̄ x^T, then undo the batch broadcasting.
    a, b = primals
    lead = lead_of(ct, out)
    bbar = np.linalg.solve(mT(a), ct)
    abar = unbroadcast(-(bbar @ mT(out)), shape_of(a), lead) if needs[0] else Zero
    return abar, unbroadcast(bbar, shape_of(b), lead) if needs[1] else Zero


solve_p = defprimitive("solve", lambda a, b: namespace_of(a, b).linalg.solve(a, b),
                       jvp=_solve_jvp, vjp=_solve_vjp)


@implements(np.linalg.solve)
def solve(a, b):
    """``np.linalg.solve``: ``b`` of shape ``(n,)`` is a vector (NumPy 2
    semantics), anything else a (stack of) ``(n, k)`` matrices."""
    _square(a, "solve")
    if ndim_of(b) == 1:
        # Why: the primitive only sees matrix right-hand sides, so one rule
        # (and one lead-axis convention) covers both cases.
        x = solve_p(a, b.reshape(shape_of(b) + (1,)))
        return x.reshape(shape_of(x)[:-1])
    return solve_p(a, b)


# ============================================================================
# inv: d(A^{-1}) = -A^{-1} dA A^{-1}
# ============================================================================
def _inv_jvp(primals, tangents, out):
    t = tangents[0]
    return Zero if t is Zero else -(out @ t @ out)


def _inv_vjp(ct, primals, out, needs):
    return (-(mT(out) @ ct @ mT(out)),)


inv_p = defprimitive("inv", lambda a: namespace_of(a).linalg.inv(a),
                     jvp=_inv_jvp, vjp=_inv_vjp)


@implements(np.linalg.inv)
def inv(a):
    _square(a, "inv")
    return inv_p(a)


# ============================================================================
# det and slogdet: d log|det A| = tr(A^{-1} dA)
# ============================================================================
def _dlogdet(a, t):
    return trace2(np.linalg.solve(a, t))


def _grad_scale(g, a):
    """``g[..., None, None] * A^{-T}``: the cotangent of ``A`` from one of the
    (log-)determinant."""
    return g.reshape(shape_of(g) + (1, 1)) * mT(np.linalg.inv(a))


def _singular(det_value) -> bool:
    """Whether some matrix of the stack has determinant exactly 0 (LU found a
    zero pivot): there ``det(A) A^{-1}`` is 0 * inf."""
    v = peel(det_value)
    return not bool(namespace_of(v).all(v != 0))


def _ill_conditioned(a, det_value) -> bool:
    """Singular, or ``cond(A) > eps**-1/4`` somewhere in the stack: there the
    derivatives of ``det(A) A^{-1}`` cancel catastrophically (second order
    errors grow like ``eps cond^2``), so det takes the cofactor path."""
    if _singular(det_value):
        return True
    v = peel(a)
    xp = namespace_of(v)
    if v.size == 0 or not bool(xp.all(xp.isfinite(v))):
        return False            # NaN/inf in, NaN out (the SVD would not converge)
    s = xp.linalg.svd(v, compute_uv=False)
    eps = float(np.finfo(dtype_of(a)).eps)
    return bool(xp.any(s[..., -1] * eps ** -0.25 < s[..., 0]))


def _cofactors(a):
    """``C[..., i, j] = det(A with row i replaced by e_j)``: the cofactor
    matrix (``adj(A) = C^T``, Laplace expansion along row i), exact at
    singular matrices too. One batched ``det`` of ``n^2`` matrices, written
    with dispatched ops so it differentiates itself (at a singular point the
    inner dets take this path again)."""
    n = shape_of(a)[-1]
    eye = np.eye(n)
    keep = (1.0 - eye)[:, None, :, None]                 # [i, -, r, -]: row r != i
    unit = eye[:, None, :, None] * eye[None, :, None, :]   # [i, j, r, c]: r == i, c == j
    stacked = np.reshape(a, shape_of(a)[:-2] + (1, 1, n, n)) * const_like(keep, a)
    return det_p(stacked + const_like(unit, a))


def _det_jvp(primals, tangents, out):
    t = tangents[0]
    if t is Zero:
        return Zero
    if _ill_conditioned(primals[0], out):
        return np.sum(_cofactors(primals[0]) * t, axis=(-2, -1))
    return out * _dlogdet(primals[0], t)


def _det_vjp(ct, primals, out, needs):
    if _ill_conditioned(primals[0], out):
        return (ct.reshape(shape_of(ct) + (1, 1)) * _cofactors(primals[0]),)
    return (_grad_scale(ct * out, primals[0]),)


det_p = defprimitive("det", lambda a: namespace_of(a).linalg.det(a),
                     jvp=_det_jvp, vjp=_det_vjp)


def _slogdet_impl(a):
    sign, logabsdet = namespace_of(a).linalg.slogdet(a)
    return sign, logabsdet


def _check_logdet_finite(out) -> None:
    # log|det A| is -inf at a singular A and has no derivative there: say so
    # rather than return -inf/NaN derivatives (JAX) or NumPy's "Singular matrix".
    if _singular(out[0]):
        raise np.linalg.LinAlgError(
            "numpy.linalg.slogdet: the matrix is singular (sign 0, logabsdet -inf), so "
            "log|det| has no derivative there; differentiate np.linalg.det instead "
            "(its derivative at a singular matrix is the adjugate)")


def _slogdet_jvp(primals, tangents, out):
    # The sign is piecewise constant: it never carries a tangent.
    t = tangents[0]
    if t is Zero:
        return (Zero, Zero)
    _check_logdet_finite(out)
    return (Zero, _dlogdet(primals[0], t))


def _slogdet_vjp(cts, primals, out, needs):
    ct = cts[1]
    if ct is Zero:
        return (Zero,)
    _check_logdet_finite(out)
    return (_grad_scale(ct, primals[0]),)


slogdet_p = defprimitive("slogdet", _slogdet_impl, jvp=_slogdet_jvp, vjp=_slogdet_vjp,
                         n_outputs=2)


@implements(np.linalg.det)
def det(a):
    _square(a, "det")
    return det_p(a)


@implements(np.linalg.slogdet)
def slogdet(a):
    """``(sign, logabsdet)``; only ``logabsdet`` has a derivative."""
    _square(a, "slogdet")
    return SlogdetResult(*slogdet_p(a))


# ============================================================================
# pinv: the constant-rank derivative (Golub & Pereyra 1973)
#   dX = -X dA X + X X^T dA^T (I - A X) + (I - X A) dA^T X^T X
# ============================================================================
def _pinv_impl(a, rcond=None, rtol=None, hermitian=False):
    kwargs = {"hermitian": hermitian}
    if rcond is not None:
        kwargs["rcond"] = rcond
    if rtol is not None:
        kwargs["rtol"] = rtol
    return namespace_of(a).linalg.pinv(a, **kwargs)


def _pinv_jvp(primals, tangents, out, **params):
    a, t, x = primals[0], tangents[0], out
    if t is Zero:
        return Zero
    tt = mT(t)
    return (-(x @ t @ x)
            + (x @ mT(x)) @ (tt - (tt @ a) @ x)
            + (tt - x @ (a @ tt)) @ (mT(x) @ x))


def _pinv_vjp(ct, primals, out, needs, **params):
    # The adjoint of the three terms above, term by term.
    a, x = primals[0], out
    gt = mT(ct)
    left = gt @ (x @ mT(x))
    right = (mT(x) @ x) @ gt
    return (-(mT(x) @ ct @ mT(x)) + (left - a @ (x @ left)) + (right - (right @ x) @ a),)


pinv_p = defprimitive("pinv", _pinv_impl, jvp=_pinv_jvp, vjp=_pinv_vjp)


@implements(np.linalg.pinv)
def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """``np.linalg.pinv``; the derivative holds where the rank is locally constant
    (singular values at the cutoff make it jump)."""
    return pinv_p(a, rcond=rcond, rtol=rtol, hermitian=bool(hermitian))


# ============================================================================
# compositions: matrix_power, multi_dot, matrix_transpose
# ============================================================================
@implements(np.linalg.matrix_power)
def matrix_power(a, n):
    """``A^n`` by repeated squaring on ``np.matmul`` (``inv`` first for n < 0)."""
    n = operator.index(n)
    size = _square(a, "matrix_power")
    if n == 0:
        # A^0 = I does not depend on A: a plain constant.
        xp = namespace_of(a)
        return xp.broadcast_to(eye_like(size, a), shape_of(a)).copy()
    if n < 0:
        a, n = np.linalg.inv(a), -n
    result, base = None, a
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return result


@implements(np.linalg.multi_dot)
def multi_dot(arrays, *, out=None):
    """Left-to-right ``np.matmul`` chain (1-D ends are a row / column vector,
    as in NumPy); the derivative does not depend on the multiplication order."""
    if out is not None:
        raise TypeError("numpy.linalg.multi_dot(..., out=...) into a traced array is not "
                        "differentiable; use the returned value instead.")
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("Expecting at least two arrays.")
    result = arrays[0]
    for m in arrays[1:]:
        result = result @ m
    return result


if hasattr(np.linalg, "matrix_transpose"):
    implements(np.linalg.matrix_transpose)(mT)

# An integer result: no derivative.
register_nondiff(np.linalg.matrix_rank)
