"""Structural rules for shape, indexing and reduction primitives.

Each rule is ``rule(ctx, prim, primals, tangents, params) -> (out, tangent)``
for tangents that are :class:`Structured`, :class:`Coo` or ``Zero`` (the
interpreter sends dense ones to the registry's ``jvp``); it returns a string
instead of the tangent to ask for the dense fallback (the string is the
reason counted in ``stats``). ``out`` may be None when no work was done.

========================  ===================================================
reshape, transpose,       act on maps and values (the slot axis leads); a
broadcast_to, astype      broadcast only inserts unit axes
getitem                   maps and values gathered (COO: a sorted join)
scatter_add               basic key: values placed into zeros (Structured);
                          fancy key: (direction, position, value) COO chunks
sum, norm2, max/min,      constant-map axes sum the values; varying-map axes
prod                      fold into the slots (or go dense when cheaper)
lane_shift                maps and values shifted, zero-filled
========================  ===================================================

Example::

    >>> import numpy as np
    >>> from dualad.structured import hessian_structured
    >>> hessian_structured(lambda x: (x[1:] * x[:-1]).sum(), np.ones(3))
    array([[0., 1., 0.],
           [1., 0., 1.],
           [0., 1., 0.]])
"""
from __future__ import annotations

import math

import numpy as np

from dualad.core.registry import bind, shape_of
from dualad.rules.indexing import getitem_p, key_info, scatter_add_p
from dualad.rules.reductions import (
    _prod_others,
    _tie_weights,
    lane_shift_p,
    norm2_p,
    prod_p,
    reduce_max_p,
    reduce_min_p,
    sum_p,
)
from dualad.rules.shape import broadcast_to_p, reshape_p, transpose_p
from dualad.rules.ufuncs import astype_p
from dualad.structured.tangents import (
    Coo,
    Structured,
    align_terms,
    coo_broadcast,
    coo_gather,
    coo_map_cols,
    coo_scale,
    dense_total,
    densify,
    fold_constant_axes,
    merge_terms,
    scale_terms,
)


# ============================================================================
# shape primitives
# ============================================================================
def _reshape_arr(a, shape: tuple, new: tuple):
    """``a`` (broadcastable to ``(k,) + shape``) reshaped to ``(k,) + new``,
    staying broadcast where only unit axes move."""
    k = a.shape[0]
    if a.size == k:
        return a.reshape((k,) + (1,) * len(new))
    if a.shape[1:] == shape:
        return a.reshape((k,) + new)
    if [s for s in shape if s != 1] == [s for s in new if s != 1]:
        it = iter([d for d, s in zip(a.shape[1:], shape) if s != 1])
        return a.reshape((k,) + tuple(next(it) if s != 1 else 1 for s in new))
    return np.broadcast_to(a, (k,) + shape).reshape((k,) + new)


def _reshape(ctx, prim, primals, tangents, params):
    t = tangents[0]
    x = primals[0]
    out = bind(prim, x, **params)
    shape, new = tuple(t.shape), tuple(params["shape"])
    if isinstance(t, Coo):
        return out, Coo(new, t.chunks)           # flat positions do not move
    terms = [(ctx.derive(i, ("reshape", shape, new), lambda i=i: _reshape_arr(i, shape, new)),
              _reshape_arr(v, shape, new)) for i, v in t.terms]
    return out, Structured(new, terms)


def _transpose(ctx, prim, primals, tangents, params):
    t = tangents[0]
    out = bind(prim, primals[0], **params)
    axes = tuple(params["axes"])
    new = shape_of(out)
    if isinstance(t, Coo):
        m = math.prod(t.shape)
        table = ctx.derive(None, ("transpose", t.shape, axes), lambda: _perm_table(ctx, t.shape,
                                                                                   axes, m))
        return out, coo_map_cols(t, table, new)
    full = (0,) + tuple(a + 1 for a in axes)
    terms = [(ctx.derive(i, ("transpose", axes), lambda i=i: i.transpose(full)),
              v.transpose(full)) for i, v in t.terms]
    return out, Structured(new, terms)


