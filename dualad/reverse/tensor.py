"""PyTorch-style tape tensors: ``tensor(data, requires_grad=True)``,
``y.backward()``, ``x.grad``, and :func:`grad` (exposed as
``dualad.autograd.grad``).

A :class:`Tensor` is a tape :class:`~dualad.reverse.tape.Var` living at a
per-thread level that never closes. Its level keeps ``keep_args`` so that a
``create_graph=True`` backward can re-run the derivative rules on the recorded
tensors themselves (the gradient is then recorded too: higher derivatives).

Nesting: a tensor made while a functional transform (``grad``, ``jvp``, ...)
runs gets its own tensor level *above* that transform's, keyed on the
innermost active level. That keeps ``d/dx [x * d/dy (x + y)]`` right when the
inner derivative is taken with tensors inside ``da.grad``.

Example (the seed article's ``ln(x1) + x1*x2 - sin(x2)`` at (2, 5))::

    >>> import numpy as np, dualad as da
    >>> x1 = da.tensor(2.0, requires_grad=True)
    >>> x2 = da.tensor(5.0, requires_grad=True)
    >>> y = np.log(x1) + x1 * x2 - np.sin(x2)
    >>> y.backward()
    >>> round(y.item(), 3), round(x1.grad.item(), 4), round(x2.grad.item(), 4)
    (11.652, 5.5, 1.7163)
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from dualad.core.backend import namespace_of, peel
from dualad.core.dispatch import _lost
from dualad.core.levels import Level, active_levels, is_traced
from dualad.core.registry import bind, shape_of
from dualad.core.zero import Zero
from dualad.reverse.tape import Node, TapeLevel, Var, backward, record, toposort

# ============================================================================
# levels: one per thread outside transforms, one per innermost active level
# ============================================================================
_local = threading.local()


class TensorLevel(TapeLevel):
    """The tape of PyTorch-style tensors: records only when some input
    requires grad (otherwise just computes: code on plain tensors keeps no
    graph alive); nodes keep their arguments for ``create_graph``."""

    __slots__ = ()
    kind = "tensor"

    def __init__(self):
        super().__init__(keep_args=True, var_type=Tensor)

    def process(self, prim, args, params):
        if is_grad_enabled() and any(
                getattr(a, "_level", None) is self and a.node is not None for a in args):
            return record(self, prim, args, params)
        primals = [a.primal if getattr(a, "_level", None) is self else a for a in args]
        out = bind(prim, *primals, **params)
        if prim.n_outputs == 1:
            return Tensor(out, self, None)
        return tuple(Tensor(o, self, None) for o in out)


_new_level = TensorLevel


def tensor_level() -> Level:
    """The level new tensors of this thread are created at.

    Outside transforms: one persistent level. Inside one: a level keyed
    (weakly) on the innermost active level, created after it and so ordered
    above it; it goes away with that transform's level.
    """
    stack = active_levels()
    if not stack:
        level = getattr(_local, "base", None)
        if level is None:
            level = _local.base = _new_level()
        return level
    table = getattr(_local, "nested", None)
    if table is None:
        table = _local.nested = weakref.WeakKeyDictionary()
    top = stack[-1]
    level = table.get(top)
    if level is None:
        level = table[top] = _new_level()
    return level


@contextmanager
def no_grad() -> Iterator[None]:
    """Within the block, operations on tensors record nothing (as in PyTorch).

    >>> import numpy as np, dualad as da
    >>> x = da.tensor(1.0, requires_grad=True)
    >>> with da.autograd.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """
    old = getattr(_local, "no_grad", False)
    _local.no_grad = True
    try:
        yield
    finally:
        _local.no_grad = old


def is_grad_enabled() -> bool:
    return not getattr(_local, "no_grad", False)





class _LeafNode(Node):
    """The tape node of a leaf tensor that requires grad; holds its ``.grad``."""

    __slots__ = ("grad",)

    def __init__(self):
        super().__init__(None, None, (), None, ())
        self.grad = None


# ============================================================================
# Tensor
# ============================================================================
class Tensor(Var):
    """A value on the tape (see the module docstring). Create with :func:`tensor`.

    ``requires_grad`` is True for leaves asked to (and for results of ops on
    them); ``.grad`` is None until a backward pass reaches the leaf.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, primal, level=None, node=None, index=0, *, requires_grad=False):
        if level is None:                 # public construction: Tensor(data)
            made = tensor(primal, requires_grad=requires_grad)
            primal, level, node = made.primal, made._level, made.node
        super().__init__(primal, level, node, index)

    # -- autograd attributes --------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self.node is not None

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if not self.is_leaf:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf tensors; use "
                "y.detach() to get a tensor that does not require grad")
        if flag and self.node is None:
            _check_float(self.primal)
            self.node = _LeafNode()
        elif not flag:
            self.node = None

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.node is None or self.node.prim is None

    @property
    def grad_fn(self):
        """The recorded node that made this tensor (None for leaves)."""
        return None if self.is_leaf else self.node

    @property
    def grad(self) -> Tensor | None:
        node = self.node
        return node.grad if isinstance(node, _LeafNode) else None

    @grad.setter
    def grad(self, value) -> None:
        if not isinstance(self.node, _LeafNode):
            if value is None:
                return
            raise RuntimeError("only leaf tensors that require grad hold a .grad")
        self.node.grad = None if value is None else _as_tensor(value, self._level)

    @property
    def data(self) -> Tensor:
        return self.detach()

    # -- graph-free views -----------------------------------------------------
    def detach(self) -> Tensor:
        """The same value, cut from the tape (``requires_grad`` False)."""
        return Tensor(self.primal, self._level, None)

    def _value(self, what: str):
        # Outside transforms the primal is a plain array: hand it out (as
        # PyTorch does for .item()/float()). Inside one it is a lower-level
        # tracer, and converting it would drop that derivative.
        v = self.primal
        if is_traced(v):
            raise _lost(what)
        return v

    def numpy(self):
        """The value as a NumPy (or CuPy) array, without the graph."""
        v = self._value(".numpy()")
        return np.asarray(v) if isinstance(v, (float, int, np.generic)) else v

    def item(self, *args):
        v = self._value(".item()")
        return v.item(*args) if hasattr(v, "item") else v

    def tolist(self):
        v = self._value(".tolist()")
        return v.tolist() if hasattr(v, "tolist") else v

    def __float__(self) -> float:
        return float(self._value("float()"))

    def __int__(self) -> int:
        return int(self._value("int()"))

    def __array__(self, dtype=None, copy=None):
        # np.asarray(t) / np.array([t1, t2]) would silently drop the graph of
        # a tensor that requires grad: refuse that, as for every tracer.
        if self.requires_grad:
            raise TypeError("np.asarray() on a tensor that requires grad would drop its "
                            "derivative; use t.detach().numpy() (or keep using NumPy "
                            "functions on it, e.g. np.stack instead of np.array([...]))")
        value = np.asarray(self._value("np.asarray()"))
        return value if dtype is None else value.astype(dtype, copy=False)

    def zero_(self) -> Tensor:
        """Set the value to zeros in place (e.g. ``x.grad.zero_()``)."""
        if self.requires_grad:
            raise RuntimeError("a tensor that requires grad cannot be modified in place; "
                               "zero its .grad (x.grad.zero_() or x.grad = None) instead")
        v = peel(self.primal)
        self.primal = namespace_of(v).zeros(shape_of(v), dtype=getattr(v, "dtype", None))
        return self

    def __repr__(self) -> str:
        value = self.primal if is_traced(self.primal) else peel(self.primal)
        body = np.array2string(np.asarray(value), separator=", ") if isinstance(
            value, (np.ndarray, np.generic, float, int)) else repr(value)
        if self.is_leaf and self.requires_grad:
            return f"tensor({body}, requires_grad=True)"
        if not self.is_leaf:
            return f"tensor({body}, grad_fn=<{self.node.prim.name}>)"
        return f"tensor({body})"

    # -- backward -------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
        """Accumulate ``d self / d leaf`` (times ``gradient``) into ``leaf.grad``
        for every leaf reached (or only those in ``inputs``).

        >>> import numpy as np, dualad as da
        >>> x = da.tensor([1.0, 2.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        tensor([2., 4.])
        """
        backward_all([self], [gradient], retain_graph, create_graph, inputs)


