"""``np.linalg.eig`` / ``eigvals``: the general (non-symmetric) eigenproblem
``A = V diag(w) V^{-1}``, with complex eigenvalues and eigenvectors.

JVP (``S = V^{-1} dA V``, ``F[i, j] = 1 / (w[j] - w[i])`` off the diagonal)::

    dw = diag(S)          G = V (F * S)          dV = G + V diag(c)

where ``c`` keeps NumPy's (LAPACK's) gauge: every eigenvector has unit norm
and its largest-magnitude component real, so ``Re(v^H dv) = 0`` and
``Im(dv[k]) = 0`` at that component ``k``. (JAX differentiates eigenvalues
only; here eigenvectors have derivatives too, in that gauge.) The VJP is the
transpose of this map under JAX's pairing ``Re(sum(ct * t))``. Both are
written with dispatched calls, so they differentiate themselves. Repeated
eigenvalues make ``F`` (and the eigenvectors) undefined: those pairs are
masked as in ``eigh``.

>>> import numpy as np, dualad as da
>>> a = np.array([[2.0, 1.0], [0.0, 3.0]])
>>> da.jacfwd(lambda a: np.linalg.eigvals(a))(a).real[:, 0, 0]
array([1., 0.])
"""
from __future__ import annotations

import numpy as np

from dualad.core.backend import peel_keep_batch
from dualad.core.dispatch import implements
from dualad.core.registry import defprimitive, shape_of
from dualad.core.zero import Zero
from dualad.rules.complex import is_complex
from dualad.rules.linalg import mT
from dualad.rules.linalg_decomp import inverse_gaps

try:  # NumPy >= 2 named tuples
    from numpy.linalg._linalg import EigResult
except ImportError:  # pragma: no cover - NumPy 1.x
    EigResult = tuple


def _gauge(v):
    """The one-hot mask (a constant) of each column's largest component, and
    that component's real value (traced: it moves with ``A``)."""
    vv = peel_keep_batch(v)
    k = np.argmax(np.real(vv * np.conj(vv)), axis=-2)
    n = shape_of(v)[-1]
    mask = np.arange(n)[:, None] == k[..., None, :]
    return mask, np.real(np.sum(np.where(mask, v, 0.0), axis=-2))


def _eig_jvp(primals, tangents, out):
    t = tangents[0]
    if t is Zero:
        return Zero, Zero
    w, v = out
    s = np.linalg.solve(v, t @ v)                        # V^{-1} dA V
    dw = np.diagonal(s, axis1=-2, axis2=-1)
    g = v @ (inverse_gaps(w) * s)
    c = -np.real(np.sum(np.conj(v) * g, axis=-2))
    if is_complex(v):
        mask, r = _gauge(v)
        c = c - 1j * np.imag(np.sum(np.where(mask, g, 0.0), axis=-2)) / r
    return dw, g + v * np.expand_dims(c, -2)


def _eig_vjp(cts, primals, out, needs):
    ct_w, ct_v = cts
    w, v = out
    ct_s = Zero
    if ct_v is not Zero:
        q = np.sum(ct_v * v, axis=-2)                     # diag(ct_V^T V)
        ct_g = ct_v - np.conj(v) * np.expand_dims(np.real(q), -2)
        if is_complex(v):
            mask, r = _gauge(v)
            ct_g = ct_g + np.where(mask, np.expand_dims(-1j * np.imag(q) / r, -2), 0.0)
        ct_s = inverse_gaps(w) * (mT(v) @ ct_g)
    if ct_w is not Zero:
        n = shape_of(w)[-1]
        d = np.expand_dims(ct_w, -1) * np.eye(n)
        ct_s = d if ct_s is Zero else ct_s + d
    ct_a = np.linalg.solve(mT(v), ct_s @ mT(v))           # V^{-T} ct_S V^T
    return (ct_a if is_complex(primals[0]) else np.real(ct_a),)


eig_p = defprimitive("eig", lambda a: tuple(np.linalg.eig(a)), jvp=_eig_jvp, vjp=_eig_vjp,
                     n_outputs=2)


@implements(np.linalg.eig)
def eig(a):
    """``(eigenvalues, eigenvectors)``; complex unless all eigenvalues are real
    (NumPy's rule). See the module docstring for the eigenvector gauge."""
    return EigResult(*eig_p(a))


@implements(np.linalg.eigvals)
def eigvals(a):
    return eig_p(a)[0]
