"""Reverse-mode transforms: vjp, grad, value_and_grad, jacrev."""
from __future__ import annotations

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
    check_positions,
    identity_rows,
    materialize,
    real_part_for,
)
from dualad.core.backend import (
    check_differentiable,
    dtype_of,
    is_real_float_value,
    namespace_of,
    peel_keep_batch,
    value_type,
)
from dualad.core.levels import is_traced
from dualad.core.registry import shape_of
from dualad.core.tree import tree_flatten, tree_leaves, tree_unflatten
from dualad.forward.api import pick_chunk
from dualad.reverse.tape import trace_vjp


def vjp(fn: Callable, *primals, has_aux: bool = False):
    """Vector-Jacobian product: ``(fn(*primals), vjp_fn)``; ``vjp_fn(ct)``
    returns one cotangent per primal. ``vjp_fn`` may be called many times;
    ``vjp_fn(ct, batched=True)`` takes a batch of k cotangents, each leaf
    shaped ``(k,) + out.shape``, and returns cotangents with that leading k
    axis (one backward pass). Without the flag a cotangent must have exactly
    its output's shape.

    >>> import numpy as np, dualad as da
    >>> y, pull = da.vjp(lambda x: x * x, np.array([1.0, 3.0]))
    >>> pull(np.ones(2))[0]
    array([2., 6.])
    >>> pull(np.eye(2), batched=True)[0]
    array([[2., 0.],
           [0., 6.]])
    """
    check_float_args(primals, range(len(primals)))
    primals = tuple(_prep(p) for p in primals)
    flat_in, in_td = tree_flatten(primals)
    aux_box = []

    def flat_fn(*leaves):
        res = fn(*tree_unflatten(in_td, leaves))
        if has_aux:
            res, aux = _split_aux(res)
            aux_box.append(aux)
        return res

    out, out_td, pullback = trace_vjp(flat_fn, flat_in)
    out_value = tree_unflatten(out_td, [as_result(o) for o in out])

    def vjp_fn(cotangent, *, batched: bool = False):
        ct_leaves, ct_td = tree_flatten(cotangent)
        if ct_td != out_td and not (out_td.num_leaves == 1 and len(ct_leaves) == 1):
            raise ValueError(f"cotangent structure {ct_td} does not match the output {out_td}")
        lead = ()
        if batched:
            lead = batch_lead(out, ct_leaves, "cotangent", "vjp_fn(ct, batched=True)")
        for o, c in zip(out, ct_leaves):
            cs, os_ = shape_of(c), shape_of(o)
            if cs != os_ and not batched:
                hint = ("; for a batch of cotangents with a leading axis, call "
                        "vjp_fn(ct, batched=True)") if cs[1:] == os_ else ""
                raise ValueError(f"cotangent shape {cs} does not match the output shape "
                                 f"{os_}{hint}")
        cts = pullback([_cast(c, o) for c, o in zip(ct_leaves, out)])
        grads = [as_result(real_part_for(materialize(c, p, lead), p))
                 for c, p in zip(cts, flat_in)]
        return tuple(tree_unflatten(in_td, grads))

    if has_aux:
        return out_value, vjp_fn, aux_box[0]
    return out_value, vjp_fn


def _prep(p):
    return _map_leaves(as_array, p)


def _map_leaves(f, tree):
    leaves, td = tree_flatten(tree)
    return tree_unflatten(td, [f(x) for x in leaves])


def _cast(ct, like):
    if is_traced(ct):
        return ct
    dtype = dtype_of(like)
    return namespace_of(like).asarray(ct, dtype=dtype if dtype.kind in "fc" else None)


def _split_aux(res):
    if not isinstance(res, tuple) or len(res) < 1:
        raise TypeError(
            "has_aux=True requires fn to return a tuple (output, aux, ...); "
            f"it returned {type(res).__name__}")
    return res[0], tuple(_strip_all(a) for a in res[1:])


def _collect_aux(f: Callable, box: list) -> Callable:
    """``f`` returning only its output; its aux values go into ``box``."""
    def main(*args):
        res, aux = _split_aux(f(*args))
        box.append(aux)
        return res
    return main


def _strip_all(x):
    return _map_leaves(lambda v: as_result(peel_keep_batch(v)) if is_traced(v) else v, x)


def _all_numbers(tree) -> bool:
    leaves = tree_leaves(tree)
    return bool(leaves) and all(isinstance(v, (int, float, np.number)) for v in leaves)


def _all_real_float(out: list) -> bool:
    """Every output a real float (the common case, decided from one look at
    each innermost value: no read of a traced value)."""
    for o in out:
        if not is_real_float_value(o):
            return False
    return True


def _ones_like(x):
    """The output sensitivity: ones of ``x``'s shape and float dtype."""
    t = value_type(x)
    if t is np.float64 or t is np.float32:
        return t(1.0)                   # scalar output: no array allocation
    dtype = dtype_of(x)
    return namespace_of(x).ones(shape_of(x), dtype=dtype if dtype.kind in "fc" else np.float64)


