"""Reverse-mode transforms: vjp, grad, value_and_grad, jacrev."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.args import (
    as_array,
    as_tuple_positions,
    check_chunk,
    check_float_args,
    check_positions,
    identity_rows,
    materialize,
    zeros_like,
)
from dualad.core.backend import check_differentiable, namespace_of, peel
from dualad.core.registry import shape_of
from dualad.core.tree import tree_flatten, tree_leaves, tree_unflatten
from dualad.forward.api import pick_chunk
from dualad.reverse.tape import trace_vjp


def _result(x):
    if hasattr(x, "_level") or not isinstance(x, (float, int, np.generic)):
        return x
    return np.asarray(x)


def vjp(fn: Callable, *primals, has_aux: bool = False):
    """Vector-Jacobian product: ``(fn(*primals), vjp_fn)``; ``vjp_fn(ct)``
    returns one cotangent per primal. ``vjp_fn`` may be called many times, and
    with a batch of cotangents (a leading axis).

    >>> import numpy as np, dualad as da
    >>> y, pull = da.vjp(lambda x: x * x, np.array([1.0, 3.0]))
    >>> pull(np.ones(2))[0]
    array([2., 6.])
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
    out_value = tree_unflatten(out_td, [_result(o) for o in out])

    def vjp_fn(cotangent):
        ct_leaves, ct_td = tree_flatten(cotangent)
        if ct_td != out_td and not (out_td.num_leaves == 1 and len(ct_leaves) == 1):
            raise ValueError(f"cotangent structure {ct_td} does not match the output {out_td}")
        lead = ()
        for o, c in zip(out, ct_leaves):
            cs, os_ = shape_of(c), shape_of(o)
            if cs != os_ and cs[1:] != os_:
                raise ValueError(f"cotangent shape {cs} does not match the output shape {os_}")
            lead = cs[:len(cs) - len(os_)]
        cts = pullback([_cast(c, o) for c, o in zip(ct_leaves, out)])
        grads = [_result(materialize(c, p, lead)) for c, p in zip(cts, flat_in)]
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
    if hasattr(ct, "_level"):
        return ct
    pv = peel(like)
    dtype = getattr(pv, "dtype", np.dtype(np.float64))
    return namespace_of(pv).asarray(ct, dtype=dtype if dtype.kind in "fc" else None)


def _split_aux(res):
    if not isinstance(res, tuple) or len(res) < 1:
        raise TypeError(
            "has_aux=True requires fn to return a tuple (output, aux, ...); "
            f"it returned {type(res).__name__}")
    return res[0], tuple(_strip_all(a) for a in res[1:])


def _strip_all(x):
    return _map_leaves(lambda v: _result(peel(v)) if hasattr(v, "_level") else v, x)


def _ones_like(x):
    """The output sensitivity: ones of ``x``'s shape and float dtype."""
    v = peel(x)
    if type(v) is np.float64 or type(v) is np.float32:
        return v.dtype.type(1.0)        # scalar output: no array allocation
    xp = namespace_of(v)
    dtype = getattr(v, "dtype", np.dtype(np.float64))
    return xp.ones(shape_of(x), dtype=dtype if dtype.kind in "fc" else np.float64)