def _check_float(value) -> None:
    dtype = getattr(peel(value), "dtype", None)
    kind = dtype.kind if dtype is not None else ("f" if isinstance(peel(value), float) else "i")
    if kind not in "fc":
        raise TypeError(f"only floating-point tensors can require gradients (got dtype "
                        f"{dtype or type(peel(value)).__name__}); create it with "
                        "dtype=float, e.g. da.tensor(data, dtype=float, requires_grad=True)")


def tensor(data: Any, requires_grad: bool = False, dtype=None) -> Tensor:
    """A tape tensor holding a copy of ``data``.

    ``requires_grad=True`` makes it a leaf whose ``.grad`` backward fills;
    integer data cannot require grad (``TypeError``).

    >>> import numpy as np, dualad as da
    >>> x = da.tensor(3.0, requires_grad=True)
    >>> (x ** 2).backward()
    >>> x.grad.item()
    6.0
    """
    level = tensor_level()
    if isinstance(data, Tensor):
        data = data.primal              # a copy of the value, never the graph
    if is_traced(data):
        # A value traced by an enclosing transform: keep it, so the outer
        # transform still sees the dependence (tensors inside grad).
        value = data if dtype is None else data.astype(dtype)
    else:
        xp = namespace_of(data)
        value = xp.array(data, dtype=dtype, copy=True)
    if requires_grad:
        _check_float(value)
    return Tensor(value, level, _LeafNode() if requires_grad else None)


