"""Reductions: sum (linear), and the rest built on it or declared with rules.

Every rule here is written with dispatched NumPy calls (or registered
primitives), so it differentiates itself to any order. Masks and tie weights
(max/min) are piecewise constant and are computed on the peeled values.

Example::

    >>> import numpy as np, dualad as da
    >>> da.grad(lambda x: np.prod(x))(np.array([2.0, 0.0, 3.0]))
    array([0., 6., 0.])
"""
from __future__ import annotations

import numpy as np

from dualad.core.backend import namespace_of, peel_keep_batch, result_float_dtype
from dualad.core.dispatch import REDUCERS, implements
from dualad.core.registry import defprimitive, lead_of, ndim_of, shape_of
from dualad.rules.shape import broadcast_to_p, normalize_axes, reshape_p


def _shifted(axis, lead: int) -> tuple:
    return tuple(a + lead for a in axis)


def _count(x, axes) -> int:
    return int(np.prod([shape_of(x)[a] for a in axes], dtype=np.int64))


def _per(n: int):
    """A divisor for mean/var: ``n``, or a NumPy 0 when ``n == 0`` (the mean
    of nothing is NaN as in NumPy; a Python 0 would raise ZeroDivisionError
    in the partial ``1 / n``)."""
    return n if n else np.float64(0.0)


# ============================================================================
# sum: linear; its transpose broadcasts the cotangent back
# ============================================================================
_SHORT_AXIS = 7          # NumPy adds up to 7 elements of one axis left to right


def _sum(x, axis, keepdims=False, lead=0):
    axes = tuple(a + lead for a in axis)
    if type(x) is np.ndarray and len(axes) == 1 and x.dtype.kind == "f" \
            and 2 <= x.shape[axes[0]] <= _SHORT_AXIS and x.size >= 256:
        return _sum_short_axis(x, axes[0], keepdims)
    return namespace_of(x).sum(x, axis=axes, keepdims=keepdims)


def _sum_short_axis(x, axis, keepdims):
    """``np.sum(x, axis)`` over an axis of 2-7 elements as slice additions:
    NumPy's reduce adds them left to right too (the same bits, checked in
    tests/test_reductions_short.py), but its inner loop over a short axis
    costs ~20x more (a pair distance ``sum(d * d, axis=1)``, d of shape (p, 3))."""
    index = [slice(None)] * x.ndim

    def part(k):
        index[axis] = k
        return x[tuple(index)]
    total = part(0) + part(1)
    for k in range(2, x.shape[axis]):
        np.add(total, part(k), out=total)
    np.add(total, 0.0, out=total)    # NumPy starts from +0.0: a sum of -0.0s is +0.0
    return np.expand_dims(total, axis) if keepdims else total


def _keep(ct, lead, axis, keepdims):
    """A reduced cotangent/tangent with unit axes put back where ``axis`` was
    reduced (so it broadcasts against ``lead + in_shape``)."""
    if keepdims or not axis:
        return ct
    kept = list(shape_of(ct)[lead:])
    for a in axis:
        kept.insert(a, 1)
    return reshape_p(ct, shape=tuple(kept), lead=lead)


def _expand_back(ct, in_shape, lead, axis, keepdims):
    """Broadcast a reduced cotangent/tangent back to ``lead + in_shape``."""
    ct = _keep(ct, lead, axis, keepdims)
    return broadcast_to_p(ct, shape=tuple(in_shape), lead=lead)


sum_p = defprimitive("sum", _sum, transpose=lambda ct, primals, lead, axis, keepdims: _expand_back(
    ct, shape_of(primals[0]), lead, axis, keepdims))


