"""Forward Laplacian: the trace (or the diagonal) of a Hessian in one pass.

Each value carries ``(primal, grad, lap)``: ``grad`` holds its first
derivatives along the ``d`` input coordinates (``(d,) + shape``, a batch of
tangents) and ``lap`` the sum of its second derivatives along them
(``shape``; or ``(d,) + shape``, one per coordinate, for the Hessian
diagonal). Every primitive maps these in O(d) work (Li et al., "Forward
Laplacian", 2023), by rules DERIVED from the registry:

* elementwise: ``g_y = sum_i p_i g_i`` and
  ``l_y = sum_i p_i l_i + sum_ij H_ij <g_i, g_j>`` where ``p_i`` are the
  registered partials and ``H_ij = d p_j / d x_i`` comes from evaluating the
  partials on Duals (the partials differentiate themselves);
* linear (reshape, sum, getitem, ...): the primitive on ``grad`` and ``lap``;
* matmul / einsum (multilinear): the primitive on each part plus the cross
  term ``2 sum_k A(g_a[k], g_b[k])``;
* anything else: per coordinate, one hyper-dual evaluation of that primitive
  (exact: the composed route, for that primitive only).

>>> import numpy as np
>>> f = lambda x: np.sum(np.sin(x) * x[0])
>>> x = np.array([0.3, 0.7])
>>> h = hessian_diag(f)(x)
>>> bool(np.allclose(h, [2 * np.cos(0.3) - 0.3 * np.sin(0.3), -0.3 * np.sin(0.7)]))
True
>>> bool(np.isclose(laplacian(f)(x), h.sum()))
True
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dualad.core.backend import namespace_of, peel, result_float_dtype
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, new_level
from dualad.core.registry import (
    _broadcast_tangent,
    _needs_guard,
    align,
    bind,
    eval_laplacian_update,
    eval_with_partials,
    ndim_of,
    push_partials,
    shape_of,
)
from dualad.core.tree import tree_flatten, tree_unflatten
from dualad.core.zero import Zero, add_any
from dualad.forward.dual import Dual, DualLevel
from dualad.forward.hyperdual import HyperDual, hyperdual_level
from dualad.rules.contractions import matmul_p

__all__ = ["LapTracer", "LaplacianLevel", "laplacian", "hessian_diag"]


class LapTracer(Tracer):
    """A primal with its gradient along the ``d`` input coordinates
    (``(d,) + shape``) and its Laplacian part (``shape``, or ``(d,) + shape``
    for a Hessian diagonal; ``Zero`` when it vanishes)."""

    __slots__ = ("primal", "grad", "lap", "_level")

    @classmethod
    def _make(cls, primal, grad, lap, level) -> LapTracer:
        t = cls.__new__(cls)
        t.primal, t.grad, t.lap, t._level = primal, grad, lap, level
        return t

    def __repr__(self) -> str:
        return f"LapTracer(primal={peel(self.primal)!r}, lap={self.lap!r})"


class LaplacianLevel(Level):
    """Forward-Laplacian interpreter. ``diag=False`` carries the trace of the
    Hessian (``lap`` shaped like the primal), ``diag=True`` its diagonal
    (``lap`` with the ``d`` coordinates in front, like ``grad``)."""

    __slots__ = ("diag",)
    kind = "laplacian"

    def __init__(self, diag: bool = False):
        super().__init__()
        self.diag = diag

    def process(self, prim, args, params):
        primals, grads, laps = [], [], []
        for a in args:
            if getattr(a, "_level", None) is self:
                primals.append(a.primal)
                grads.append(a.grad)
                laps.append(a.lap)
            else:
                primals.append(a)
                grads.append(Zero)
                laps.append(Zero)
        traced = [i for i, g in enumerate(grads) if g is not Zero]
        if prim.partials is not None and prim.n_outputs == 1:
            res = _elementwise(self, prim, primals, grads, laps, traced, params)
        elif prim.linear and traced == [0]:
            out = bind(prim, *primals, **params)
            res = (out, _apply_linear(prim, primals, grads, out, params),
                   _apply_linear(prim, primals, laps, out, params))
        elif prim.multilinear:
            res = _multilinear(self, prim, primals, grads, laps, traced, params)
        else:
            return _fallback(self, prim, primals, grads, laps, params)
        return self._wrap(*res)

    def _wrap(self, out, g, lap):
        return out if g is Zero else LapTracer._make(out, g, lap, self)


def _apply_linear(prim, primals, tangents, out, params):
    if all(t is Zero for t in tangents):
        return Zero
    return prim.jvp(primals, tangents, out, **params)


def _inner(gi, gj, diag: bool):
    """``<g_i, g_j>`` over the coordinate axis (kept for a diagonal)."""
    if diag:
        return gi * gj
    if type(gi) is np.ndarray and type(gj) is np.ndarray:
        # one pass without the (d,) + shape temporary (1.6x faster at d = 3)
        return np.einsum("k...,k...->...", gi, gj)
    return (gi * gj).sum(axis=0)


# ----------------------------------------------------------------------------
# elementwise: partials and their derivatives (partials on Duals)
# ----------------------------------------------------------------------------
def _elementwise(level, prim, primals, grads, laps, traced, params):
    if len(primals) == 1 and traced and not params:
        # a fused kernel (kernels/ installs it) does the whole unary update
        got = eval_laplacian_update(prim, primals[0], grads[0], laps[0], level.diag)
        if got is not None:
            return got
    out, parts = eval_with_partials(prim, primals, params)
    if parts is None:
        parts = prim.partials(out, *primals, **params)
    check = _needs_guard(prim.singular, out)
    out_shape = shape_of(out)
    out_nd = len(out_shape)
    g_out = push_partials(parts, primals, grads, out, check)
    lap = push_partials(parts, primals, laps, out, check)
    aligned = {i: align(grads[i], ndim_of(primals[i]), out_nd) for i in traced}
    for n, i in enumerate(traced):
        # Column i of the Hessian of the primitive: the partials, run on a
        # Dual with a unit tangent on input i (out moves by p_i).
        hcol = _second_partials(prim, primals, parts, out, i, params)
        for j in traced[n:]:
            h = hcol[j]
            if h is Zero:
                continue
            term = h * _inner(aligned[i], aligned[j], level.diag)
            lap = add_any(lap, term if j == i else 2.0 * term)
    if lap is not Zero:
        lead = 1 if level.diag else 0
        if shape_of(lap)[lead:] != out_shape:
            lap = _broadcast_tangent(lap, out_nd, out_shape)
    return out, g_out, lap


def _unit_like(x):
    # metadata accessors only: no read of a value being recorded (da.jit)
    xp = namespace_of(x)
    return xp.broadcast_to(xp.ones((), dtype=result_float_dtype(x)), shape_of(x))


def _second_partials(prim, primals, parts, out, i, params) -> list:
    """``[d p_j / d x_i for each input j]`` (``Zero`` where a partial does not
    depend on ``x_i``), by the partials on a Dual at a fresh level."""
    dl = DualLevel()
    p_i = parts[i]
    if p_i is None:
        return [Zero] * len(primals)
    out_t = p_i if shape_of(p_i) == shape_of(out) else np.broadcast_to(
        p_i if hasattr(p_i, "shape") else np.asarray(p_i, dtype=result_float_dtype(out)),
        shape_of(out))
    args = list(primals)
    args[i] = Dual._make(primals[i], _unit_like(primals[i]), dl)
    got = prim.partials(Dual._make(out, out_t, dl), *args, **params)
    return [g.tangent if getattr(g, "_level", None) is dl else Zero for g in got]


# ----------------------------------------------------------------------------
# multilinear: matmul and einsum
# ----------------------------------------------------------------------------
def _multilinear(level, prim, primals, grads, laps, traced, params):
    out = bind(prim, *primals, **params)
    if traced == [0] and prim is matmul_p and _equal_rows(grads[0], primals[0]):
        # The batched seeds (a stride-0 view, equal for every point): the
        # product's rows are equal too, so multiply one and broadcast it
        # (the first layer's tangent is W1 itself; no (d, M, K) GEMM).
        one = bind(prim, grads[0][..., :1, :], *primals[1:], **params)
        g_out = np.broadcast_to(one, (shape_of(grads[0])[0],) + shape_of(out))
    else:
        # BLAS takes no stride-0 operand (NumPy would loop in C instead)
        grads = [_dense(g) for g in grads]
        g_out = _apply_linear(prim, primals, grads, out, params)
    lap = _apply_linear(prim, primals, laps, out, params)
    nd = ndim_of(out)
    for n, i in enumerate(traced):
        for j in traced[n + 1:]:
            if prim is matmul_p:
                # The coordinate axis rides as a matmul batch axis: (d,) + out.
                cross = bind(prim, align(grads[i], ndim_of(primals[i]), nd),
                             align(grads[j], ndim_of(primals[j]), nd))
            else:
                cross = np.stack([_with(prim, primals, {i: grads[i][k], j: grads[j][k]}, params)
                                  for k in range(shape_of(grads[i])[0])])
            cross = cross if level.diag else cross.sum(axis=0)
            lap = add_any(lap, 2.0 * cross)
    return out, g_out, lap


def _equal_rows(g, x) -> bool:
    """``g`` (a tangent of a matrix operand ``x``) a plain array whose rows
    (axis -2) are one stride-0 row: every point's tangent the same."""
    return (type(g) is np.ndarray and g.ndim >= 3 and g.ndim == ndim_of(x) + 1
            and g.strides[-2] == 0 and g.shape[-2] > 1)


