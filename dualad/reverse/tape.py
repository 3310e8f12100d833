"""The reverse tape: nodes recorded per primitive call, and the backward pass.

There is no global tape object: each :class:`Var` points at the
:class:`Node` that made it and each node at its parents, so the graph is
exactly what is reachable from the outputs (one per thread by construction,
and freed with them). The backward pass is an iterative topological sweep
(no recursion limit) with symbolic zero cotangents; a node's saved values
are dropped as soon as it has been processed unless ``retain_graph``.

Example::

    >>> import numpy as np
    >>> from dualad.reverse.tape import trace_vjp
    >>> out, treedef, pull = trace_vjp(lambda x: np.sin(x) * 2.0, [0.0])
    >>> float(pull(1.0)[0])
    2.0
"""
from __future__ import annotations

from dualad.core.args import check_outputs
from dualad.core.dispatch import Tracer, clone
from dualad.core.levels import Level, level_of, lower_to, new_level
from dualad.core.registry import eval_with_partials, shape_of
from dualad.core.tree import tree_flatten
from dualad.core.zero import Zero, add_any, safe_mul


class GraphFreedError(RuntimeError):
    pass


class Node:
    """One recorded primitive call (``prim is None`` for a leaf)."""

    __slots__ = ("prim", "params", "primals", "out", "parents", "args", "partials",
                 "needs", "__weakref__")

    def __init__(self, prim, params, primals, out, parents, args=None, needs=None):
        self.needs = tuple(p is not None for p in parents) if needs is None else needs
        self.prim = prim
        self.params = params
        self.primals = primals  # argument values one level down
        self.out = out          # primal output value(s), one level down
        self.parents = parents  # per argument: (Node, output index) or None
        self.args = args        # the arguments themselves, kept only where a
                                # create_graph backward may need to re-record
        self.partials = None    # partials saved by a fused kernel, if one ran


def leaf_node() -> Node:
    return Node(None, None, (), None, ())


class Var(Tracer):
    """A value recorded on the tape of its level."""

    __slots__ = ("primal", "_level", "node", "index")

    def __init__(self, primal, level, node, index=0):
        self.primal = primal
        self._level = level
        self.node = node
        self.index = index

    def __repr__(self) -> str:
        return f"Var({self.primal!r})"


class TapeLevel(Level):
    """The reverse-mode interpreter: run each primitive one level down and
    record a node. ``keep_args``: nodes keep their traced arguments (a
    ``create_graph`` backward re-records through them); ``var_type``: the
    tracer class of recorded values (``Var``, or the tape ``Tensor``)."""

    __slots__ = ("keep_args", "var_type")
    kind = "rev"

    def __init__(self, keep_args: bool = False, var_type: type | None = None):
        super().__init__()
        self.keep_args = keep_args
        self.var_type = Var if var_type is None else var_type

    def process(self, prim, args, params):
        return record(self, prim, args, params)


def record(level: TapeLevel, prim, args, params):
    """Run ``prim`` one level down and record a node on ``level``'s tape."""
    var_type = level.var_type
    primals, parents, needs = [], [], []
    for a in args:
        if getattr(a, "_level", None) is level:
            primals.append(a.primal)
            node = a.node
            if node is not None:
                parents.append((node, a.index))
                needs.append(True)
                continue
        else:
            primals.append(a)
        parents.append(None)
        needs.append(False)
    parents, needs = tuple(parents), tuple(needs)
    keep_args = level.keep_args
    out, parts = eval_with_partials(prim, primals, params)
    if parts is not None and not keep_args:   # one kernel pass: keep the partial
        node = Node(prim, params, primals, out, parents, None, needs)
        node.partials = parts[0]
        return var_type(out, level, node, 0)
    if keep_args:
        # Snapshots: a later in-place update (x[i] = v) rebinds the tracer
        # object, and the re-recorded backward must see the value used here.
        args = tuple(clone(a) if getattr(a, "_level", None) is level else a for a in args)
    node = Node(prim, params, primals, out, parents, args if keep_args else None, needs)
    if prim.n_outputs == 1:
        return var_type(out, level, node, 0)
    return tuple(var_type(o, level, node, i) for i, o in enumerate(out))