def _perm_table(ctx, shape, axes, m):
    table = np.empty(m, dtype=np.intp)
    table[ctx.positions(shape).transpose(axes).ravel()] = np.arange(m, dtype=np.intp)
    return table


def _broadcast_to(ctx, prim, primals, tangents, params):
    t = tangents[0]
    out = bind(prim, primals[0], **params)
    new = shape_of(out)
    if isinstance(t, Coo):
        return out, coo_broadcast(ctx, t, new)
    # A broadcast replicates values: the unit axes a term already has do it.
    return out, Structured(new, align_terms(ctx, t.terms, len(t.shape), len(new)))


def _astype(ctx, prim, primals, tangents, params):
    t = tangents[0]
    out = bind(prim, primals[0], **params)
    dtype = np.dtype(params["dtype"])
    if isinstance(t, Coo):
        return out, Coo(t.shape, [(r, c, v.astype(dtype)) for r, c, v in t.chunks])
    return out, Structured(t.shape, [(i, v.astype(dtype)) for i, v in t.terms])


# ============================================================================
# indexing: gathers compose the maps; scatters emit COO chunks
# ============================================================================
def _getitem(ctx, prim, primals, tangents, params):
    t = tangents[0]
    out = bind(prim, primals[0], **params)
    key = params["key"]
    if isinstance(t, Coo):
        src = ctx.derive(None, ("src", id(key), t.shape),
                         lambda: ctx.positions(t.shape)[key], keep=key)
        return out, coo_gather(ctx, t, src, shape_of(out))
    # The slot axis leads: index behind a full slice. Separated advanced
    # indices put their broadcast axes first; move the slot axis back in front.
    _, front, nb = key_info(key)
    shape = tuple(t.shape)
    new = shape_of(out)

    def gather(a):
        g = a[(slice(None),) + _broadcast_key(key, a.shape[1:], shape)]
        return np.moveaxis(g, nb, 0) if front else g

    terms = []
    for i, v in t.terms:
        gi = ctx.derive(i, ("getitem", id(key)), lambda i=i: gather(i), keep=key)
        if v.size == v.shape[0]:       # the same values everywhere: stay broadcast
            gv = v.reshape(v.shape[:1] + (1,) * len(new))
        else:
            gv = gather(v)
        terms.append((gi, gv))
    return out, Structured(new, terms)


def _broadcast_key(key: tuple, have: tuple, shape: tuple) -> tuple:
    """``key`` adapted to an array of shape ``have`` that broadcasts to
    ``shape``: along a unit (broadcast) axis a slice keeps the unit axis, an
    int or an index array picks entry 0. Why: a map that is constant along an
    axis must stay so after slicing (``u[1:]`` of a per-bond unit vector keeps
    its xyz axis broadcast), or the next sum over that axis would fold it into
    the slots."""
    if have == shape:
        return key
    out, ax = [], 0
    for k in key:
        if k is None:
            out.append(None)
            continue
        if have[ax] == 1 and shape[ax] != 1:
            if isinstance(k, slice):
                k = slice(None)
            elif isinstance(k, int):
                k = 0
            else:
                k = np.zeros_like(k)
        out.append(k)
        ax += 1
    return tuple(out)