def _dense(g):
    if type(g) is np.ndarray and 0 in g.strides and g.size > 1:
        return np.ascontiguousarray(g)
    return g


def _with(prim, primals, swap: dict, params):
    return bind(prim, *[swap.get(k, x) for k, x in enumerate(primals)], **params)


# ----------------------------------------------------------------------------
# the exact fallback: one hyper-dual evaluation per coordinate
# ----------------------------------------------------------------------------
def _fallback(level, prim, primals, grads, laps, params):
    """``e1 = e2 = g[k]`` gives ``g_k^T H g_k`` in ``e12``; the Laplacian part
    of the inputs rides in ``e12`` (once for a trace, per coordinate for a
    diagonal), so ``J l`` is added by the same evaluations."""
    d = next(shape_of(g)[0] for g in grads if g is not Zero)
    n_out = prim.n_outputs
    out = bind(prim, *primals, **params)
    outs = out if n_out > 1 else (out,)
    gs, ls = [[] for _ in range(n_out)], [[] for _ in range(n_out)]
    for k in range(d):
        with hyperdual_level() as hl:
            args = [x if g is Zero else
                    HyperDual._make(x, g[k], g[k], _lap_part(level, lp, k), (), (), hl)
                    for x, g, lp in zip(primals, grads, laps)]
            res = bind(prim, *args, **params)
            for o, r in enumerate(res if n_out > 1 else (res,)):
                traced = getattr(r, "_level", None) is hl
                gs[o].append(r._e1 if traced else Zero)
                ls[o].append(r._e12 if traced else Zero)
    res = tuple(_assemble(level, o, g, lp) for o, g, lp in zip(outs, gs, ls))
    return res if n_out > 1 else res[0]


