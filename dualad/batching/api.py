"""``vmap``: map a function over an axis of its arguments, JAX's semantics.

>>> import numpy as np, dualad as da
>>> f = lambda x: np.sin(x) @ x
>>> xs = np.arange(6.0).reshape(3, 2)
>>> np.allclose(da.vmap(f)(xs), [f(x) for x in xs])
True
>>> da.vmap(da.grad(f))(xs).shape
(3, 2)
>>> da.vmap(lambda x, w: x * w, in_axes=(1, None), out_axes=0)(xs, 2.0).shape
(2, 3)
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from dualad.batching.interpreter import BatchLevel, BatchTracer, to_front
from dualad.core.levels import new_level
from dualad.core.registry import shape_of
from dualad.core.tree import tree_flatten, tree_unflatten


def _axes_for(prefix, tree, what: str) -> list:
    """One axis (or None) per leaf of ``tree``, from a prefix tree ``prefix``
    (an int or None applies to a whole subtree), as JAX's in_axes/out_axes."""
    if prefix is None or isinstance(prefix, (int, np.integer)):
        if isinstance(prefix, bool):
            raise TypeError(f"vmap {what} must be ints or None, got {prefix!r}")
        return [prefix] * len(tree_flatten(tree)[0])
    if isinstance(prefix, dict) and isinstance(tree, dict):
        if sorted(prefix) != sorted(tree):
            raise ValueError(f"vmap {what}: dict keys {sorted(prefix)} do not match "
                             f"the value's keys {sorted(tree)}")
        return [a for k in sorted(tree) for a in _axes_for(prefix[k], tree[k], what)]
    if isinstance(prefix, (tuple, list)) and isinstance(tree, (tuple, list)) \
            and type(prefix) is type(tree) or (type(prefix) is tuple and hasattr(tree, "_fields")):
        if len(prefix) != len(tree):
            raise ValueError(f"vmap {what} has {len(prefix)} entries but the value has "
                             f"{len(tree)} ({what} must be a prefix tree of it)")
        return [a for p, t in zip(prefix, tree) for a in _axes_for(p, t, what)]
    raise ValueError(f"vmap {what} specification {prefix!r} is not a prefix of the value's "
                     f"structure {tree_flatten(tree)[1]!r}; use an int, None, or a "
                     "tuple/list/dict matching it")


def _normalize(axis: int, nd: int, what: str) -> int:
    if not -nd <= axis < nd:
        raise ValueError(f"vmap {what}: axis {axis} is out of bounds for a value with "
                         f"{nd} dimension(s)")
    return axis % nd


def vmap(fn: Callable, in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None) -> Callable:
    """``fn`` mapped over an axis of its arguments (``jax.vmap`` semantics).

    ``in_axes``: an int (the mapped axis of every argument; negative counts
    from the end), ``None`` (not mapped: broadcast to every example), or a
    tuple with one entry per positional argument, each itself an int, None or
    a prefix tree (tuple/list/dict) of that argument. ``out_axes`` likewise
    for the result: where the batch axis goes (``None``: the output must not
    depend on the batch). ``axis_size`` is required when no argument is
    mapped. Keyword arguments are mapped over axis 0.

    Composes with every transform in both orders: ``vmap(grad(f))``,
    ``grad(lambda x: vmap(f)(x).sum())``, ``vmap(hessian(f))``,
    ``jvp(vmap(f), ...)``, ``vmap(vmap(f))``. Each primitive runs once on the
    whole batch through its batching rule; primitives without one (see
    ``dualad.batching.rules``) run once per example.
    """
    if isinstance(in_axes, list) and not isinstance(in_axes, tuple):
        in_axes = tuple(in_axes)

    @functools.wraps(fn)
    def mapped(*args, **kwargs):
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(
                f"vmap in_axes has {len(in_axes)} entries but {getattr(fn, '__name__', 'fn')} "
                f"was called with {len(args)} positional argument(s); give one entry per argument")
        leaves, tree = tree_flatten((args, kwargs))
        axes = _axes_for((in_axes, {k: 0 for k in kwargs}), (args, kwargs), "in_axes")
        sizes = []
        for i, (leaf, ax) in enumerate(zip(leaves, axes)):
            if ax is None:
                continue
            shape = shape_of(leaf)
            ax = axes[i] = _normalize(ax, len(shape), "in_axes") if shape else _scalar(ax)
            sizes.append((shape[ax], ax, shape, i))
        size = _batch_size(sizes, axis_size)
        with new_level(BatchLevel(size)) as level:
            ins = [leaf if ax is None else BatchTracer(_as_array(leaf), ax, level)
                   for leaf, ax in zip(leaves, axes)]
            a, k = tree_unflatten(tree, ins)
            out = fn(*a, **k)
            out_leaves, out_tree = tree_flatten(out)
            oaxes = _axes_for(out_axes, out, "out_axes")
            res = [_unbatch(o, ax, level) for o, ax in zip(out_leaves, oaxes)]
        return tree_unflatten(out_tree, res)
    return mapped


def _scalar(ax):
    raise ValueError(f"vmap in_axes: axis {ax} given for a scalar argument "
                     "(a 0-d value has no axis to map; use None)")


def _as_array(leaf):
    return leaf if hasattr(leaf, "shape") else np.asarray(leaf)


def _batch_size(sizes: list, axis_size: int | None) -> int:
    if not sizes:
        if axis_size is None:
            raise ValueError("vmap must have at least one non-None value in in_axes "
                             "(or be given axis_size=)")
        return int(axis_size)
    found = {s for s, *_ in sizes}
    if axis_size is not None:
        found.add(int(axis_size))
    if len(found) > 1:
        lines = "\n".join(f"  * argument leaf {i} of shape {shape} has size {s} along axis {ax}"
                          for s, ax, shape, i in sizes)
        extra = f"\n  * axis_size={axis_size}" if axis_size is not None else ""
        raise ValueError("vmap got inconsistent sizes for array axes to be mapped:\n"
                         + lines + extra)
    return found.pop()


def _unbatch(o, ax, level):
    """An output leaf with its batch axis at ``ax`` (broadcast if unbatched)."""
    batched = getattr(o, "_level", None) is level
    if ax is None:
        if batched:
            raise ValueError("vmap has a mapped output but out_axes is None for it: the "
                             "output depends on the mapped inputs")
        return o
    if batched:
        v = to_front(o.primal, o.bdim)
    else:
        o = _as_array(o)
        v = np.broadcast_to(o, (level.size,) + shape_of(o))
        if not hasattr(v, "_level"):
            v = np.ascontiguousarray(v)
    nd = len(shape_of(v))
    ax = _normalize(ax, nd, "out_axes")
    return v if ax == 0 else np.moveaxis(v, 0, ax)