def _scatter_add(ctx, prim, primals, tangents, params):
    """The transpose of a gather. A basic key picks each input element at most
    once: the terms are placed into zeros and stay Structured. A fancy key
    (how pair cotangents reach the atoms through ``r[i]``) may repeat: each
    term's (direction, target position, value) become COO entries, which is
    the Hessian's rows."""
    t = tangents[0]
    out = bind(prim, primals[0], **params)
    key, in_shape = params["key"], tuple(params["in_shape"])
    target = ctx.derive(None, ("scatter", id(key), in_shape),
                        lambda: ctx.positions(in_shape)[key], keep=key)
    if isinstance(t, Coo):
        return out, coo_map_cols(t, np.ravel(target), in_shape)
    if key_info(key)[0]:
        terms = [(ctx.derive(i, ("place", id(key), in_shape),
                             lambda i=i: _place(i, key, in_shape, ctx), keep=key),
                  _place(v, key, in_shape)) for i, v in t.terms]
        return out, Structured(in_shape, terms)
    # Each term whose map is one map of the target positions (the seed's
    # slots of atom a, scattered back onto atom a: the diagonal blocks of a
    # pair potential) sums its values per position and stays one term over
    # the input; the others become COO entries (the off-diagonal blocks).
    folded, chunks = [], []
    for i, v in t.terms:
        f = _fold_scatter(ctx, i, v, target, key, in_shape)
        if f is None:
            chunks.append((i, target, v))
        else:
            folded.append(f)
    if not chunks and all(hit is None for _, _, hit in folded):
        return out, Structured(in_shape, merge_terms(ctx, [(m, v) for m, v, _ in folded]))
    pos = ctx.positions(in_shape)
    for m, v, hit in folded:
        if hit is None:
            chunks.append((m, pos, v))
        else:           # positions no element reaches: no entries there
            k = m.shape[0]
            chunks.append((m.reshape(k, -1)[:, hit], np.ravel(pos)[hit],
                           v.reshape(v.shape[0], -1)[:, hit]))
    return out, Coo(in_shape, chunks)


def _fold_scatter(ctx, idx, val, target, key, in_shape: tuple):
    """``(map, values, hit)`` over ``in_shape`` for the scatter-add of the term
    ``(idx, val)`` to ``target`` (the input position of each element), when
    the direction of every slot is a function of the target position
    (``idx[k, e] == map[k, target[e]]``); else None. ``hit``: the positions
    targeted (None: all). Exact: the values sharing a (direction, position)
    add, as their COO entries would."""
    size = math.prod(in_shape)
    found = ctx.derive(idx, ("fold-scatter", id(key), in_shape),
                       lambda: _direction_table(idx, target, size), keep=key)
    if found is None:
        return None
    table, hit = found
    full = np.broadcast_shapes(val.shape, (1,) + target.shape)
    vals = np.broadcast_to(val, full).reshape(full[0], -1)
    flat = np.ravel(target)
    summed = np.stack([np.bincount(flat, weights=vals[k], minlength=size)
                       for k in range(full[0])])
    summed = summed.astype(val.dtype, copy=False)
    return (table.reshape(table.shape[:1] + in_shape), summed.reshape(full[:1] + in_shape),
            hit)


