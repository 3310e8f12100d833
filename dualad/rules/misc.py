"""NumPy functions written as compositions of existing primitives (no new
rules needed, so every mode and order comes for free): degree/radian
conversions, ``fabs``, ``logaddexp2``, ``linspace`` with traced endpoints,
``gradient``, ``nan_to_num``, ``pad``, ``partition``, ``rollaxis``,
``select``, ``interp``, ``polyval``, ``piecewise``, ``meshgrid``; plus
``sinc``, one elementwise primitive (its partial needs a series near 0).

Index patterns (``pad``'s reflect/wrap, ``gradient``'s stencils) are computed
by NumPy itself on integer arrays, so they match NumPy exactly.

>>> import numpy as np, dualad as da
>>> float(da.grad(lambda a: np.interp(0.25, [0.0, 1.0], a * np.array([1.0, 2.0])))(1.0))
1.25
"""
from __future__ import annotations

import numpy as np

from dualad.core.backend import peel, peel_keep_batch
from dualad.core.dispatch import implements, register_nondiff
from dualad.core.registry import defprimitive, ndim_of, shape_of
from dualad.rules.indexing import take

_DEG = 180.0 / np.pi
_LN2 = float(np.log(2.0))


# ============================================================================
# elementwise
# ============================================================================
@implements(np.rad2deg, np.degrees)
def rad2deg(x, **kwargs):
    return x * _DEG


@implements(np.deg2rad, np.radians)
def deg2rad(x, **kwargs):
    return x * (1.0 / _DEG)


@implements(np.fabs)
def fabs(x, **kwargs):
    return np.absolute(x)


@implements(np.logaddexp2)
def logaddexp2(x, y, **kwargs):
    return np.logaddexp(x * _LN2, y * _LN2) * (1.0 / _LN2)


def _float_dtype(x):
    dtype = getattr(x, "dtype", None)
    return dtype if dtype is not None and dtype.kind in "fc" else np.dtype(np.float64)


def _small(x):
    return np.abs(peel_keep_batch(x)) < 1e-3


def _sinc_partial(out, x):
    # d/dx sin(pi x)/(pi x) = (cos(pi x) - sinc x) / x, cancelling near 0:
    # there its series -pi^2 x/3 + pi^4 x^3/30 (error ~ x^5), which keeps the
    # higher derivatives at 0 right too.
    small = _small(x)
    safe = np.where(small, 1.0, x)
    pi2x2 = (np.pi * np.pi) * (x * x)
    series = x * (np.pi * np.pi) * (pi2x2 * (1.0 / 30.0) - 1.0 / 3.0)
    return (np.where(small, series, (np.cos(np.pi * safe) - np.sinc(safe)) / safe),)


sinc_p = defprimitive("sinc", np.sinc, partials=_sinc_partial)
implements(np.sinc)(lambda x: sinc_p(x))


# ============================================================================
# construction
# ============================================================================
@implements(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *,
             device=None):
    """``start + t (stop - start)`` with NumPy's constant grid ``t``."""
    num = int(num)
    div = (num - 1) if endpoint else num
    shape = np.broadcast_shapes(shape_of(start), shape_of(stop))
    dt = np.result_type(*(getattr(v, "dtype", np.float64) for v in (start, stop)), 1.0)
    t = np.arange(num, dtype=dt).reshape((num,) + (1,) * len(shape))
    delta = stop - start
    step = delta / div if div > 0 else delta * np.nan
    y = start + t * step if div > 0 else start + t * delta
    if endpoint and num > 1:
        y = np.concatenate([y[:-1], np.broadcast_to(stop, shape)[None] * 1.0], axis=0)
    if axis != 0:
        y = np.moveaxis(y, 0, axis)
    return (y, step) if retstep else y


@implements(np.meshgrid)
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    nd = len(xi)
    out = [np.reshape(x, (1,) * i + (-1,) + (1,) * (nd - i - 1)) for i, x in enumerate(xi)]
    if indexing == "xy" and nd > 1:
        out[0] = np.reshape(out[0], (1, -1) + (1,) * (nd - 2))
        out[1] = np.reshape(out[1], (-1, 1) + (1,) * (nd - 2))
    if not sparse:
        out = np.broadcast_arrays(*out)
        out = [o * 1.0 for o in out]
    return tuple(out)


@implements(np.polyval)
def polyval(p, x):
    """Horner's rule; ``p`` and ``x`` may both be traced."""
    n = shape_of(p)[0] if shape_of(p) else len(p)
    xv = peel_keep_batch(x)
    y = p[0] * np.ones_like(xv) if n else np.zeros_like(xv)
    for i in range(1, n):
        y = y * x + p[i]
    return y


