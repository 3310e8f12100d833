"""Pytrees: nested tuples, lists and dicts of leaves (arrays, floats, tracers)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TreeDef:
    """The structure of a pytree, to rebuild it from a flat list of leaves."""

    __slots__ = ("kind", "children", "keys")

    def __init__(self, kind, children=(), keys=None):
        self.kind = kind          # "leaf", tuple, list, dict or a namedtuple class
        self.children = children
        self.keys = keys

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __eq__(self, other) -> bool:
        return (isinstance(other, TreeDef) and self.kind == other.kind
                and self.keys == other.keys and self.children == other.children)

    def __hash__(self) -> int:
        return hash((str(self.kind), self.keys, tuple(self.children)))

    def __repr__(self) -> str:
        if self.kind == "leaf":
            return "*"
        return f"{getattr(self.kind, '__name__', self.kind)}{list(self.children)}"


LEAF = TreeDef("leaf")


# The treedef of a flat tuple of n leaves (the arguments of most calls), one
# object per n: flattening and rebuilding one skips the recursive walk.
_FLAT_TUPLES: dict = {}
_CONTAINERS = (tuple, list, dict)


def tree_flatten(tree: Any) -> tuple[list, TreeDef]:
    """Flatten a pytree into (leaves, treedef). Dict keys are visited sorted."""
    if type(tree) is tuple:
        for c in tree:
            if isinstance(c, _CONTAINERS):
                break
        else:
            td = _FLAT_TUPLES.get(len(tree))
            if td is None:
                td = _FLAT_TUPLES[len(tree)] = TreeDef(tuple, (LEAF,) * len(tree))
            return list(tree), td
    leaves: list = []
    return leaves, _walk(tree, leaves)


def _walk(node, leaves: list) -> TreeDef:
    # A module-level recursion, not a closure: a recursive closure is a
    # reference cycle that would keep the leaves (and a whole tape) alive
    # until the cyclic garbage collector runs.
    if isinstance(node, (tuple, list)):
        if isinstance(node, tuple):
            kind = type(node) if hasattr(node, "_fields") else tuple
        else:
            kind = list
        return TreeDef(kind, tuple(_walk(c, leaves) for c in node))
    if isinstance(node, dict):
        keys = tuple(sorted(node))
        return TreeDef(dict, tuple(_walk(node[k], leaves) for k in keys), keys)
    leaves.append(node)
    return LEAF


def tree_unflatten(treedef: TreeDef, leaves) -> Any:
    """Inverse of :func:`tree_flatten`."""
    if (treedef.kind is tuple and type(leaves) is list and len(leaves) == len(treedef.children)
            and _FLAT_TUPLES.get(len(leaves)) is treedef):
        return tuple(leaves)
    return _build(treedef, iter(leaves))


def _build(td: TreeDef, it):
    if td.kind == "leaf":
        return next(it)
    children = [_build(c, it) for c in td.children]
    if td.kind is dict:
        return dict(zip(td.keys, children))
    if td.kind is list:
        return children
    if td.kind is tuple:
        return tuple(children)
    return td.kind(*children)     # namedtuple


def tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` leafwise over one or more pytrees of the same structure."""
    leaves, td = tree_flatten(tree)
    others = []
    for r in rest:
        rl, rtd = tree_flatten(r)
        if rtd != td:
            raise ValueError(f"pytree structures differ: {td} vs {rtd}")
        others.append(rl)
    return tree_unflatten(td, [fn(*xs) for xs in zip(leaves, *others)])


def tree_leaves(tree: Any) -> list:
    return tree_flatten(tree)[0]
