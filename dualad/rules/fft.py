"""The FFT family as two linear primitives with their transposes.

* ``fft`` (complex to complex, forward or inverse, over given axes, any
  ``norm``): the DFT matrix is symmetric, so its transpose (JAX's convention:
  no conjugation) is the same transform.
* ``irfft`` (Hermitian half-spectrum to real, along one axis): real-linear but
  not complex-linear; its transpose is ``conj(w * rfft(ct)) * scale`` with
  weights 1, 2, ..., 2, (1) for the terms the half-spectrum stands for twice.

Everything else is a composition: ``rfft = crop(fft(complex(x)))``,
``irfftn = irfft(ifftn over the other axes)``, ``n=``/``s=`` crop or zero-pad
the input, ``fftshift`` is a ``roll``.

>>> import numpy as np, dualad as da
>>> g = da.grad(lambda x: np.sum(np.abs(np.fft.rfft(x)) ** 2))(np.array([1.0, 2.0, 0.0]))
>>> np.round(g, 12)
array([6., 9., 3.])
"""
from __future__ import annotations

import numpy as np

from dualad.core.dispatch import implements
from dualad.core.registry import defprimitive, ndim_of, shape_of
from dualad.rules.complex import as_complex, conj, is_complex

_NORMS = (None, "backward", "ortho", "forward")


def _norm(norm):
    if norm not in _NORMS:
        raise ValueError(f'Invalid norm value {norm}; should be "backward", "ortho" or "forward".')
    return norm or "backward"


# ============================================================================
# primitives
# ============================================================================
def _fft_impl(x, axes, inverse, norm, lead=0):
    f = np.fft.ifftn if inverse else np.fft.fftn
    return f(x, axes=tuple(a + lead for a in axes), norm=norm)


fft_p = defprimitive(
    "fft", _fft_impl,
    transpose=lambda ct, primals, lead, axes, inverse, norm: fft_p(
        as_complex(ct), axes=axes, inverse=inverse, norm=norm, lead=lead))


def _irfft_impl(x, n, axis, norm, lead=0):
    return np.fft.irfft(x, n=n, axis=axis + lead, norm=norm)