def _direction_table(idx, target, size: int):
    """``(map, hit)`` with ``idx[k, e] == map[k, target[e]]`` for every slot
    and element, ``hit`` the positions targeted (None: all); else None.
    The leading elements are tried first: a term that does not fold (the
    off-diagonal blocks) is told apart there, cheaply. One slot at a time,
    the map broadcast (never copied) against the positions."""
    k = idx.shape[0]
    target = np.asarray(target)
    table = np.zeros((k, size), dtype=idx.dtype)
    lead = target.shape[0] if target.ndim else 1
    per = max(1, target.size // max(1, lead))
    for stop in (min(lead, max(1, (1 << 16) // per)), lead):
        part = target[:stop] if target.ndim else target
        for s in range(k):
            row = np.broadcast_to(idx[s], target.shape)
            row = row[:stop] if target.ndim else row
            tab = table[s]
            tab[part] = row
            if not bool((tab[part] == row).all()):
                return None
        if stop == lead:
            break
    hit = np.zeros(size, dtype=bool)
    hit[target] = True
    return table, (None if hit.all() else hit)


def _place(a, key: tuple, in_shape: tuple, ctx=None):
    """``a`` (slot axis first) written at the basic ``key`` into zeros of
    ``(k,) + in_shape``, keeping a unit axis where ``a`` is broadcast and the
    key takes the whole axis (so constant maps stay constant). With ``ctx``
    (for a map) the region written is recorded as the map's support."""
    zshape, zkey = [a.shape[0]], [slice(None)]
    oa = ia = 0
    for k in key:
        if k is None:
            zkey.append(None)
            oa += 1
            continue
        n_in = in_shape[ia]
        if isinstance(k, slice):
            if k == slice(0, n_in, 1) and a.shape[1 + oa] == 1:
                zshape.append(1)
                zkey.append(slice(None))
            else:
                zshape.append(n_in)
                zkey.append(k)
            oa += 1
        else:
            zshape.append(n_in)
            zkey.append(k)
        ia += 1
    z = np.zeros(tuple(zshape), dtype=a.dtype)
    z[tuple(zkey)] = a
    if ctx is not None:
        mask = np.zeros(tuple(zshape[1:]), dtype=bool)
        mask[tuple(zkey[1:])] = True
        ctx.set_support(z, mask)
    return z


# ============================================================================
# reductions: constant-map axes sum values; varying-map axes become slots
# ============================================================================
def sum_terms(ctx, t: Structured, axes: tuple, keepdims: bool, out_shape: tuple):
    """Sum a Structured tangent over ``axes``. Along an axis where a term's map
    is constant (a unit axis of ``idx``, e.g. the xyz axis once a pair array
    holds all three coordinate slots of an atom) the values are summed; along
    one where it varies the axis is folded into the slots (``K -> K * size``).
    When the slots outgrow the directions the dense ``(n,) + out_shape`` result
    is cheaper."""
    shape = tuple(t.shape)
    nd = len(shape)
    if math.prod(out_shape) == 1 and any(
            idx.shape[0] * math.prod(shape[a] for a in axes if idx.shape[a + 1] != 1) > ctx.n
            for idx, _ in t.terms):
        # A total (a scalar energy) whose slots outgrow the directions: the
        # dense gradient-sized result straight from the terms (folding and
        # merging them first would only be undone by densify).
        ctx.count_dense_sum()
        return dense_total(ctx, t.terms, shape).reshape((ctx.n,) + tuple(out_shape))
    kept = [a for a in range(nd) if a not in axes]
    terms = []
    for idx, val in t.terms:
        var = [a for a in axes if idx.shape[a + 1] != 1]
        const = [a for a in axes if idx.shape[a + 1] == 1]
        val = fold_constant_axes(idx, val, const, shape)
        if var:
            vshape = list(np.broadcast_shapes(val.shape, idx.shape[:1] + (1,) * nd))
            for a in var:
                vshape[a + 1] = shape[a]
            val = np.broadcast_to(val, tuple(vshape))
        # slots, then the varying reduced axes (merged into the slots), then
        # the constant (unit) ones and the kept axes in order.
        perm = tuple([0] + [a + 1 for a in var + const + kept])

        def fold(a, var=var, perm=perm):
            if keepdims:
                lead = tuple(1 if ax in axes else a.shape[ax + 1] for ax in range(nd))
            else:
                lead = tuple(a.shape[ax + 1] for ax in kept)
            if not var:
                return a.reshape(a.shape[:1] + lead)
            first = a.shape[0] * math.prod(a.shape[ax + 1] for ax in var)
            # Contiguous: a strided view here would make every later
            # elementwise op iterate in the slow (slot-fastest) order.
            return np.ascontiguousarray(a.transpose(perm).reshape((first,) + lead))

        terms.append((ctx.derive(idx, ("sum", axes, keepdims), lambda idx=idx, f=fold: f(idx)),
                      fold(val)))
    res = Structured(out_shape, merge_terms(ctx, terms))
    if res.slots() > ctx.n:
        ctx.count_dense_sum()
        return densify(ctx, res)
    return res


def _sum_coo(ctx, t: Coo, axes: tuple, keepdims: bool, out_shape: tuple) -> Coo:
    shape = tuple(t.shape)
    kshape = tuple(1 if a in axes else s for a, s in enumerate(shape))

    def table():
        return np.broadcast_to(ctx.positions(kshape), shape).ravel()
    return coo_map_cols(t, ctx.derive(None, ("sumcoo", shape, axes), table), out_shape)


def _sum(ctx, prim, primals, tangents, params):
    t = tangents[0]
    out = bind(prim, primals[0], **params)
    axes, keepdims = tuple(params["axis"]), bool(params["keepdims"])
    out_shape = shape_of(out)
    if not axes:
        return out, t
    if isinstance(t, Coo):
        return out, _sum_coo(ctx, t, axes, keepdims, out_shape)
    return out, sum_terms(ctx, t, axes, keepdims, out_shape)


def _weighted_sum(weights):
    """A rule for ``t_out = sum(w * t, axis)`` reductions (norm2, max/min, prod),
    given ``weights(x, out, axis, keepdims) -> w`` on plain arrays."""
    def rule(ctx, prim, primals, tangents, params):
        t = tangents[0]
        x = primals[0]
        out = bind(prim, x, **params)
        axes, keepdims = tuple(params["axis"]), bool(params["keepdims"])
        w = weights(x, out, axes, keepdims)
        out_shape = shape_of(out)
        if isinstance(t, Coo):
            return out, _sum_coo(ctx, coo_scale(t, w, t.shape), axes, keepdims, out_shape)
        scaled = Structured(t.shape, scale_terms(t.terms, w, False))
        if not axes:
            return out, scaled
        return out, sum_terms(ctx, scaled, axes, keepdims, out_shape)
    return rule


def _keep_axes(out, axes, keepdims):
    return out if keepdims else np.expand_dims(out, axes)


def _norm2_weights(x, out, axes, keepdims):
    # d|x| = (x / |x|) . dx, and 0 at the zero vector (as the primitive's jvp).
    o = _keep_axes(out, axes, keepdims)
    zero = o == 0
    return np.where(zero, 0.0, x / np.where(zero, 1.0, o))


def _prod_weights(x, out, axes, keepdims):
    return _prod_others(x, axes)


# ============================================================================
# lane_shift (the shifted copies inside prod's rules)
# ============================================================================
def _lane_shift(ctx, prim, primals, tangents, params):
    t = tangents[0]
    out = bind(prim, primals[0], **params)
    shift = params["shift"]
    shape = tuple(t.shape)
    if isinstance(t, Coo):
        src = ctx.derive(None, ("lane", shape, shift), lambda: _lane_src(ctx, shape, shift))
        return out, coo_gather(ctx, t, src, shape)
    impl = prim.impl
    n = shape[-1]

    def shifted(a):
        if a.shape[-1] != n:         # broadcast along the shifted axis: expand it
            a = np.broadcast_to(a, a.shape[:-1] + (n,))
        return impl(a, shift=shift)

    terms = [(ctx.derive(i, ("lane", shift, n), lambda i=i: shifted(i)), shifted(v))
             for i, v in t.terms]
    return out, Structured(shape, terms)


def _lane_src(ctx, shape, shift):
    """Input position feeding each output position of the shift (-1: none)."""
    pos = ctx.positions(shape)
    n = shape[-1]
    src = np.full(shape, -1, dtype=np.intp)
    if shift >= 0 and shift < n:
        src[..., shift:] = pos[..., :n - shift]
    elif -n < shift < 0:
        src[..., :n + shift] = pos[..., -shift:]
    return src


RULES = {
    reshape_p: _reshape,
    transpose_p: _transpose,
    broadcast_to_p: _broadcast_to,
    astype_p: _astype,
    getitem_p: _getitem,
    scatter_add_p: _scatter_add,
    sum_p: _sum,
    norm2_p: _weighted_sum(_norm2_weights),
    reduce_max_p: _weighted_sum(_tie_weights),
    reduce_min_p: _weighted_sum(_tie_weights),
    prod_p: _weighted_sum(_prod_weights),
    lane_shift_p: _lane_shift,
}
"""The one-input structural rules, by primitive object."""