@implements(np.sum)
def sum_(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    axes = normalize_axes(axis, len(shape_of(x)))
    return sum_p(x, axis=axes, keepdims=bool(keepdims))


REDUCERS[(np.add, "reduce")] = lambda x, axis=0, **k: sum_(x, axis=axis, **k)


@implements(np.mean)
def mean(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    axes = normalize_axes(axis, len(shape_of(x)))
    count = int(np.prod([shape_of(x)[a] for a in axes], dtype=np.int64))
    return sum_(x, axis=axes, keepdims=keepdims) / _per(count)


# ============================================================================
# cumsum: linear; the transpose of a forward cumsum is a reversed cumsum
# ============================================================================
def _cumsum(x, axis, reverse=False, lead=0):
    xp, ax = namespace_of(x), axis + lead
    if reverse:
        return xp.flip(xp.cumsum(xp.flip(x, ax), axis=ax), ax)
    return xp.cumsum(x, axis=ax)


cumsum_p = defprimitive("cumsum", _cumsum, transpose=lambda ct, primals, lead, axis, reverse: (
    cumsum_p(ct, axis=axis, reverse=not reverse, lead=lead)))


@implements(np.cumsum)
def cumsum(a, axis=None, dtype=None, out=None):
    """np.cumsum; ``axis=None`` scans the flattened array, as NumPy does."""
    if axis is None:
        a, axis = np.ravel(a), 0
    return cumsum_p(a, axis=normalize_axes(axis, ndim_of(a))[0], reverse=False)


REDUCERS[(np.add, "accumulate")] = lambda x, axis=0, **k: cumsum(x, axis=axis)


# ============================================================================
# products without division: Hillis-Steele scans of multiplies
# ============================================================================
# Why no x/out formula: it is wrong (0/0) as soon as a factor is zero. The
# product of "all the others" is built from two exclusive prefix products,
# each a log2(n)-deep chain of multiplies by shifted copies, so it is exact
# with zeros and every higher derivative follows from `multiply`.
def _lane_shift(x, shift, lead=0):
    """Shift along the last axis by ``shift`` (>0: towards higher indices),
    filling with zeros."""
    out = namespace_of(x).zeros_like(x)
    n = shape_of(x)[-1]
    if abs(shift) >= n:
        return out
    if shift >= 0:
        out[..., shift:] = x[..., :n - shift]
    else:
        out[..., :n + shift] = x[..., -shift:]
    return out


lane_shift_p = defprimitive("lane_shift", _lane_shift, transpose=lambda ct, primals, lead, shift: (
    lane_shift_p(ct, shift=-shift, lead=lead)))


def _lane_mask(x, keep):
    """A constant ``(n,)`` array of x's dtype from a boolean predicate on the index."""
    xp = namespace_of(x)
    return keep(xp.arange(shape_of(x)[-1])).astype(result_float_dtype(x))


def _scan_prod(x, reverse=False):
    """Inclusive cumulative product along the last axis (``reverse``: from the end)."""
    n, s = shape_of(x)[-1], 1
    while s < n:
        shifted = lane_shift_p(x, shift=-s if reverse else s)
        # The lanes the shift left empty get a factor 1 (they have nothing to multiply).
        ones = _lane_mask(x, (lambda i, s=s: i >= n - s) if reverse else (lambda i, s=s: i < s))
        x = x * (shifted + ones)
        s *= 2
    return x


def _excl_prod(x, reverse=False):
    """Exclusive cumulative product: entry i is the product of entries before
    (``reverse``: after) i along the last axis."""
    n = shape_of(x)[-1]
    first = _lane_mask(x, (lambda i: i == n - 1) if reverse else (lambda i: i == 0))
    return _scan_prod(lane_shift_p(x, shift=-1 if reverse else 1) + first, reverse)


def _prod_others(x, axis):
    """``prod_{j != i} x_j`` over the reduced ``axis``, shaped like ``x``: the
    exact partial of the product."""
    nd = ndim_of(x)
    rest = [a for a in range(nd) if a not in axis]
    perm = tuple(rest + list(axis))
    xt = np.transpose(x, perm) if perm != tuple(range(nd)) else x
    tshape = shape_of(xt)
    flat = np.reshape(xt, tshape[:len(rest)] + (_count(x, axis),))
    others = np.reshape(_excl_prod(flat) * _excl_prod(flat, reverse=True), tshape)
    return np.transpose(others, tuple(np.argsort(perm))) if perm != tuple(range(nd)) else others


def _prod_jvp(primals, tangents, out, axis, keepdims):
    (x,), (t,) = primals, tangents
    lead = lead_of(t, x)
    return np.sum(t * _prod_others(x, axis), axis=_shifted(axis, lead), keepdims=keepdims)


def _prod_vjp(ct, primals, out, needs, axis, keepdims):
    x = primals[0]
    return (_keep(ct, lead_of(ct, out), axis, keepdims) * _prod_others(x, axis),)


prod_p = defprimitive("prod", lambda x, axis, keepdims: namespace_of(x).prod(
    x, axis=axis, keepdims=keepdims), jvp=_prod_jvp, vjp=_prod_vjp)


@implements(np.prod)
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """np.prod; its derivative is the product of the other factors (no division)."""
    _no_where(where, "prod")
    axes = normalize_axes(axis, ndim_of(a))
    r = prod_p(a, axis=axes, keepdims=bool(keepdims)) if axes else a
    return r if initial is None else r * initial


@implements(np.cumprod)
def cumprod(a, axis=None, dtype=None, out=None):
    """np.cumprod as a scan of multiplies: exact derivatives also through zeros."""
    if axis is None:
        a, axis = np.ravel(a), 0
    axis = normalize_axes(axis, ndim_of(a))[0]
    return np.moveaxis(_scan_prod(np.moveaxis(a, axis, -1)), -1, axis)


REDUCERS[(np.multiply, "reduce")] = lambda x, axis=0, **k: prod(x, axis=axis, **k)
REDUCERS[(np.multiply, "accumulate")] = lambda x, axis=0, **k: cumprod(x, axis=axis)


def _no_where(where, name):
    if where is not None and where is not True:
        raise NotImplementedError(f"dualad: np.{name}(..., where=...) on traced values")


# ============================================================================
# max / min: the derivative goes to the extremal entries, ties split evenly
# ============================================================================
def _tie_weights(x, out, axis, keepdims):
    """1/(number of tied extrema) where ``x`` attains ``out``, else 0 (as JAX).
    Piecewise constant, so computed on the peeled values."""
    xv, ov = peel_keep_batch(x), peel_keep_batch(out)
    xp = namespace_of(xv)
    if not keepdims:
        ov = xp.expand_dims(ov, axis)
    dtype = result_float_dtype(xv)
    hit = xv == ov
    hit = hit if hasattr(hit, "_level") else xp.asarray(hit)
    count = xp.maximum(xp.sum(hit, axis=axis, keepdims=True), 1)   # NaN: no hit, weight 0
    return hit.astype(dtype) / count.astype(dtype)


def _def_extremum(name, reduce_name):
    def impl(x, axis, keepdims, initial=None):
        extra = {} if initial is None else {"initial": initial}
        return getattr(namespace_of(x), reduce_name)(x, axis=axis, keepdims=keepdims, **extra)

    def jvp(primals, tangents, out, axis, keepdims, initial=None):
        (x,), (t,) = primals, tangents
        w = _tie_weights(x, out, axis, keepdims)
        return np.sum(t * w, axis=_shifted(axis, lead_of(t, x)), keepdims=keepdims)

    def vjp(ct, primals, out, needs, axis, keepdims, initial=None):
        w = _tie_weights(primals[0], out, axis, keepdims)
        return (_keep(ct, lead_of(ct, out), axis, keepdims) * w,)

    prim = defprimitive(name, impl, jvp=jvp, vjp=vjp)

    def handler(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_where(where, reduce_name)
        axes = normalize_axes(axis, ndim_of(a))
        if not axes and initial is None:
            return a
        return prim(a, axis=axes, keepdims=bool(keepdims), initial=initial)
    handler.__name__ = reduce_name
    return prim, handler


reduce_max_p, amax = _def_extremum("reduce_max", "max")
reduce_min_p, amin = _def_extremum("reduce_min", "min")
implements(np.max, np.amax)(amax)
implements(np.min, np.amin)(amin)


def _ufunc_reduce(fn):
    def reduce(x, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=True):
        return fn(x, axis=axis, keepdims=keepdims, initial=initial, where=where)
    return reduce


REDUCERS[(np.maximum, "reduce")] = _ufunc_reduce(amax)
REDUCERS[(np.minimum, "reduce")] = _ufunc_reduce(amin)
REDUCERS[(np.fmax, "reduce")] = _ufunc_reduce(lambda x, **k: nanmax(x, **k))
REDUCERS[(np.fmin, "reduce")] = _ufunc_reduce(lambda x, **k: nanmin(x, **k))


@implements(np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    return amax(a, axis=axis, keepdims=keepdims) - amin(a, axis=axis, keepdims=keepdims)


# ============================================================================
# statistics: var, std, average, and NaN-ignoring variants
# ============================================================================
@implements(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
        mean=None, correction=None):
    """np.var as mean((x - mean(x))**2) * n / (n - ddof)."""
    _no_where(where, "var")
    ddof = ddof if correction is None else correction
    axes = normalize_axes(axis, ndim_of(a))
    if mean is None and _count(a, axes) == 1:
        # One element per group: the deviation is identically 0, a constant
        # (as a traced a - a it would be 0 with a sqrt above it: inf * 0 = NaN
        # in reverse mode while forward mode gives the right 0).
        # A plain zero array: np.zeros_like of a traced value is a traced
        # buffer (for in-place updates), and a traced 0 under sqrt gives NaN.
        d = namespace_of(a).zeros(shape_of(a), dtype=result_float_dtype(a))
    else:
        d = a - (_mean_keep(a, axes) if mean is None else mean)
    return sum_(d * d, axis=axes, keepdims=keepdims) / _per(_count(a, axes) - ddof)


def _mean_keep(a, axes):
    return sum_(a, axis=axes, keepdims=True) / _per(_count(a, axes))


@implements(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
        mean=None, correction=None):
    return np.sqrt(var(a, axis=axis, ddof=ddof, keepdims=keepdims, where=where, mean=mean,
                       correction=correction))


@implements(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """np.average: sum(a * w) / sum(w) over ``axis``."""
    axes = normalize_axes(axis, ndim_of(a))
    if weights is None:
        avg = mean(a, axis=axes, keepdims=keepdims)
        xp = namespace_of(a)
        scl = xp.full(shape_of(avg), _count(a, axes), dtype=result_float_dtype(a))
    else:
        w = weights
        if ndim_of(w) != ndim_of(a):
            # NumPy's rule: a 1-D weight vector runs along the single ``axis``.
            if axis is None or ndim_of(w) != 1 or len(axes) != 1:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            shape = [1] * ndim_of(a)
            shape[axes[0]] = shape_of(w)[0]
            w = np.reshape(w, tuple(shape))
        scl = sum_(np.broadcast_to(w, shape_of(a)), axis=axes, keepdims=keepdims)
        avg = sum_(a * w, axis=axes, keepdims=keepdims) / scl
    if returned:
        return avg, (np.broadcast_to(scl, shape_of(avg)) if shape_of(scl) != shape_of(avg)
                     else scl)
    return avg


def _nan_fill(a, value):
    return np.where(np.isnan(a), value, a)


@implements(np.nansum)
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    return sum_(_nan_fill(a, 0.0), axis=axis, keepdims=keepdims)


@implements(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    axes = normalize_axes(axis, ndim_of(a))
    n = np.sum(~np.isnan(peel_keep_batch(a)), axis=axes, keepdims=keepdims)
    return nansum(a, axis=axes, keepdims=keepdims) / n.astype(result_float_dtype(a))


@implements(np.nanprod)
def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    return prod(_nan_fill(a, 1.0), axis=axis, keepdims=keepdims)


@implements(np.nanmax)
def nanmax(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    return amax(_nan_fill(a, -np.inf), axis=axis, keepdims=keepdims, initial=initial,
                where=where)


@implements(np.nanmin)
def nanmin(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    return amin(_nan_fill(a, np.inf), axis=axis, keepdims=keepdims, initial=initial,
                where=where)


# ============================================================================
# Euclidean norm: a primitive with a safe derivative at zero
# ============================================================================
# Why a primitive: sqrt(sum(x*x)) differentiates to 0.5/0 * 0 = NaN at x = 0.
# The rules divide by where(out == 0, 1, out) and then select 0 there, so the
# (sub)gradient at the zero vector is 0 (as JAX/PyTorch), at every order.
def _norm2(x, axis, keepdims):
    xp = namespace_of(x)
    return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdims))


def _safe_div(num, out):
    zero = peel_keep_batch(out) == 0
    return np.where(zero, 0.0, num / np.where(zero, 1.0, out))


def _norm2_jvp(primals, tangents, out, axis, keepdims):
    (x,), (t,) = primals, tangents
    num = np.sum(x * t, axis=_shifted(axis, lead_of(t, x)), keepdims=keepdims)
    return _safe_div(num, out)


def _norm2_vjp(ct, primals, out, needs, axis, keepdims):
    scale = _safe_div(ct, out)
    return (_keep(scale, lead_of(ct, out), axis, keepdims) * primals[0],)


norm2_p = defprimitive("norm2", _norm2, jvp=_norm2_jvp, vjp=_norm2_vjp)


# ============================================================================
# singular values (for the 2, -2 and nuclear matrix norms)
# ============================================================================
# d sigma_k = u_k^T dX v_k. The rules call np.linalg.svd on the primal, so
# first derivatives are always available; higher ones need the svd rule of
# rules/linalg.py when the primal is itself traced.
def _svals_jvp(primals, tangents, out):
    (x,), (t,) = primals, tangents
    u, _, vh = np.linalg.svd(x, full_matrices=False)
    return np.sum(u * np.matmul(t, np.swapaxes(vh, -1, -2)), axis=-2)


def _svals_vjp(ct, primals, out, needs):
    u, _, vh = np.linalg.svd(primals[0], full_matrices=False)
    return (np.matmul(u * np.expand_dims(ct, -2), vh),)


norm_svals_p = defprimitive("norm_svals",
                            lambda x: namespace_of(x).linalg.svd(x, compute_uv=False),
                            jvp=_svals_jvp, vjp=_svals_vjp)


# ============================================================================
# np.linalg.norm and the NumPy 2 vector_norm / matrix_norm
# ============================================================================
def _vector_norm(x, ord, axes, keepdims):
    if ord is None or ord == 2:
        return norm2_p(x, axis=axes, keepdims=bool(keepdims))
    if ord == np.inf:
        return amax(np.abs(x), axis=axes, keepdims=keepdims)
    if ord == -np.inf:
        return amin(np.abs(x), axis=axes, keepdims=keepdims)
    if ord == 0:
        # A count of nonzeros: piecewise constant, no derivative.
        xv = peel_keep_batch(x)
        return np.sum(xv != 0, axis=axes, keepdims=keepdims).astype(result_float_dtype(xv))
    if ord == 1:
        return sum_(np.abs(x), axis=axes, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    s = sum_(np.abs(x) ** float(ord), axis=axes, keepdims=keepdims)
    # Same safe-at-zero formulation as norm2: s**(1/p) has an infinite slope at 0.
    zero = peel_keep_batch(s) == 0
    return np.where(zero, 0.0, np.where(zero, 1.0, s) ** (1.0 / float(ord)))


def _matrix_norm(x, ord, axes, keepdims):
    r, c = axes
    if r == c:
        raise ValueError("Duplicate axes given.")
    if ord in (None, "fro", "f"):
        return norm2_p(x, axis=tuple(sorted(axes)), keepdims=bool(keepdims))
    if ord in (1, -1, np.inf, -np.inf):
        inner, outer = (r, c) if ord in (1, -1) else (c, r)
        pick = amax if ord > 0 else amin
        res = pick(sum_(np.abs(x), axis=inner, keepdims=True), axis=outer, keepdims=True)
    elif ord in (2, -2, "nuc"):
        s = norm_svals_p(np.moveaxis(x, (r, c), (-2, -1)))
        res = sum_(s, axis=-1) if ord == "nuc" else (amax if ord == 2 else amin)(s, axis=-1)
        res = np.reshape(res, tuple(1 if a in axes else n for a, n in enumerate(shape_of(x))))
    else:
        raise ValueError("Invalid norm order for matrices.")
    if keepdims:
        return res
    return np.reshape(res, tuple(n for a, n in enumerate(shape_of(x)) if a not in axes))


@implements(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm for vector and matrix norms; the 2-norm of a zero vector
    has (sub)gradient 0 instead of NaN."""
    nd = ndim_of(x)
    if axis is None:
        if ord is None:
            return norm2_p(x, axis=tuple(range(nd)), keepdims=bool(keepdims))
        if nd not in (1, 2):
            raise ValueError("Improper number of dimensions to norm.")
        axis = tuple(range(nd))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(int(a) % max(nd, 1) for a in axes)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError("Improper number of dimensions to norm.")


if hasattr(np.linalg, "vector_norm"):
    @implements(np.linalg.vector_norm)
    def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
        """NumPy 2's vector_norm: ``axis=None`` or a tuple treats those axes as one vector."""
        axes = normalize_axes(axis, ndim_of(x))
        return _vector_norm(x, ord, axes, keepdims)

    @implements(np.linalg.matrix_norm)
    def matrix_norm(x, /, *, keepdims=False, ord="fro"):
        return norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)