def _irfft_transpose(ct, primals, lead, n, axis, norm):
    ax = axis + lead
    if is_complex(ct):        # only the real part pairs with a real output
        ct = np.real(ct)
    m = n // 2 + 1
    w = np.full(m, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    scale = {"backward": 1.0 / n, "ortho": 1.0 / np.sqrt(n), "forward": 1.0}[norm]
    w = (w * scale).astype(ct.dtype).reshape((m,) + (1,) * (ndim_of(ct) - 1 - ax))
    return conj(np.fft.rfft(ct, axis=ax) * w)


irfft_p = defprimitive("irfft", _irfft_impl, transpose=_irfft_transpose)


# ============================================================================
# helpers: axes, sizes
# ============================================================================
def _resize(x, axis: int, n: int):
    """Crop or zero-pad ``x`` along ``axis`` to length ``n`` (NumPy's ``n=``)."""
    if n < 1:
        raise ValueError(f"Invalid number of FFT data points ({n}) specified.")
    have = shape_of(x)[axis]
    if have == n:
        return x
    if have > n:
        return x[(slice(None),) * axis + (slice(0, n),)]
    pad_shape = list(shape_of(x))
    pad_shape[axis] = n - have
    dtype = np.result_type(x.dtype, np.float32)
    return np.concatenate([x, np.zeros(pad_shape, dtype=dtype)], axis=axis)


def _axes_sizes(x, s, axes):
    """NumPy's defaults: all axes, or the last ``len(s)`` when only ``s`` is given."""
    nd = ndim_of(x)
    if axes is None:
        axes = range(nd) if s is None else range(nd - len(s), nd)
    axes = tuple(int(a) % max(nd, 1) for a in axes)
    s = tuple(shape_of(x)[a] for a in axes) if s is None else tuple(int(k) for k in s)
    if len(s) != len(axes):
        raise ValueError("Shape and axes have different lengths.")
    return axes, s


def _c2c(x, s, axes, inverse, norm):
    axes, s = _axes_sizes(x, s, axes)
    x = as_complex(x)
    for a, k in zip(axes, s):
        x = _resize(x, a, k)
    if len(set(axes)) != len(axes):        # repeated axes: NumPy applies each in turn
        for a in axes:
            x = fft_p(x, axes=(a,), inverse=inverse, norm=_norm(norm))
        return x
    return fft_p(x, axes=axes, inverse=inverse, norm=_norm(norm))


def _real_input(x, name):
    if is_complex(x):
        raise TypeError(f"numpy.fft.{name} of a complex traced array would drop its imaginary "
                        "part; take np.real(x) first, or use numpy.fft.fft.")


# ============================================================================
# numpy.fft handlers
# ============================================================================
@implements(np.fft.fft)
def fft(a, n=None, axis=-1, norm=None, out=None):
    return _c2c(a, None if n is None else (n,), (axis,), False, norm)


@implements(np.fft.ifft)
def ifft(a, n=None, axis=-1, norm=None, out=None):
    return _c2c(a, None if n is None else (n,), (axis,), True, norm)


@implements(np.fft.fftn)
def fftn(a, s=None, axes=None, norm=None, out=None):
    return _c2c(a, s, axes, False, norm)


@implements(np.fft.ifftn)
def ifftn(a, s=None, axes=None, norm=None, out=None):
    return _c2c(a, s, axes, True, norm)


@implements(np.fft.fft2)
def fft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return _c2c(a, s, axes, False, norm)


@implements(np.fft.ifft2)
def ifft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return _c2c(a, s, axes, True, norm)


@implements(np.fft.rfftn)
def rfftn(a, s=None, axes=None, norm=None, out=None):
    """The full complex FFT, cropped to the non-negative frequencies of the
    last axis (twice the work of NumPy's rfftn, the same result)."""
    _real_input(a, "rfftn")
    axes, s = _axes_sizes(a, s, axes)
    full = _c2c(a, s, axes, False, norm)
    last = axes[-1]
    return full[(slice(None),) * last + (slice(0, s[-1] // 2 + 1),)]


@implements(np.fft.rfft)
def rfft(a, n=None, axis=-1, norm=None, out=None):
    return rfftn(a, None if n is None else (n,), (axis,), norm)


@implements(np.fft.rfft2)
def rfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return rfftn(a, s, axes, norm)


@implements(np.fft.irfftn)
def irfftn(a, s=None, axes=None, norm=None, out=None):
    if s is None:
        axes, s = _axes_sizes(a, None, axes)
        s = s[:-1] + (2 * (s[-1] - 1),)
    else:
        axes, s = _axes_sizes(a, s, axes)
    x = as_complex(a)
    if len(axes) > 1:
        x = _c2c(x, s[:-1], axes[:-1], True, norm)
    n, last = s[-1], axes[-1]
    x = _resize(x, last, n // 2 + 1)
    return irfft_p(x, n=n, axis=last, norm=_norm(norm))


@implements(np.fft.irfft)
def irfft(a, n=None, axis=-1, norm=None, out=None):
    return irfftn(a, None if n is None else (n,), (axis,), norm)


@implements(np.fft.irfft2)
def irfft2(a, s=None, axes=(-2, -1), norm=None, out=None):
    return irfftn(a, s, axes, norm)


def _shift(x, axes, sign):
    nd = ndim_of(x)
    axes = tuple(range(nd)) if axes is None else (
        (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes))
    shifts = tuple(sign * (shape_of(x)[int(a) % nd] // 2) for a in axes)
    return np.roll(x, shifts, axis=axes)


@implements(np.fft.fftshift)
def fftshift(x, axes=None):
    return _shift(x, axes, 1)


@implements(np.fft.ifftshift)
def ifftshift(x, axes=None):
    return _shift(x, axes, -1)
