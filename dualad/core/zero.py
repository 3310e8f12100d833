"""The symbolic zero tangent/cotangent and a zero-times-infinity-safe multiply."""
from __future__ import annotations

import numpy as np

from dualad.core.backend import all_finite_value, namespace_of


class _ZeroType:
    """A tangent or cotangent known to be zero: skipped, never materialised."""

    __slots__ = ()
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Zero"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self):
        return (_ZeroType, ())


Zero = _ZeroType()


def add_any(a, b):
    """Sum of two tangents where either may be the symbolic Zero."""
    if a is Zero:
        return b
    if b is Zero:
        return a
    return a + b


def safe_mul(partial, tangent, check: bool = True):
    """``partial * tangent`` where a zero tangent times an infinite partial is 0.

    Why: in ``v[0] * sqrt(v[1])`` at ``v[1] = 0`` the direction ``e0`` has a
    zero tangent through ``sqrt`` whose partial is ``inf``; IEEE gives NaN but
    the derivative along ``e0`` is exactly 0. ``check=False`` skips the test for
    primitives whose partials are finite wherever the primal is.
    """
    if tangent is Zero:
        return Zero
    if partial.__class__ is float:      # add/subtract/negate: skip the multiply
        if partial == 1.0:
            return tangent
        if partial == -1.0:
            return -tangent
    product = partial * tangent
    if check and not all_finite_value(partial, sync=False):   # no device sync per op
        # np.where dispatches on a traced product; a raw one uses its own
        # namespace (CuPy functions do not dispatch back to tracers).
        xp = np if hasattr(product, "_level") else namespace_of(product)
        product = xp.where(tangent == 0, 0, product)
    return product
