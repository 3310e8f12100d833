"""Forward-mode transforms: jvp, jacfwd, and chunk choice."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dualad.core.args import (
    as_array,
    as_result,
    as_tuple_positions,
    at_positions,
    batch_lead,
    check_chunk,
    check_complex,
    check_float_args,
    check_outputs,
    check_positions,
    check_tangent,
    identity_rows,
    materialize,
)
from dualad.core.backend import namespace_of, peel_keep_batch, result_float_dtype, value_type
from dualad.core.levels import is_traced, level_of, lower_to, new_level
from dualad.core.registry import shape_of
from dualad.core.tree import tree_flatten, tree_map, tree_unflatten
from dualad.core.zero import Zero
from dualad.forward.dual import Dual, DualLevel

DEFAULT_CHUNK_THRESHOLD = 64
DEFAULT_MEMORY_CAP = 512 * 2**20   # bytes a batch of tangents of one input may take


def pick_chunk(n: int, threshold: int = DEFAULT_CHUNK_THRESHOLD, *, bytes_per_direction: int = 0,
               memory_cap: int = DEFAULT_MEMORY_CAP) -> int:
    """ForwardDiff's rule: chunks no larger than ``threshold`` (and than the
    memory cap allows), fewest chunks, then the least leftover.

    >>> pick_chunk(100, 64)
    50
    >>> pick_chunk(10, 64)
    10
    """
    if n <= 0:
        return 1
    limit = max(1, threshold)
    if bytes_per_direction > 0:
        limit = max(1, min(limit, memory_cap // bytes_per_direction))
    n_chunks = math.ceil(n / limit)
    return math.ceil(n / n_chunks)


def _open(level, primal, tangent):
    return Dual._make(as_array(primal), tangent, level)


def _close(level, out_leaf, lead_shape=()):
    """Split an output leaf into (primal, tangent) at ``level``."""
    out_leaf = lower_to(out_leaf, level)
    if level_of(out_leaf) is level:
        return out_leaf.primal, materialize(out_leaf.tangent, out_leaf.primal, lead_shape)
    return out_leaf, materialize(Zero, out_leaf, lead_shape)



def jvp_flat(fn: Callable, primals: tuple, tangents: tuple, lead_shape: tuple = ()):
    """Core of :func:`jvp`: returns (out primal pytree, out tangent pytree)."""
    with new_level(DualLevel()) as level:
        args = []
        for p, t in zip(primals, tangents):
            pl, td = tree_flatten(p)
            tl, _ = tree_flatten(t)
            args.append(tree_unflatten(td, [_open(level, a, b) for a, b in zip(pl, tl)]))
        out = fn(*args)
        check_outputs(out)
        leaves, td = tree_flatten(out)
        pairs = [_close(level, o, lead_shape) for o in leaves]
    return (tree_unflatten(td, [as_result(p) for p, _ in pairs]),
            tree_unflatten(td, [as_result(t) for _, t in pairs]))


def jvp(fn: Callable, primals: tuple, tangents: tuple, has_aux: bool = False,
        *, batched: bool = False):
    """Jacobian-vector product: ``(fn(*primals), J @ tangents)``.

    ``batched=True``: every tangent has shape ``(k,) + primal.shape`` (k
    directions at once, one pass) and each output tangent gets the leading k
    axis. Without it a tangent must have exactly its primal's shape (the flag
    removes the ambiguity when ``primal.shape[0] == k``).

    >>> import numpy as np, dualad as da
    >>> y, t = da.jvp(np.sin, (0.0,), (1.0,))
    >>> float(y), float(t)
    (0.0, 1.0)
    >>> x = np.array([1.0, 2.0])
    >>> da.jvp(lambda x: x * x, (x,), (np.eye(2),), batched=True)[1]
    array([[2., 0.],
           [0., 4.]])
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp expects primals and tangents as tuples, e.g. jvp(f, (x,), (v,))")
    primals, tangents = tuple(primals), tuple(tangents)
    pl, ptd = tree_flatten(primals)
    tl, ttd = tree_flatten(tangents)
    if ptd != ttd:
        raise ValueError(f"primals and tangents must have the same structure: {ptd} vs {ttd}")
    check_float_args(primals, range(len(primals)))
    lead = batch_lead(pl, tl, "tangent", "da.jvp(f, primals, tangents, batched=True)") \
        if batched else ()
    for p, t in zip(pl, tl):
        if batched:
            continue
        if shape_of(t) != shape_of(p) and shape_of(t)[1:] == shape_of(p):
            raise ValueError(
                f"tangent shape {shape_of(t)} does not match its primal's shape {shape_of(p)}; "
                "for a batch of tangents with a leading axis, call "
                "da.jvp(f, primals, tangents, batched=True)")
        check_tangent(p, t)
    tl = [_cast_like(t, p) for p, t in zip(pl, tl)]
    tangents = tree_unflatten(ttd, tl)
    if has_aux:
        aux_box = []

        def fn_main(*a):
            res = fn(*a)
            if not isinstance(res, tuple) or len(res) < 2:
                raise TypeError("has_aux=True needs fn to return a tuple (output, aux)")
            aux_box.append(tuple(_strip(x) for x in res[1:]))
            return res[0]

        out, tout = jvp_flat(fn_main, primals, tangents, lead)
        aux = aux_box[0]
        return out, tout, aux[0] if len(aux) == 1 else aux
    return jvp_flat(fn, primals, tangents, lead)