# ============================================================================
# the backward driver shared by Tensor.backward and autograd.grad
# ============================================================================
def _seq(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _input_node(t, i: int, leaf_only: bool = False):
    if not isinstance(t, Tensor) or not t.requires_grad:
        raise RuntimeError(f"input {i} does not require grad: only tensors created with "
                           "requires_grad=True can be differentiated with respect to")
    if leaf_only and not t.is_leaf:
        # .grad is stored on leaves only (autograd.grad takes intermediates).
        raise NotImplementedError(
            f"backward(inputs=...): input {i} is not a leaf tensor; use "
            "da.autograd.grad(y, inputs) for gradients with respect to intermediates")
    return t.node


def _as_tensor(ct, level) -> Tensor:
    if isinstance(ct, Tensor) and ct._level is level:
        return ct
    return Tensor(ct, level, None)


def _seed(y: Tensor, g, create_graph: bool, i: int):
    """The output cotangent for ``y``: ones for a scalar, else ``g``."""
    v = peel(y)
    dtype = getattr(v, "dtype", None) or np.dtype(np.float64)
    if g is None:
        if y.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs: output {i} has "
                f"shape {y.shape}; pass gradient= (or grad_outputs=) of that shape")
        return namespace_of(v).ones(y.shape, dtype=dtype)
    if isinstance(g, Tensor) and g._level is y._level:
        ct = g if create_graph else g.primal
    elif is_traced(g):
        ct = g
    else:
        ct = namespace_of(v).asarray(g, dtype=dtype)
    if shape_of(ct) != y.shape:
        raise ValueError(f"gradient shape {shape_of(ct)} does not match the shape "
                         f"{y.shape} of output {i}")
    return ct


def _run_backward(outputs: list, grads: list, retain_graph, create_graph: bool,
                  wanted) -> dict:
    level = None
    roots = []
    for i, (y, g) in enumerate(zip(outputs, grads)):
        if not isinstance(y, Tensor) or y.node is None:
            raise RuntimeError(f"output {i} does not require grad and has no recorded "
                               "graph: nothing to differentiate")
        if level is not None and y._level is not level:
            raise ValueError("outputs come from different tensor levels (some were made "
                             "inside a transform, some outside); differentiate them separately")
        level = y._level
        roots.append((y.node, y.index, _seed(y, g, create_graph, i)))
    retain = create_graph if retain_graph is None else bool(retain_graph)
    return backward(roots, retain_graph=retain,
                    graph_level=level if create_graph else None, wanted=wanted)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """Gradients of ``outputs`` (weighted by ``grad_outputs``) with respect to
    ``inputs``, as a tuple; nothing is accumulated into ``.grad``.

    An input the outputs do not depend on raises, unless ``allow_unused``
    (then its entry is None).

    >>> import numpy as np, dualad as da
    >>> x = da.tensor(2.0, requires_grad=True)
    >>> (g,) = da.autograd.grad(x ** 3, x)
    >>> g.item()
    12.0
    """
    outs = _seq(outputs)
    ins = _seq(inputs)
    if grad_outputs is None:
        gouts: Sequence = [None] * len(outs)
    else:
        gouts = _seq(grad_outputs) if isinstance(outputs, (list, tuple)) else [grad_outputs]
    if len(gouts) != len(outs):
        raise ValueError(f"grad_outputs has {len(gouts)} entries for {len(outs)} outputs")
    nodes = [_input_node(t, i) for i, t in enumerate(ins)]
    got = _run_backward(outs, list(gouts), retain_graph, create_graph, set(nodes))
    reached = None
    result = []
    for i, (t, node) in enumerate(zip(ins, nodes)):
        ct = got.get(node)
        if isinstance(ct, tuple):          # an output of a multi-output node
            ct = ct[t.index]
        if ct is None or ct is Zero:
            if reached is None:
                reached = set(map(id, toposort([y.node for y in outs])))
            if id(node) in reached:
                # Connected, but every path carried a symbolic zero.
                xp = namespace_of(peel(t))
                ct = xp.zeros(t.shape, dtype=peel(t).dtype)
            elif allow_unused:
                result.append(None)
                continue
            else:
                raise RuntimeError(
                    f"input {i} does not appear in the graph of the outputs; pass "
                    "allow_unused=True to get None for it instead")
        result.append(_as_tensor(ct, outs[0]._level))
    return tuple(result)


def backward_all(tensors, grad_tensors=None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
    """``torch.autograd.backward``: ``sum_i backward(tensors[i], grad_tensors[i])``
    in one sweep (exposed as ``dualad.autograd.backward``).

    >>> import numpy as np, dualad as da
    >>> x = da.tensor(1.0, requires_grad=True)
    >>> da.autograd.backward([x * 2, x * 3])
    >>> x.grad.item()
    5.0
    """
    outs = _seq(tensors)
    gouts = [None] * len(outs) if grad_tensors is None else _seq(grad_tensors)
    wanted = None
    if inputs is not None:
        wanted = {_input_node(t, i, leaf_only=True) for i, t in enumerate(_seq(inputs))}
    got = _run_backward(outs, gouts, retain_graph, create_graph, wanted)
    for node, ct in got.items():
        if isinstance(node, _LeafNode):
            g = _as_tensor(ct, outs[0]._level)
            node.grad = g if node.grad is None else node.grad + g
