"""Shape primitives: all linear, declared with their transposes. Each takes
``lead``, the number of batch axes in front of the core array, so the same
primitive moves batched tangents and cotangents.

Axes and shapes are normalised against the core array at dispatch time, so
the primitives only ever see non-negative axes and explicit shapes.
"""
from __future__ import annotations

import numpy as np

from dualad.core.backend import namespace_of, peel_keep_batch, staging_bottom
from dualad.core.dispatch import implements
from dualad.core.registry import align, defprimitive, ndim_of, provided, shape_of, unbroadcast
from dualad.core.zero import Zero


def normalize_axes(axis, ndim: int) -> tuple:
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % max(ndim, 1))
    return tuple(sorted(out))


def _lead_shape(x, lead: int) -> tuple:
    return shape_of(x)[:lead]


# ============================================================================
# reshape
# ============================================================================
def _reshape(x, shape, lead=0):
    return namespace_of(x).reshape(x, _lead_shape(x, lead) + tuple(shape))


reshape_p = defprimitive("reshape", _reshape,
                         transpose=lambda ct, primals, lead, shape: reshape_p(
                             ct, shape=shape_of(primals[0]), lead=lead))


@implements(np.reshape)
def reshape(x, shape=None, order="C", **kwargs):
    shape = kwargs.pop("newshape", shape)
    if order != "C":
        raise ValueError("dualad supports only order='C' reshapes of traced arrays")
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    size = int(np.prod(shape_of(x), dtype=np.int64))
    shape = tuple(int(s) for s in shape)
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        shape = tuple(size // max(known, 1) if s == -1 else s for s in shape)
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"cannot reshape array of shape {shape_of(x)} into shape {shape}")
    if shape == shape_of(x):
        return x
    return reshape_p(x, shape=shape)


@implements(np.ravel)
def ravel(x, order="C"):
    return reshape(x, (-1,), order)


@implements(np.expand_dims)
def expand_dims(x, axis):
    nd = ndim_of(x)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out_nd = nd + len(axes)
    axes = sorted(a % out_nd for a in axes)
    shape = list(shape_of(x))
    for a in axes:
        shape.insert(a, 1)
    return reshape(x, tuple(shape))


@implements(np.squeeze)
def squeeze(x, axis=None):
    shape = shape_of(x)
    if axis is None:
        axes = tuple(i for i, s in enumerate(shape) if s == 1)
    else:
        axes = normalize_axes(axis, len(shape))
        for a in axes:
            if shape[a] != 1:
                raise ValueError(
                    f"cannot select an axis to squeeze out which has size not equal to one "
                    f"(axis {a} of shape {shape})")
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in axes))


# ============================================================================
# transpose and axis moves
# ============================================================================
def _transpose(x, axes, lead=0):
    return namespace_of(x).transpose(
        x, tuple(range(lead)) + tuple(a + lead for a in axes))


def _transpose_T(ct, primals, lead, axes):
    # Bind the primitive (never call the impl on a possibly traced ct: for a
    # CuPy-backed tracer the impl's cupy.transpose would not dispatch back).
    return transpose_p(ct, axes=tuple(int(a) for a in np.argsort(axes)), lead=lead)


transpose_p = defprimitive("transpose", _transpose, transpose=_transpose_T)


@implements(np.transpose)
def transpose(x, axes=None):
    nd = ndim_of(x)
    axes = tuple(reversed(range(nd))) if axes is None else tuple(a % nd for a in axes)
    if sorted(axes) != list(range(nd)):
        raise ValueError(f"axes {axes} don't match an array of dimension {nd}")
    if axes == tuple(range(nd)):
        return x
    return transpose_p(x, axes=axes)


@implements(np.swapaxes)
def swapaxes(x, axis1, axis2):
    nd = ndim_of(x)
    axes = list(range(nd))
    a, b = axis1 % nd, axis2 % nd
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, tuple(axes))


@implements(np.moveaxis)
def moveaxis(x, source, destination):
    nd = ndim_of(x)
    src = (source % nd,) if isinstance(source, (int, np.integer)) else ()
    dst = (destination % nd,) if isinstance(destination, (int, np.integer)) else tuple(
        d % nd for d in destination)
    if not isinstance(source, (int, np.integer)):
        src = tuple(s % nd for s in source)
    order = [a for a in range(nd) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, tuple(order))


# ============================================================================
# broadcasting
# ============================================================================
def _broadcast_to(x, shape, lead=0):
    x = align(x, ndim_of(x) - lead, len(shape)) if lead else x
    return namespace_of(x).broadcast_to(x, _lead_shape(x, lead) + tuple(shape))


broadcast_to_p = defprimitive("broadcast_to", _broadcast_to,
                              transpose=lambda ct, primals, lead, shape: unbroadcast(
                                  ct, shape_of(primals[0]), lead))
provided.broadcast_to = broadcast_to_p      # the derived elementwise jvp (core) binds it


@implements(np.broadcast_to)
def broadcast_to(x, shape, subok=False):
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if shape == shape_of(x):
        return x
    return broadcast_to_p(x, shape=shape)


@implements(np.broadcast_arrays)
def broadcast_arrays(*args, subok=False):
    shape = np.broadcast_shapes(*[shape_of(a) for a in args])
    return tuple(broadcast_to(a, shape) for a in args)


# ============================================================================
# where: linear in both branches, the condition is a constant
# ============================================================================
def _where_jvp(primals, tangents, out, **params):
    cond, x, y = primals
    _, tx, ty = tangents
    if tx is Zero and ty is Zero:
        return Zero
    nd = ndim_of(out)
    tx = 0.0 if tx is Zero else align(tx, ndim_of(x), nd)
    ty = 0.0 if ty is Zero else align(ty, ndim_of(y), nd)
    return where_p(cond, tx, ty)


def _where_vjp(ct, primals, out, needs, **params):
    cond, x, y = primals
    lead = ndim_of(ct) - ndim_of(out)
    zero = np.zeros((), dtype=getattr(ct, "dtype", None) or np.float64)
    return (Zero,
            unbroadcast(where_p(cond, ct, zero), shape_of(x), lead) if needs[1] else Zero,
            unbroadcast(where_p(cond, zero, ct), shape_of(y), lead) if needs[2] else Zero)


where_p = defprimitive("where", lambda cond, x, y: namespace_of(x, y).where(cond, x, y),
                       jvp=_where_jvp, vjp=_where_vjp)


@implements(np.where)
def where(cond, x=None, y=None):
    # The condition is data without a derivative; a vmap's batch stays on it,
    # and under a da.jit recording it is the recorded condition (an input of
    # the program, not a read).
    if x is None and y is None:
        return np.nonzero(peel_keep_batch(cond))
    recorded = staging_bottom(cond) if hasattr(cond, "_level") else None
    return where_p(peel_keep_batch(cond) if recorded is None else recorded, x, y)
