"""Complex numbers: ``real``, ``imag``, ``conj`` and the real-to-complex cast,
with JAX's conventions, plus the guard that refuses complex values in rules
that are only correct for real ones.

Convention (as JAX): a tangent of a complex value is a complex array and a
JVP is the (real-linear) pushforward; a cotangent ``c`` of a value pairs with
a tangent ``t`` as ``Re(sum(c * t))`` (no conjugation), so a VJP is the
transpose under that pairing. Holomorphic ops (``exp``, ``*``, ``matmul``...)
then keep their partials unchanged: ``t -> f'(z) t`` transposes to
``c -> f'(z) c``. The non-holomorphic ones are written here from three linear
primitives::

    real:  t -> Re t        c -> c + 0j
    imag:  t -> Im t        c -> -1j * c
    conj:  t -> conj t      c -> conj c

and ``abs``/``angle`` of a complex value go through them (``hypot(re, im)``,
``arctan2(im, re)``). For a real-valued ``f`` of ``z = x + iy``, ``grad``
returns ``df/dx - i df/dy`` (JAX's value).

>>> import numpy as np, dualad as da
>>> complex(da.grad(lambda z: np.abs(z) ** 2)(np.complex128(3 + 4j)))
(6-8j)
"""
from __future__ import annotations

import numpy as np

import dualad.rules.contractions  # noqa: F401  (their handlers are wrapped below)
from dualad.core.backend import peel, peel_keep_batch
from dualad.core.dispatch import FUNCTIONS, UFUNCS, implements, register_nondiff
from dualad.core.registry import defprimitive, ndim_of, shape_of
from dualad.rules.linalg import pinv_p, slogdet_p
from dualad.rules.linalg_decomp import cholesky_p, eigh_p, qr_p, svd_p
from dualad.rules.reductions import norm2_p, norm_svals_p, reduce_max_p, reduce_min_p
from dualad.rules.ufuncs import (
    absolute_p,
    arctan2_p,
    cbrt_p,
    fmax_p,
    fmin_p,
    hypot_p,
    logaddexp_p,
    maximum_p,
    minimum_p,
)