def _lap_part(level, lp, k: int):
    if lp is Zero:
        return Zero
    if level.diag:
        return lp[k]
    return lp if k == 0 else Zero


def _assemble(level, out, gs: list, ls: list):
    if all(g is Zero for g in gs):
        return out
    gs = [_zeros(out) if g is Zero else g for g in gs]
    if level.diag:
        lap = Zero if all(x is Zero for x in ls) else np.stack(
            [_zeros(out) if x is Zero else x for x in ls])
    else:
        lap = Zero
        for x in ls:
            lap = add_any(lap, x)
    return LapTracer._make(out, np.stack(gs), lap, level)


def _zeros(like):
    return namespace_of(like).zeros(shape_of(like), dtype=result_float_dtype(like))


# ----------------------------------------------------------------------------
# the public transforms
# ----------------------------------------------------------------------------
def _seeds(x, batch_axis: int | None):
    """``(d,) + x.shape`` unit tangents, one per coordinate of a point."""
    xp = namespace_of(x)          # (metadata only: x may be recorded by da.jit)
    shape = shape_of(x)
    dtype = result_float_dtype(x)
    if batch_axis is None:
        d = math.prod(shape)
        return xp.eye(d, dtype=dtype).reshape((d,) + shape), shape
    ax = batch_axis % len(shape)
    point = shape[:ax] + shape[ax + 1:]
    d = math.prod(point)
    eye = xp.eye(d, dtype=dtype).reshape((d,) + point)
    eye = xp.expand_dims(eye, ax + 1)
    if xp is np and ax == len(shape) - 2:
        # (d, ..., M, d): a stride-0 view along the points; a matmul by the
        # first layer's weights then multiplies one row (see _multilinear),
        # and the tanh kernel reads (d, width) instead of (d, M, width)
        return np.broadcast_to(eye, (d,) + shape), point
    return xp.ascontiguousarray(xp.broadcast_to(eye, (d,) + shape)), point