# ============================================================================
# selection and cleaning
# ============================================================================
@implements(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """Finite entries pass through (derivative 1); replaced ones are constants."""
    v = peel_keep_batch(x)
    if np.iscomplexobj(v):
        raise TypeError("dualad's numpy.nan_to_num supports real arrays; apply it to "
                        "np.real(x) and np.imag(x).")
    info = np.finfo(np.result_type(v, np.float32))
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    good = np.isfinite(v)
    fill = np.where(np.isnan(v), nan, np.where(v > 0, posinf, neginf))
    return np.where(good, x, fill)


@implements(np.select)
def select(condlist, choicelist, default=0):
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    out = default
    for cond, choice in zip(reversed(condlist), reversed(choicelist)):
        out = np.where(peel_keep_batch(cond), choice, out)
    shape = np.broadcast_shapes(*(shape_of(c) for c in list(condlist) + list(choicelist)),
                                shape_of(default))
    return out if shape_of(out) == shape else np.broadcast_to(out, shape)


@implements(np.piecewise)
def piecewise(x, condlist, funclist, *args, **kw):
    """Each function sees only its own entries (as in NumPy); the pieces are
    put back in place with one permutation (a ``take``). Under a vmap see
    :func:`_piecewise_batched`."""
    if isinstance(condlist, np.ndarray) and condlist.ndim == ndim_of(x) or \
            not isinstance(condlist, (list, tuple)):
        condlist = [condlist]
    n = len(condlist)
    if len(funclist) not in (n, n + 1):
        raise ValueError(f"with {n} condition(s), either {n} or {n + 1} functions are expected")
    if _is_batched(x) or any(_is_batched(c) for c in condlist):
        return _piecewise_batched(x, condlist, funclist, args, kw)
    xv = peel(x)
    conds = [np.asarray(peel(c), dtype=bool) & np.ones(xv.shape, bool) for c in condlist]
    if len(funclist) == n + 1:
        conds.append(~np.any(conds, axis=0) if n else np.ones(xv.shape, bool))
    owner = np.full(xv.shape, -1)
    for k, c in enumerate(conds):
        owner[c] = k                     # later conditions win, as in NumPy
    flat = np.ravel(x)
    owner = owner.ravel()
    pieces, order = [], []
    for k, f in enumerate(funclist):
        idx = np.flatnonzero(owner == k)
        if not idx.size:
            continue
        sub = flat[idx]
        val = f(sub, *args, **kw) if callable(f) else f
        pieces.append(np.broadcast_to(val, idx.shape) * np.ones(idx.shape, _float_dtype(x)))
        order.append(idx)
    rest = np.flatnonzero(owner == -1)
    if rest.size:
        pieces.append(np.zeros(rest.shape, dtype=_float_dtype(x)))
        order.append(rest)
    if not pieces:
        return np.zeros_like(xv)
    inv = np.argsort(np.concatenate(order))
    return np.reshape(np.take(np.concatenate(pieces), inv), xv.shape)


def _is_batched(v) -> bool:
    """Whether a vmap's batch sits anywhere under ``v``'s levels."""
    while hasattr(v, "_level"):
        if getattr(v, "_batched", False):
            return True
        v = v.primal
    return False


def _as_bool(c):
    v = peel_keep_batch(c)
    return v.astype(bool) if hasattr(v, "astype") else np.asarray(v, dtype=bool)


def _piecewise_batched(x, condlist, funclist, args, kw):
    """piecewise under a vmap: which entries fall in which piece differs per
    example, so (as ``jax.numpy.piecewise``) every function sees all of ``x``
    and ``np.where`` keeps its piece (later conditions win). Functions must
    then accept every entry of ``x``: one that is infinite (or has an
    infinite derivative) outside its own piece poisons the gradient with NaN,
    as a ``np.where`` of such branches would."""
    conds = [_as_bool(c) for c in condlist]
    if len(funclist) == len(conds) + 1:
        anyc = conds[0] if conds else False
        for c in conds[1:]:
            anyc = anyc | c
        conds.append(~anyc if conds else True)
    out = np.zeros(shape_of(x), dtype=_float_dtype(x))
    for c, f in zip(conds, funclist):
        out = np.where(c, f(x, *args, **kw) if callable(f) else f, out)
    return out


@implements(np.interp)
def interp(x, xp, fp, left=None, right=None, period=None):
    """Linear interpolation, differentiable in ``x``, ``fp`` (and ``xp``)."""
    if period is not None:
        raise TypeError("dualad's numpy.interp does not support period=; map x into one "
                        "period with np.mod first.")
    if isinstance(fp, (list, tuple)):
        fp = np.stack(fp)              # a list that may hold traced entries
    if isinstance(xp, (list, tuple)):
        xp = np.stack(xp)
    xv, xpv = peel_keep_batch(x), peel_keep_batch(xp)
    m = xpv.shape[0]
    i = np.clip(np.searchsorted(xpv, xv, side="right") - 1, 0, max(m - 2, 0))
    if m == 1:
        return np.ones(shape_of(x)) * fp[0]
    # dualad's take called directly: np.take does not dispatch on its indices,
    # so a plain xp (or fp) with indices batched by a vmap would reach NumPy
    x0, x1 = take(xp, i), take(xp, i + 1)
    y0, y1 = take(fp, i), take(fp, i + 1)
    y = y0 + (x - x0) * ((y1 - y0) / (x1 - x0))
    y = np.where(xv == xpv[-1], fp[-1], y)          # the last knot itself
    y = np.where(xv < xpv[0], fp[0] if left is None else left, y)
    return np.where(xv > xpv[-1], fp[-1] if right is None else right, y)


register_nondiff(np.argpartition)


@implements(np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    if axis is None:
        a, axis = np.ravel(a), 0
    idx = np.argpartition(peel_keep_batch(a), kth, axis=axis)
    return np.take_along_axis(a, idx, axis=axis)


@implements(np.rollaxis)
def rollaxis(a, axis, start=0):
    n = ndim_of(a)
    axis = int(axis) % n
    start = int(start) + n if start < 0 else int(start)
    if not 0 <= start <= n:
        raise np.exceptions.AxisError(f"start={start} out of range for {n}-d array")
    if axis < start:
        start -= 1
    if axis == start:
        return a
    axes = [k for k in range(n) if k != axis]
    axes.insert(start, axis)
    return np.transpose(a, axes)


# ============================================================================
# pad and gradient: index patterns from NumPy, values by take
# ============================================================================
_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


@implements(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    """Axis by axis: the padded index pattern is ``np.pad(arange(n), ...)`` in
    the same mode; constant entries come from ``np.where``."""
    if mode not in _PAD_MODES or kwargs.get("reflect_type", "even") != "even":
        raise TypeError(f"dualad's numpy.pad supports modes {_PAD_MODES} (reflect_type "
                        f"'even'); got mode={mode!r}.")
    nd = ndim_of(array)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (nd, 2))
    consts = np.broadcast_to(np.asarray(kwargs.get("constant_values", 0)), (nd, 2)) \
        if mode == "constant" else None
    out = array
    for ax in range(nd):
        before, after = (int(w) for w in widths[ax])
        if not before and not after:
            continue
        n = shape_of(out)[ax]
        if mode == "constant":
            idx = np.pad(np.arange(n), (before, after), mode="constant", constant_values=-1)
            taken = np.take(out, np.maximum(idx, 0), axis=ax)
            fill = np.where(np.arange(idx.size) < before, consts[ax][0], consts[ax][1])
            shape = [1] * nd
            shape[ax] = idx.size
            keep = (idx >= 0).reshape(shape)
            out = np.where(keep, taken, fill.reshape(shape).astype(taken.dtype))
        else:
            out = np.take(out, np.pad(np.arange(n), (before, after), mode=mode), axis=ax)
    return out


@implements(np.gradient)
def gradient(f, *varargs, axis=None, edge_order=1):
    """NumPy's second-order stencils, as three weighted ``take``\\s per axis.
    The weights are read off NumPy's own ``np.gradient`` of indicator arrays
    (it is linear in ``f``), so spacings and edges match it exactly."""
    nd = ndim_of(f)
    axes = tuple(range(nd)) if axis is None else (
        (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis))
    axes = tuple(int(a) % nd for a in axes)
    if len(varargs) == 0:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacing = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes):
        spacing = list(varargs)
    else:
        raise TypeError("invalid number of arguments")
    out = []
    for ax, h in zip(axes, spacing):
        n = shape_of(f)[ax]
        if n < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, "
                             "at least (edge_order + 1) elements are required.")
        m = min(3, n)
        rows = np.arange(n)
        first = np.clip(rows - 1, 0, n - m)
        resp = [np.gradient((rows % m == r).astype(np.float64), peel(h), edge_order=edge_order)
                for r in range(m)]
        shape = [1] * nd
        shape[ax] = n
        g = 0.0
        for k in range(m):
            idx = first + k
            w = np.choose(idx % m, resp).astype(_float_dtype(f))
            g = g + np.take(f, idx, axis=ax) * w.reshape(shape)
        out.append(g)
    return out[0] if len(out) == 1 else tuple(out)