def is_complex(x) -> bool:
    """Whether ``x`` (traced or plain) holds complex values (from its dtype
    alone: no read of a traced value, which the sparsity tracer would note)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return isinstance(x, complex)
    return dtype.kind == "c"


def _complex_dtype(x):
    dtype = getattr(x, "dtype", None)
    return np.result_type(np.float64 if dtype is None else dtype, np.complex64)


def _real_impl(x, lead=0):
    return np.real(x)


def _imag_impl(x, lead=0):
    return np.imag(x)


def _conj_impl(x, lead=0):
    return np.conjugate(x)


def _to_complex_impl(x, dtype, lead=0):
    return np.asarray(x).astype(dtype) if not hasattr(x, "astype") else x.astype(dtype)


def _lift(ct, primals, lead):
    """The cotangent of a real output, as the complex cotangent of the complex
    input. Only its real part is meaningful: a real value's cotangent may
    carry an imaginary part picked up on the way (``x * 1j`` sends a complex
    cotangent to a real ``x``), which pairs with nothing and must not leak
    back into complex values."""
    if is_complex(ct):
        ct = real_p(ct, lead=0)
    return to_complex_p(ct, dtype=_complex_dtype(primals[0]), lead=lead)


real_p = defprimitive("real", _real_impl, transpose=_lift)
imag_p = defprimitive("imag", _imag_impl,
                      transpose=lambda ct, primals, lead: _lift(ct, primals, lead) * -1j)
conj_p = defprimitive("conj", _conj_impl,
                      transpose=lambda ct, primals, lead: conj_p(ct, lead=lead))
# A real array seen as complex: the transpose keeps the real part of the
# cotangent (the part that pairs with a real tangent).
to_complex_p = defprimitive("to_complex", _to_complex_impl,
                            transpose=lambda ct, primals, lead, dtype: real_p(ct, lead=lead))


def as_complex(x):
    """``x`` as a complex array (a linear cast for real traced values)."""
    if is_complex(x):
        return x
    if not hasattr(x, "_level"):
        return np.asarray(x).astype(_complex_dtype(x))
    return to_complex_p(x, dtype=_complex_dtype(x))


@implements(np.real)
def real(x):
    return real_p(x) if is_complex(x) else x


@implements(np.imag)
def imag(x):
    if is_complex(x):
        return imag_p(x)
    return np.zeros(x.shape, x.dtype)  # the imaginary part of a real value: constant 0


@implements(np.conjugate, np.conj)
def conj(x, **kwargs):
    return conj_p(x) if is_complex(x) else x


@implements(np.angle)
def angle(z, deg=False):
    """``arctan2(imag, real)``; a real input has the constant angle 0 or pi."""
    if not is_complex(z):
        v = peel_keep_batch(z)
        if not hasattr(v, "_level"):
            return np.angle(v, deg)
        # batched by a vmap: angle(x) = arctan2(0, x), batch kept
        a = np.arctan2(np.zeros(shape_of(z)), v)
        return a * (180.0 / np.pi) if deg else a
    a = np.arctan2(imag(z), real(z))
    return a * (180.0 / np.pi) if deg else a


@implements(np.real_if_close)
def real_if_close(a, tol=100):
    """The real part when every imaginary part is within ``tol`` machine
    epsilons of 0 (decided on the primal, as NumPy does), else ``a``."""
    if not is_complex(a):
        return a
    v = peel(a)
    eps = np.finfo(np.real(v).dtype).eps
    limit = tol * eps if tol > 1 else tol
    return real(a) if np.all(np.abs(np.imag(v)) < limit) else a


def complex_abs(z):
    """``|z|`` of a complex value: ``hypot(re, im)``, whose derivative is the
    real-linear ``Re(conj(z) t) / |z|`` (0 at z = 0 is not defined: NaN-free
    only away from 0, as in JAX)."""
    return np.hypot(real(z), imag(z))


register_nondiff(np.iscomplex, np.isreal)


# ============================================================================
# the guard: rules written for real values refuse complex ones
# ============================================================================
def refuse_complex(prim) -> None:
    """Wrap ``prim.impl`` so a complex argument raises a ``TypeError`` naming
    the primitive. Every traced evaluation reaches ``impl`` on plain arrays,
    so this sees each complex intermediate; untraced NumPy never calls it."""
    impl = prim.impl

    def checked(*args, **params):
        for a in args:
            dtype = getattr(a, "dtype", None)
            if dtype.kind == "c" if dtype is not None else a.__class__ is complex:
                raise TypeError(
                    f"dualad's rule for {prim.name} is not correct for complex values "
                    f"(it got a {np.result_type(a)} argument). Differentiate the real and "
                    f"imaginary parts separately (np.real/np.imag), or use a "
                    f"formulation on real arrays.")
        return impl(*args, **params)
    checked.__wrapped__ = impl
    prim.impl = checked


# ============================================================================
# complex-aware versions of handlers declared for real values
# ============================================================================
def _for_complex(table, key, complex_version) -> None:
    """Route ``key``'s handler to ``complex_version`` when any argument is
    complex; real calls keep the original handler (one dtype test added)."""
    real_version = table[key]

    def handler(*args, **kwargs):
        for a in args:
            if hasattr(a, "_level") and a.dtype.kind == "c":
                return complex_version(real_version, *args, **kwargs)
        return real_version(*args, **kwargs)
    handler.__name__ = getattr(real_version, "__name__", "handler")
    table[key] = handler


def _abs(real_version, z, **kwargs):
    return complex_abs(z)


def _vdot(real_version, a, b):
    return real_version(conj(a), b)          # vdot conjugates its first argument


def _norm(real_version, x, ord=None, axis=None, keepdims=False):
    # |z| = |(re, im)|: the 2/Frobenius norms of a complex array are those of
    # its real and imaginary parts side by side (smooth where the norm is not
    # 0, unlike hypot per entry); other vector orders go through |z|.
    nd = ndim_of(x)
    if ord in (None, 2, "fro", "f") and (ord != 2 or axis is None and nd == 1
                                        or isinstance(axis, (int, np.integer))):
        ax = 0 if axis is None else (axis if isinstance(axis, (int, np.integer)) else axis[0])
        both = np.concatenate([real(x), imag(x)], axis=int(ax) % max(nd, 1))
        return real_version(both, ord=ord, axis=axis, keepdims=keepdims)
    if ord in ("nuc", 2, -2) or (axis is not None and not isinstance(axis, (int, np.integer))
                                 and len(axis) == 2 and ord not in ("fro", "f", None)):
        raise TypeError(f"dualad cannot differentiate numpy.linalg.norm(ord={ord!r}) of a "
                        "complex matrix (its rule is for real values).")
    return real_version(complex_abs(x), ord=ord, axis=axis, keepdims=keepdims)


def _var(real_version, a, *args, **kwargs):
    # var(z) = var(re z) + var(im z) (NumPy's definition: mean |z - mean|^2)
    return real_version(real(a), *args, **kwargs) + real_version(imag(a), *args, **kwargs)


def _std(real_version, a, *args, **kwargs):
    return np.sqrt(_var(FUNCTIONS[np.var], a, *args, **kwargs))


_for_complex(UFUNCS, np.absolute, _abs)
_for_complex(FUNCTIONS, np.vdot, _vdot)
_for_complex(FUNCTIONS, np.linalg.norm, _norm)
_for_complex(FUNCTIONS, np.var, _var)
_for_complex(FUNCTIONS, np.std, _std)

# Rules written for real values only: comparisons, real-only ufuncs and the
# decompositions whose rules use plain (not conjugate) transposes.
for _prim in (maximum_p, minimum_p, fmax_p, fmin_p, reduce_max_p, reduce_min_p, arctan2_p,
              hypot_p, logaddexp_p, cbrt_p, absolute_p, norm2_p, norm_svals_p, cholesky_p,
              eigh_p, qr_p, svd_p, pinv_p, slogdet_p):
    refuse_complex(_prim)