def _run(fn: Callable, diag: bool, batch_axis, argnums: int, name: str) -> Callable:
    def transformed(*args):
        if argnums >= len(args):
            raise TypeError(f"{name}: argnums={argnums} but the function got {len(args)} "
                            "argument(s)")
        x = args[argnums]
        if not hasattr(x, "shape") or (not hasattr(x, "_level")
                                       and np.asarray(x).dtype.kind in "biu"):
            x = np.asarray(x, dtype=np.float64)
        if batch_axis is not None and ndim_of(x) == 0:
            raise ValueError(f"{name}(batch_axis={batch_axis}) needs an array input with "
                             "that axis; got a scalar")
        seeds, point = _seeds(x, batch_axis)
        with new_level(LaplacianLevel(diag)) as level:
            xs = list(args)
            xs[argnums] = LapTracer._make(x, seeds, Zero, level)
            y = fn(*xs)
            if getattr(y, "_level", None) is level:      # the common case: one array
                return _result(y, level, diag, seeds.shape[0], point)
            leaves, td = tree_flatten(y)
            res = [_result(leaf, level, diag, seeds.shape[0], point) for leaf in leaves]
        return tree_unflatten(td, res)
    transformed.__name__ = f"{name}_{getattr(fn, '__name__', 'fn')}"
    transformed.__doc__ = fn.__doc__
    return transformed


def _result(y, level, diag: bool, d: int, point: tuple):
    """One output leaf's Laplacian (or Hessian diagonal, coordinates last)."""
    if getattr(y, "_level", None) is level:
        out, lap = y.primal, y.lap
    else:
        out, lap = y, Zero            # does not depend on the input
    if lap is Zero:
        lap = namespace_of(out).zeros(((d,) if diag else ()) + shape_of(out),
                                      dtype=result_float_dtype(out))
    if diag:
        # coordinates last: out.shape + the point's shape
        lap = np.moveaxis(lap, 0, -1).reshape(shape_of(out) + point)
    return lap


def laplacian(fn: Callable, argnums: int = 0, *, batch_axis: int | None = None) -> Callable:
    """A function giving the Laplacian (trace of the Hessian) of ``fn`` with
    respect to argument ``argnums``, by one forward-Laplacian pass.

    The result has ``fn``'s output shape: each output component's Laplacian
    (a scalar for a scalar ``fn``). With ``batch_axis=a``, each slice of the
    input along axis ``a`` is a separate point: ``laplacian(u, batch_axis=0)(X)``
    for ``X`` of shape ``(N, d)`` and ``u(X)`` of shape ``(N,)`` gives the
    ``N`` Laplacians with respect to each row's own ``d`` coordinates, in one
    pass of ``d`` tangents. This is only correct when points do not interact
    (output ``n`` depends on row ``n`` alone, as in a pointwise network);
    otherwise it returns the Laplacian along the simultaneous moves of all
    points, which is not the per-point Laplacian. Verify a new ``u`` once
    with ``da.sparsity`` or against the unbatched result on a few points.

    Composes with ``grad`` (a PINN loss's gradient w.r.t. the weights).

    >>> import numpy as np
    >>> u = lambda X: np.sum(X ** 3, axis=1)
    >>> laplacian(u, batch_axis=0)(np.array([[1.0, 2.0], [0.5, 0.0]]))
    array([18.,  3.])
    """
    return _run(fn, False, batch_axis, argnums, "laplacian")


def hessian_diag(fn: Callable, argnums: int = 0, *, batch_axis: int | None = None) -> Callable:
    """A function giving the diagonal of the Hessian of ``fn`` with respect to
    argument ``argnums`` in one forward pass (O(d) per primitive).

    Shape: ``fn``'s output shape followed by the input's shape (for a scalar
    ``fn``: the input's shape). With ``batch_axis`` (see :func:`laplacian`,
    same independence condition) the output shape is followed by one point's
    shape: ``(N, d)`` for ``u(X)`` of shape ``(N,)`` and ``X`` of shape ``(N, d)``.

    >>> import numpy as np
    >>> hessian_diag(lambda x: np.sum(x ** 3))(np.array([1.0, 2.0]))
    array([ 6., 12.])
    """
    return _run(fn, True, batch_axis, argnums, "hessian_diag")
