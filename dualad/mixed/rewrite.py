"""Program rewrites of matrix products before fusion (``da.jit`` only; eager
calls never see them).

Two patterns a reverse pass records around its seed cotangent, both found
in the W3 MLP gradient (bench/NOTES.md, h14m):

* **A product with an inner dimension of 1**, ``(M, 1) @ (1, N)``, is an
  outer product: every element is one multiplication added to +0.0, so
  ``a * b + 0.0`` with broadcasting gives the same bits (signed zeros
  included) without a BLAS call (0.38 -> 0.17 ms for 1024 x 256), and the
  fusers take both operations into the elementwise region that follows
  (the W3 gradient: into the layer's bias + tanh region).
* **A constant operand with a zero stride** (the seed ``ones`` of a
  ``sum``'s cotangent is a broadcast view) keeps NumPy's matmul off BLAS:
  its own strided loop took 0.66 ms for ``(256, 1024) @ (1024, 1)``, the
  BLAS call on a contiguous copy 0.04 ms. The constant is copied once, at
  compile time, when the copy is small (:data:`MAX_COPY_BYTES`).

Both are checked like every fused program: ``da.jit`` compares the rewritten
program's first result with the recording (1e-14 relative) and keeps the
plain program otherwise.

>>> import numpy as np
>>> from dualad.mixed.replay import record
>>> _, rep = record(lambda a, b: a @ b, (np.ones((600, 1)), np.ones((1, 600))))
>>> [getattr(op[0], "__name__", "") for op in rewrite_products(rep.ops, rep.meta)]
['multiply', 'add']
"""
from __future__ import annotations

import numpy as np

from dualad.mixed.replay import _Const
from dualad.rules.contractions import matmul_p

__all__ = ["rewrite_products", "MAX_COPY_BYTES"]

MAX_COPY_BYTES = 1 << 22      # a broadcast constant is copied up to this size

_F64 = np.dtype(np.float64)


def _meta_of(a, meta) -> tuple:
    if a.__class__ is int:
        return meta.get(a, (None, None))
    v = a.value
    return getattr(v, "shape", None), getattr(v, "dtype", None)


def _contiguous_const(a):
    """``a`` (an operand spec), a broadcast constant replaced by a contiguous
    copy of itself (same values) when that is small; else ``a``."""
    if a.__class__ is int:
        return a
    v = a.value
    if (type(v) is not np.ndarray or v.ndim < 2 or 0 not in v.strides
            or v.size * v.itemsize > MAX_COPY_BYTES):
        return a
    return _Const(np.ascontiguousarray(v))


def rewrite_products(ops, meta) -> list:
    """``ops`` with the matrix products rewritten as the module notes say
    (``meta``: slot -> recorded (shape, dtype); the slots of new
    intermediate values are added to it); the same op objects where nothing
    applies."""
    impl_mm = matmul_p.impl
    out = []
    for op in ops:
        impl, spec, params, slots, multi, guards = op
        if impl is not impl_mm or params or multi or len(spec) != 2:
            out.append(op)
            continue
        (sa, da), (sb, db) = (_meta_of(a, meta) for a in spec)
        so, do = meta.get(slots[0], (None, None))
        if (sa is not None and sb is not None and len(sa) == 2 and len(sb) == 2
                and sa[1] == 1 and sb[0] == 1 and da == db == do == _F64):
            # ``a * b + 0.0``: the GEMM's sum starts from +0.0, so a product
            # of -0.0 comes out +0.0 (bitwise NumPy's matmul, signed zeros too)
            prod = max(meta) + 1
            meta[prod] = meta[slots[0]]
            out.append((np.multiply, spec, params, (prod,), False, ()))
            out.append((np.add, (prod, _Const(0.0)), params, slots, multi, guards))
            continue
        new = tuple(_contiguous_const(a) for a in spec)
        out.append(op if all(x is y for x, y in zip(new, spec))
                   else (impl, new, params, slots, multi, guards))
    return out