def toposort(roots: list) -> list:
    """Nodes reachable from ``roots``, every node after all its parents."""
    order, seen = [], set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root.parents))]
        while stack:
            node, parents = stack[-1]
            for p in parents:
                if p is not None and id(p[0]) not in seen:
                    seen.add(id(p[0]))
                    stack.append((p[0], iter(p[0].parents)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def backward(roots, *, retain_graph: bool = True, graph_level=None, wanted=None) -> dict:
    """Propagate cotangents from ``roots`` = [(Node, index, cotangent)].

    ``graph_level``: when set (``create_graph``), the rules run on the
    recorded tracers of that level so the gradients are themselves recorded.
    Returns ``{leaf_node: cotangent}`` for the leaves reached (or in ``wanted``);
    a non-leaf node in ``wanted`` maps to its output cotangent (a tuple for a
    multi-output node).
    """
    cts: dict = {}            # node -> cotangent (a list of them for multi-output nodes)
    for node, index, ct in roots:
        _accumulate(cts, node, index, ct)
    results = {}
    for node in reversed(toposort([r[0] for r in roots])):
        ct_out = cts.pop(node, Zero)
        prim = node.prim
        if prim is None:
            if ct_out is not Zero and (wanted is None or node in wanted):
                results[node] = ct_out
            continue
        if ct_out is Zero:
            continue
        if prim.n_outputs > 1:
            if all(c is Zero for c in ct_out):
                continue
            ct_out = tuple(ct_out)
        if wanted is not None and node in wanted:
            results[node] = ct_out      # a non-leaf input of autograd.grad
        if node.primals is None:
            raise GraphFreedError(
                "Trying to backward through the graph a second time, but its saved values "
                "were freed after the first backward. Pass retain_graph=True to the first "
                "backward() (or autograd.grad) if you need to backward twice.")
        if graph_level is not None:
            primals = list(node.args)
            make = graph_level.var_type
            out = (make(node.out, graph_level, node, 0) if prim.n_outputs == 1 else
                   tuple(make(o, graph_level, node, i) for i, o in enumerate(node.out)))
            in_cts = prim.vjp(ct_out, primals, out, node.needs, **node.params)
        elif node.partials is not None:     # saved by a fused kernel
            in_cts = (safe_mul(node.partials, ct_out, prim.singular),)
        else:
            in_cts = prim.vjp(ct_out, node.primals, node.out, node.needs, **node.params)
        for parent, ct in zip(node.parents, in_cts):
            if parent is not None and ct is not Zero:
                _accumulate(cts, parent[0], parent[1], ct)
        if not retain_graph:
            node.primals = node.out = node.args = node.partials = None
    return results


def _accumulate(cts: dict, node, index: int, ct) -> None:
    if node.prim is None or node.prim.n_outputs == 1:
        prev = cts.get(node, Zero)
        cts[node] = ct if prev is Zero else prev + ct
    else:
        slot = cts.get(node)
        if slot is None:
            slot = cts[node] = [Zero] * node.prim.n_outputs
        slot[index] = add_any(slot[index], ct)


def trace_vjp(fn, primals: list, check_out: bool = True):
    """Run ``fn(*primals)`` on fresh Vars; return ``(out, pullback)`` where
    ``out`` is the raw output (a leaf or a pytree of Vars/constants, one level
    down unwrapped by the caller) and ``pullback(ct)`` the input cotangents
    (``Zero`` where unused). Used by every reverse transform; ``check_out``
    refuses non-float outputs (internal callers may return None leaves)."""
    with new_level(TapeLevel()) as level:
        leaves = [leaf_node() for _ in primals]
        inputs = [Var(p, level, n) for p, n in zip(primals, leaves)]
        out = fn(*inputs)
        if check_out:
            check_outputs(out)
    flat, treedef = tree_flatten(out)
    flat = [lower_to(o, level) for o in flat]
    out_primal = [o.primal if level_of(o) is level else o for o in flat]

    def pullback(cts, retain_graph: bool = True):
        ct_leaves = cts if isinstance(cts, list) else [cts]
        roots = []
        for o, ct in zip(flat, ct_leaves):
            if level_of(o) is level and o.node is not None and ct is not Zero:
                _check_ct_shape(ct, o.primal)
                roots.append((o.node, o.index, ct))
        got = backward(roots, retain_graph=retain_graph) if roots else {}
        return [got.get(n, Zero) for n in leaves]

    return out_primal, treedef, pullback


def _check_ct_shape(ct, primal) -> None:
    cs, ps = shape_of(ct), shape_of(primal)
    if cs != ps and cs[1:] != ps:
        raise ValueError(f"cotangent shape {cs} does not match the output shape {ps} "
                         f"(or (k,) + {ps} for a batch of k cotangents)")