# ============================================================================
# grad and value_and_grad (MindSpore-style return structures)
# ============================================================================
def value_and_grad(fn: Callable, grad_position=0, weights=None, has_aux: bool = False,
                   *, argnums=None) -> Callable:
    """A function returning ``(value, grads)``; see :func:`grad` for ``grads``.

    >>> import numpy as np, dualad as da
    >>> v, g = da.value_and_grad(lambda x: (x ** 2).sum())(np.array([1.0, 2.0]))
    >>> float(v), g
    (5.0, array([2., 4.]))
    """
    if argnums is not None:
        grad_position = argnums
    if grad_position is None and weights is None:
        raise ValueError("grad_position and weights cannot both be None: "
                         "nothing to differentiate with respect to")
    if grad_position is not None:
        positions, tuple_pos = as_tuple_positions(grad_position)
    else:
        positions, tuple_pos = (), False
    params = _weights_list(weights)

    def wrapper(*args):
        check_positions(positions, len(args))
        diff_args = []
        for p in positions:
            arg = args[p]
            if isinstance(arg, (tuple, list, dict)):
                for leaf in tree_leaves(arg):
                    check_differentiable(leaf, f"argument {p} (grad_position={p})")
                diff_args.append(_map_leaves(as_array, arg))
            else:                       # the common case: one array or float
                check_differentiable(arg, f"argument {p} (grad_position={p})")
                diff_args.append(as_array(arg))
        # The current value: a traced one when an enclosing grad is already
        # differentiating this Parameter (nested weights grads).
        diff_w = [pr._current() for pr in params]
        aux_box = []
        n_pos = len(positions)

        def inner(*diff):
            call = list(args)
            for p, d in zip(positions, diff[:n_pos]):
                call[p] = d
            if params:
                with _bind_weights(params, diff[n_pos:]):
                    res = fn(*call)
            else:
                res = fn(*call)
            if has_aux:
                res, aux = _split_aux(res)
                aux_box.append(aux)
            return res

        flat_in, in_td = tree_flatten(tuple(diff_args) + tuple(diff_w))
        flat_tree = all(c.kind == "leaf" for c in in_td.children)
        traced = inner if flat_tree else (lambda *lv: inner(*tree_unflatten(in_td, lv)))
        out, out_td, pullback = trace_vjp(traced, flat_in)
        cts = pullback([_ones_like(o) for o in out], retain_graph=False)
        grads = tree_unflatten(in_td, [_result(materialize(c, p)) for c, p in zip(cts, flat_in)])
        grads_in = grads[:len(positions)]
        grads_w = tuple(g if pr.requires_grad else zeros_like(g)
                        for g, pr in zip(grads[len(positions):], params))
        if grad_position is None:
            result = grads_w
        else:
            gi = tuple(grads_in) if tuple_pos else grads_in[0]
            result = gi if weights is None else (gi, grads_w)
        value = tree_unflatten(out_td, [_result(o) for o in out])
        if has_aux:
            return (value,) + aux_box[0], result
        return value, result

    return wrapper


def grad(fn: Callable, grad_position=0, weights=None, has_aux: bool = False,
         *, argnums=None) -> Callable:
    """Gradient of ``fn`` (non-scalar outputs are summed; a tuple output is the
    sum of its outputs unless ``has_aux``).

    ===============  =========  =========================================
    grad_position    weights    returns
    ===============  =========  =========================================
    0                None       gradient of the first input
    (0, 1)           None       (grad_in0, grad_in1)
    None             weights    (grad_w0, grad_w1, ...)
    0                weights    (grad_in0, (grad_w0, ...))
    ===============  =========  =========================================

    With ``has_aux=True`` it returns ``(grads, aux)`` with ``aux`` a tuple.

    >>> import numpy as np, dualad as da
    >>> float(da.grad(np.sin)(0.0))
    1.0
    """
    vg = value_and_grad(fn, grad_position, weights, has_aux, argnums=argnums)

    def wrapper(*args):
        value, grads = vg(*args)
        if has_aux:
            return grads, value[1:]
        return grads

    return wrapper


def _weights_list(weights) -> list:
    if weights is None:
        return []
    from dualad.compat.nn import Parameter
    if isinstance(weights, Parameter):
        return [weights]
    ws = list(weights)
    for w in ws:
        if not isinstance(w, Parameter):
            raise TypeError(f"weights must be Parameters (got {type(w).__name__}); "
                            "pass module.trainable_params() or a list of da.Parameter")
    return ws


class _bind_weights:
    """Point each Parameter at its traced value for the duration of a call."""

    def __init__(self, params, values):
        self.params, self.values = params, values

    def __enter__(self):
        self.saved = [p._push(v) for p, v in zip(self.params, self.values)]

    def __exit__(self, *exc):
        for p in reversed(self.params):
            p._pop()
        return False


# ============================================================================
# jacrev: one batched backward pass per chunk of output rows
# ============================================================================
def jacrev(fn: Callable, argnums=0, *, chunk: int | None = None) -> Callable:
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

        def inner(*d):
            call = list(args)
            for p, v in zip(positions, d):
                call[p] = v
            return fn(*call)

        out, out_td, pullback = trace_vjp(inner, diff)
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
                rows[i].append(materialize(c, x, (stop - start,)))
        res = []
        for i, x in enumerate(diff):
            full = rows[i][0] if len(rows[i]) == 1 else np.concatenate(rows[i], axis=0)
            res.append(_result(full.reshape(shape_of(o) + shape_of(x))))
        return tuple(res) if tuple_out else res[0]

    return jac
