"""Vectorisable float64 ``sin``, ``cos`` and ``exp`` for Numba kernels.

Numba's ``np.sin``/``np.cos``/``np.exp`` call the C library once per element,
so a loop over them never becomes SIMD code. The functions here are plain
arithmetic (no calls, no branches: selects only, and two bit casts), so LLVM
vectorises a loop that uses them (AVX2: four doubles per instruction). They
follow FreeBSD's msun (fdlibm) kernels, accurate to within an ulp of the
true value (the property tests compare them with NumPy over dense grids).

``sin`` and ``cos`` are exact only for ``|x| <= SINCOS_MAX``; outside it
(huge arguments, infinities) the value is meaningless, and the caller must
use the C library instead. The fused kernels of ``da.jit``
(:mod:`dualad.mixed.fuse`) count such elements with :func:`sincos_bad` in the
same loop and rerun the whole kernel with the C library's functions when the
count is not zero, so every value is either from here (in range) or from
libm (elsewhere). ``exp`` is exact for every argument: subnormal results,
overflow and infinities included (:func:`exp_bad` is always 0), so a fused
``exp(-x**2)`` at ``|x| > 26.6`` no longer reruns its kernel (W1 on
[-100, 100]: 18.8 -> ~3.5 ms). NaN arguments give NaN here.

- ``sin``/``cos``: Cody-Waite reduction by pi/2 with pi/2 in four parts (the
  three rounds of fdlibm's ``__ieee754_rem_pio2``, always taken), giving the
  reduced argument as a double-double ``y0 + y1``; ``__kernel_sin`` and
  ``__kernel_cos`` on it; the quadrant picks the kernel and the sign.
  Exact reduction needs ``|x| * 2/pi < 2**20``.
- ``exp``: ``x = k ln2 + r``, ``|r| <= ln2/2``, fdlibm's rational
  approximation of ``exp(r)``, scaled by ``2**k`` built from its bits in
  two factors (so subnormal and near-overflow results are exact too).

>>> import numpy as np
>>> from numba import njit
>>> s = njit(lambda x: (sin(x), cos(x), exp(x)))(0.5)
>>> bool(np.allclose(s, (np.sin(0.5), np.cos(0.5), np.exp(0.5)), rtol=1e-15, atol=0))
True
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["sin", "cos", "exp", "sincos_bad", "exp_bad", "SINCOS_MAX", "EXP_MAX", "VERSION"]


def _version() -> str:
    """A digest of this file: part of the cache key of every kernel that
    calls these functions (Numba's disk cache does not notice changes in the
    functions a cached kernel calls, so an edit here must change the key)."""
    import hashlib
    from pathlib import Path
    try:
        return "vecmath-" + hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:16]
    except OSError:                 # no source file (a frozen install): nothing cached
        return "vecmath-nosource"       # from an edited copy can exist there either


VERSION = _version()

SINCOS_MAX = 1.6e6          # |x| * 2/pi < 2**20: fn * PIO2_1 is exact
EXP_MAX = float("inf")      # exp: every argument (subnormal results and overflow included)
_EXP_LO, _EXP_HI = -746.0, 710.0


def _h(hi: int, lo: int) -> float:
    """The double with high word ``hi`` and low word ``lo`` (fdlibm's notation)."""
    import struct
    return struct.unpack("<d", struct.pack("<Q", (hi << 32) | lo))[0]


# 1.5 * 2**52: adding and subtracting it rounds a double of magnitude below
# 2**51 to the nearest integer (ties to even), as rint does, without a call.
_RND = 6755399441055744.0

_INVPIO2 = _h(0x3FE45F30, 0x6DC9C883)
_PIO2_1 = _h(0x3FF921FB, 0x54400000)     # first 33 bits of pi/2
_PIO2_2 = _h(0x3DD0B461, 0x1A600000)     # next 33 bits
_PIO2_2T = _h(0x3BA3198A, 0x2E037073)    # pi/2 - (PIO2_1 + PIO2_2)
_PIO2_3 = _h(0x3BA3198A, 0x2E000000)     # next 33 bits
_PIO2_3T = _h(0x397B839A, 0x252049C1)    # pi/2 - (PIO2_1 + PIO2_2 + PIO2_3)

_S1 = _h(0xBFC55555, 0x55555549)
_S2 = _h(0x3F811111, 0x1110F8A6)
_S3 = _h(0xBF2A01A0, 0x19C161D5)
_S4 = _h(0x3EC71DE3, 0x57B1FE7D)
_S5 = _h(0xBE5AE5E6, 0x8A2B9CEB)
_S6 = _h(0x3DE5D93A, 0x5ACFD57C)

_C1 = _h(0x3FA55555, 0x5555554C)
_C2 = _h(0xBF56C16C, 0x16C15177)
_C3 = _h(0x3EFA01A0, 0x19CB1590)
_C4 = _h(0xBE927E4F, 0x809C52AD)
_C5 = _h(0x3E21EE9E, 0xBDB4B1C4)
_C6 = _h(0xBDA8FAE9, 0xBE8838D4)

_INVLN2 = _h(0x3FF71547, 0x652B82FE)
_LN2HI = _h(0x3FE62E42, 0xFEE00000)
_LN2LO = _h(0x3DEA39EF, 0x35793C76)
_P1 = _h(0x3FC55555, 0x5555553E)
_P2 = _h(0xBF66C16C, 0x16BEBD93)
_P3 = _h(0x3F11566A, 0xAF25DE2C)
_P4 = _h(0xBEBBBD41, 0xC5D26BF1)
_P5 = _h(0x3E663769, 0x72BEA4D0)

_TINY = 2.0 ** -27          # below it sin(x) rounds to x (and keeps -0.0)


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of a float64 as an int64 (a bit cast, no conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, n):
    """The float64 whose IEEE bits are the int64 ``n``."""
    if n != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(inline="always")
def _reduce(x):
    """``x - n pi/2`` as ``y0 + y1`` and the quadrant ``n mod 4`` (a float:
    no float-to-int conversion, which does not vectorise on AVX2)."""
    fn = (x * _INVPIO2 + _RND) - _RND
    r = x - fn * _PIO2_1
    t = r
    w = fn * _PIO2_2
    r = t - w
    w = fn * _PIO2_2T - ((t - r) - w)
    t = r
    w = fn * _PIO2_3
    r = t - w
    w = fn * _PIO2_3T - ((t - r) - w)
    y0 = r - w
    y1 = (r - y0) - w
    q = fn - 4.0 * ((fn * 0.25 + _RND) - _RND)      # in {-2, -1, 0, 1, 2}
    q = q + 4.0 if q < 0.0 else q
    return y0, y1, q


@njit(inline="always")
def _ksin(x, y):
    z = x * x
    w = z * z
    r = _S2 + z * (_S3 + z * _S4) + z * w * (_S5 + z * _S6)
    v = z * x
    return x - ((z * (0.5 * y - v * r) - y) - v * _S1)


@njit(inline="always")
def _kcos(x, y):
    z = x * x
    w = z * z
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


@njit(inline="always")
def _sine_of_quadrant(x, shift):
    """sin(x + shift * pi/2) for ``shift`` 0 or 1 (cos): the quadrant picks
    the kernel (odd: cosine) and the sign (quadrants 2 and 3)."""
    y0, y1, q = _reduce(x)
    q = q + shift
    q = q - 4.0 if q >= 4.0 else q
    v = _kcos(y0, y1) if (q == 1.0 or q == 3.0) else _ksin(y0, y1)
    return -v if q >= 2.0 else v


@njit(inline="always")
def sin(x):
    """sin(x) for ``|x| <= SINCOS_MAX`` (and NaN)."""
    return x if abs(x) < _TINY else _sine_of_quadrant(x, 0.0)


@njit(inline="always")
def cos(x):
    """cos(x) for ``|x| <= SINCOS_MAX`` (and NaN)."""
    return _sine_of_quadrant(x, 1.0)


@njit(inline="always")
def exp(x):
    """exp(x) for every double (NaN gives NaN)."""
    # Clamped (selects; a NaN compares false and passes): exp(-746) rounds
    # to 0 and exp(710) overflows, as exp(-inf) and exp(inf) do.
    x = _EXP_LO if x < _EXP_LO else x
    x = _EXP_HI if x > _EXP_HI else x
    t = x * _INVLN2 + _RND
    k = t - _RND
    hi = x - k * _LN2HI
    lo = k * _LN2LO
    r = hi - lo
    z = r * r
    c = r - z * (_P1 + z * (_P2 + z * (_P3 + z * (_P4 + z * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    # 2**k as two normal factors (k in [-1076, 1024]): y * 2**k1 is exact and
    # the second product rounds once, so a subnormal result rounds as
    # fdlibm's (which scales by 2**(k+1000), then 2**-1000) and y * 2**1024
    # can still be finite. Each factor: the low bits of (k_i + 1.5 * 2**52)
    # hold k_i, shifted into the exponent field with the bias; float
    # arithmetic and 64-bit adds and left shifts only (all vectorise on AVX2).
    k2 = (k * 0.5 + _RND) - _RND
    s1 = _from_bits((_bits((k - k2) + _RND) + 1023) << 52)
    s2 = _from_bits((_bits(k2 + _RND) + 1023) << 52)
    return (y * s1) * s2


@njit(inline="always")
def sincos_bad(x):
    """1 where :func:`sin`/:func:`cos` are not exact for ``x`` (NaN is fine)."""
    return 1 if abs(x) > SINCOS_MAX else 0


@njit(inline="always")
def exp_bad(x):
    """Always 0: :func:`exp` is exact for every argument (kept for callers
    that test every function of this module alike; the fused kernels of
    ``da.jit`` emit no test for ``exp``)."""
    return 0