# ============================================================================
# grad and value_and_grad (MindSpore-style return structures)
# ============================================================================
def value_and_grad(fn: Callable, argnums=0, has_aux: bool = False, *,
                   holomorphic: bool = False) -> Callable:
    """A function returning ``(value, grads)``; see :func:`grad` for ``grads``
    and ``holomorphic``. (Positions only: ``dualad.value_and_grad`` adds
    MindSpore's ``weights=``, see :mod:`dualad.compat.weights`.)

    >>> import numpy as np
    >>> v, g = value_and_grad(lambda x: (x ** 2).sum())(np.array([1.0, 2.0]))
    >>> float(v), g
    (5.0, array([2., 4.]))
    """
    positions, tuple_pos = as_tuple_positions(argnums)

    def wrapper(*args):
        check_positions(positions, len(args))
        diff_args = []
        for p in positions:
            arg = args[p]
            if isinstance(arg, (tuple, list)) and _all_numbers(arg):
                arg = as_array(arg)         # a nested list of numbers: one array, as hessian
            if isinstance(arg, (tuple, list, dict)):
                for leaf in tree_leaves(arg):
                    check_differentiable(leaf, f"argument {p} (grad_position={p})")
                diff_args.append(_map_leaves(as_array, arg))
            else:                       # the common case: one array or float
                check_differentiable(arg, f"argument {p} (grad_position={p})")
                diff_args.append(as_array(arg))
        aux_box: list = []               # per call: wrappers may run in several threads
        inner = at_positions(fn, args, positions)
        if has_aux:
            inner = _collect_aux(inner, aux_box)

        flat_in, in_td = tree_flatten(tuple(diff_args))
        flat_tree = all(c.kind == "leaf" for c in in_td.children)
        traced = inner if flat_tree else (lambda *lv: inner(*tree_unflatten(in_td, lv)))
        out, out_td, pullback = trace_vjp(traced, flat_in)
        if holomorphic or not _all_real_float(out):     # else the complex check passes
            check_complex("grad", holomorphic, flat_in, out)
        cts = pullback([_ones_like(o) for o in out], retain_graph=False)
        grads = tree_unflatten(in_td, [as_result(real_part_for(materialize(c, p), p))
                                       for c, p in zip(cts, flat_in)])
        result = tuple(grads) if tuple_pos else grads[0]
        value = tree_unflatten(out_td, [as_result(o) for o in out])
        if has_aux:
            return (value,) + aux_box.pop(), result
        return value, result

    return wrapper


def grad(fn: Callable, argnums=0, has_aux: bool = False, *,
         holomorphic: bool = False) -> Callable:
    """Gradient of ``fn`` with respect to the arguments at ``argnums``
    (non-scalar outputs are summed; a tuple output is the sum of its outputs
    unless ``has_aux``, which returns ``(grads, aux)`` with ``aux`` a tuple).
    Positions only: ``dualad.grad`` adds MindSpore's ``weights=`` (see
    :mod:`dualad.compat.weights`).

    Complex values follow JAX: for a real-valued ``fn`` of ``z = x + iy`` the
    result is ``df/dx - i df/dy``; a complex-valued ``fn`` raises unless
    ``holomorphic=True`` (then the result is ``f'(z)``; inputs must be complex).

    >>> import numpy as np
    >>> float(grad(np.sin)(0.0))
    1.0
    """
    return grads_of(value_and_grad(fn, argnums, has_aux, holomorphic=holomorphic), has_aux)


def grads_of(vg: Callable, has_aux: bool) -> Callable:
    """``grad`` from a ``value_and_grad`` function: the grads, and with
    ``has_aux`` the aux outputs as a tuple."""
    def wrapper(*args):
        value, grads = vg(*args)
        if has_aux:
            return grads, value[1:]
        return grads

    return wrapper


# ============================================================================
# jacrev: one batched backward pass per chunk of output rows
# ============================================================================
def jacrev(fn: Callable, argnums=0, *, chunk: int | None = None,
           holomorphic: bool = False) -> Callable:
    """Jacobian by reverse mode, ``out.shape + in.shape``: the backward pass
    runs once per chunk of output rows, with a batch of cotangents.

    >>> import numpy as np, dualad as da
    >>> da.jacrev(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    positions, tuple_out = as_tuple_positions(argnums)
    check_chunk(chunk)

    def jac(*args):
        check_positions(positions, len(args))
        check_float_args(args, positions)
        diff = [as_array(args[p]) for p in positions]

        out, out_td, pullback = trace_vjp(at_positions(fn, args, positions), diff)
        check_complex("jacrev", holomorphic, diff, out)
        if out_td.num_leaves != 1:
            raise ValueError("jacrev needs a function with a single array output")
        o = out[0]
        m = int(np.prod(shape_of(o), dtype=np.int64))
        k = chunk or pick_chunk(m, max(64, min(m, 1024)))
        rows = [[] for _ in positions]
        for start in range(0, max(m, 1), k):
            stop = min(start + k, m)
            cts = pullback([identity_rows(o, start, stop)])
            for i, (c, x) in enumerate(zip(cts, diff)):
                rows[i].append(real_part_for(materialize(c, x, (stop - start,)), x))
        res = []
        for i, x in enumerate(diff):
            full = rows[i][0] if len(rows[i]) == 1 else np.concatenate(rows[i], axis=0)
            res.append(as_result(full.reshape(shape_of(o) + shape_of(x))))
        return tuple(res) if tuple_out else res[0]

    return jac