def _cast_like(t, p):
    """The tangent in its primal's dtype (a NumPy scalar for a scalar primal:
    scalar arithmetic is much cheaper than on 0-d arrays)."""
    if is_traced(t):
        return t
    vt = value_type(p)
    if vt is float or vt is np.float64:
        return np.float64(t)
    return namespace_of(p).asarray(t, dtype=result_float_dtype(p))


def _strip(x):
    """Aux outputs: remove every tracer level opened by the transform."""
    return tree_map(lambda v: peel_keep_batch(v) if is_traced(v) else v, x)


def jacfwd(fn: Callable, argnums=0, *, chunk: int | None = None,
           holomorphic: bool = False) -> Callable:
    """Jacobian by forward mode, ``out.shape + in.shape``, in ceil(n/chunk)
    vectorised passes (a batch of tangents per pass).

    >>> import numpy as np, dualad as da
    >>> da.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    positions, tuple_out = as_tuple_positions(argnums)
    check_chunk(chunk)

    def jac(*args):
        check_positions(positions, len(args))
        check_float_args(args, positions)
        args = tuple(as_array(a) if i in positions else a for i, a in enumerate(args))
        check_complex("jacfwd", holomorphic, [args[p] for p in positions], real_inputs=True)
        blocks = [_jac_one(fn, args, p, chunk) for p in positions]
        return tuple(blocks) if tuple_out else blocks[0]

    return jac


def _jac_one(fn, args, pos, chunk):
    x = args[pos]
    in_shape = shape_of(x)
    n = int(np.prod(in_shape, dtype=np.int64))
    k = chunk or pick_chunk(n, max(DEFAULT_CHUNK_THRESHOLD, min(n, 1024)),
                            bytes_per_direction=max(1, n) * 8 * 16)
    pieces, out_primal = [], None
    for start in range(0, max(n, 1), k):
        stop = min(start + k, n)
        seeds = identity_rows(x, start, stop)
        out_primal, t = jvp_flat(at_positions(fn, args, (pos,)), (x,), (seeds,),
                                 lead_shape=(stop - start,))
        pieces.append(t)
    return assemble(pieces, out_primal, in_shape)


def assemble(pieces, out_primal, in_shape):
    """Stack chunks of tangents (k, *out) into ``out.shape + in.shape``."""
    def one(*chunks):
        full = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)
        out_nd = full.ndim - 1
        moved = np.moveaxis(full, 0, -1)
        return moved.reshape(shape_of(moved)[:out_nd] + tuple(in_shape))

    return tree_map(one, *pieces)
