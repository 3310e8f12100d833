"""Weights for ``grad(..., weights=...)``: :class:`Parameter` and :class:`Module`.

A :class:`Parameter` is a named, mutable array that user NumPy code reads like
any other array. While a gradient with respect to it is being taken
(``da.grad(f, weights=...)``), the reverse API pushes a traced value onto the
parameter's stack; every NumPy call on the parameter then sees that traced
value instead of the plain one, so ``f`` is differentiated unmodified.

Example::

    >>> import numpy as np, dualad as da
    >>> w = da.Parameter(np.array([1.0, 2.0]), name="w")
    >>> da.grad(lambda x: (w * x).sum(), None, weights=w)(np.array([3.0, 4.0]))
    (array([3., 4.]),)
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from dualad.core.backend import namespace_of
from dualad.core.levels import is_traced


# ============================================================================
# Parameter
# ============================================================================
def _as_float(value):
    """A floating array for a parameter value (Python scalars, int arrays)."""
    if isinstance(value, Parameter):
        value = value.value
    if is_traced(value):
        raise TypeError("a Parameter holds a plain array, not a traced value; "
                        "pass the value itself (e.g. the primal)")
    xp = namespace_of(value)
    arr = xp.asarray(value)
    if arr.dtype.kind not in "fc":
        arr = arr.astype(np.float64)
    return arr


def _unwrap(x):
    """Replace Parameters (also inside lists/tuples) by their current values."""
    if isinstance(x, Parameter):
        return x._current()
    if isinstance(x, (list, tuple)) and any(isinstance(v, Parameter) for v in x):
        return type(x)(_unwrap(v) for v in x)
    return x


class Parameter:
    """A named weight array, usable anywhere a NumPy array is.

    ``.value`` is the plain array; ``.set_data(v)`` replaces it. Inside
    ``da.grad(f, weights=[p, ...])`` NumPy calls on ``p`` act on a traced copy
    of the value, so the gradient flows to ``p``. ``requires_grad=False`` keeps
    it out of ``Module.trainable_params()`` (and gives it a zero gradient when
    passed explicitly as a weight).

    >>> import numpy as np, dualad as da
    >>> p = da.Parameter([1.0, 2.0], name="p")
    >>> float(np.sum(p * 2))
    6.0
    """

    # NumPy defers binary operators to us (ndarray + Parameter -> our
    # __array_ufunc__), exactly as it does for tracers.
    __array_priority__ = 1000

    def __init__(self, value: Any, name: str | None = None, requires_grad: bool = True):
        self.value = _as_float(value)
        self.name = name
        self.requires_grad = bool(requires_grad)
        # Per thread: grads in different threads trace the same Parameter
        # independently, and a thread not differentiating sees the plain value.
        self._local = threading.local()

    # -- binding to a traced value (driven by dualad.compat.weights) --------
    def _stack(self) -> list:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    @contextmanager
    def bound(self, value: Any) -> Iterator[Parameter]:
        """Within the block (in this thread), NumPy code on this Parameter
        acts on ``value`` (a traced copy while a gradient with respect to it
        is taken). Nested blocks stack, so nested ``grad(..., weights=p)``
        calls each see their own.

        >>> import numpy as np, dualad as da
        >>> p = da.Parameter([1.0, 2.0])
        >>> with p.bound(np.array([5.0, 6.0])):
        ...     float(np.sum(p))
        11.0
        """
        stack = self._stack()
        stack.append(value)
        try:
            yield self
        finally:
            stack.pop()

    def _current(self):
        """The value NumPy calls act on: traced while a gradient is taken."""
        stack = self._stack()
        return stack[-1] if stack else self.value

    @property
    def is_traced(self) -> bool:
        return bool(self._stack())

    def set_data(self, value: Any) -> Parameter:
        """Replace the value (e.g. after an optimiser step); returns self."""
        if self.is_traced:
            raise RuntimeError(f"cannot set_data on Parameter {self.name!r} while a gradient "
                               "with respect to it is being taken")
        self.value = _as_float(value)
        return self

    # -- pickling: the thread-local stack is not state ----------------------
    def __getstate__(self):
        return {"value": self.value, "name": self.name, "requires_grad": self.requires_grad}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    # -- array protocol -------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(_unwrap(x) for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        args = tuple(_unwrap(a) for a in args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        # A traced value refuses this conversion itself (it would drop the
        # derivative); the plain value converts as an ndarray would.
        value = np.asarray(self._current())
        return value if dtype is None else value.astype(dtype, copy=False)

    # -- array-like attributes ---------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.value.shape)

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def size(self) -> int:
        return int(self.value.size)

    @property
    def T(self):
        return self._current().T

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self) -> Iterator:
        return iter(self._current())

    def __getitem__(self, key):
        return self._current()[key]

    def __setitem__(self, key, v) -> None:
        if self.is_traced:
            raise TypeError(f"in-place assignment into Parameter {self.name!r} inside a "
                            "differentiated function is not differentiable")
        self.value[key] = v

    def __getattr__(self, name: str):
        # ndarray methods (sum, reshape, dot, max, astype, ...) act on the
        # current value. Dunder names are never forwarded: copy/pickle probe
        # them before __init__ has run.
        if name.startswith("__"):
            raise AttributeError(name)
        local = self.__dict__.get("_local")
        stack = getattr(local, "stack", None)
        if stack:
            # While traced, the Parameter *is* its traced value to the
            # interpreters (``_level``, ``primal``, ``node``, ``tangent``...):
            # a tracer's __array_ufunc__ runs before ours in ``var * p`` and
            # binds the primitive with ``p`` among the arguments, so ``p`` must
            # read as that tracer, not as a constant.
            return getattr(stack[-1], name)
        if name.startswith("_") or "value" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.value, name)

    def __float__(self) -> float:
        return float(self._current())

    def __bool__(self) -> bool:
        return bool(self._current())

    __hash__ = object.__hash__     # identity: Parameters are mutable

    def __repr__(self) -> str:
        flag = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(name={self.name!r}, value={self.value!r}{flag})"

    # -- operators: the current value, re-dispatched by NumPy --------------
    def __add__(self, o): return self._current() + _unwrap(o)
    def __radd__(self, o): return _unwrap(o) + self._current()
    def __sub__(self, o): return self._current() - _unwrap(o)
    def __rsub__(self, o): return _unwrap(o) - self._current()
    def __mul__(self, o): return self._current() * _unwrap(o)
    def __rmul__(self, o): return _unwrap(o) * self._current()
    def __truediv__(self, o): return self._current() / _unwrap(o)
    def __rtruediv__(self, o): return _unwrap(o) / self._current()
    def __floordiv__(self, o): return self._current() // _unwrap(o)
    def __rfloordiv__(self, o): return _unwrap(o) // self._current()
    def __mod__(self, o): return self._current() % _unwrap(o)
    def __pow__(self, o): return self._current() ** _unwrap(o)
    def __rpow__(self, o): return _unwrap(o) ** self._current()
    def __matmul__(self, o): return self._current() @ _unwrap(o)
    def __rmatmul__(self, o): return _unwrap(o) @ self._current()
    def __neg__(self): return -self._current()
    def __pos__(self): return self._current()
    def __abs__(self): return abs(self._current())
    def __lt__(self, o): return self._current() < _unwrap(o)
    def __le__(self, o): return self._current() <= _unwrap(o)
    def __gt__(self, o): return self._current() > _unwrap(o)
    def __ge__(self, o): return self._current() >= _unwrap(o)
    def __eq__(self, o): return self._current() == _unwrap(o)
    def __ne__(self, o): return self._current() != _unwrap(o)

    # In-place updates (an optimiser step ``p -= lr * g``) change the value
    # and keep the Parameter object, so modules and weight lists see it.
    def _inplace(self, op, o):
        if self.is_traced:
            raise TypeError(f"in-place update of Parameter {self.name!r} inside a "
                            "differentiated function is not differentiable")
        self.value = _as_float(op(self.value, _unwrap(o)))
        return self

    def __iadd__(self, o): return self._inplace(np.add, o)
    def __isub__(self, o): return self._inplace(np.subtract, o)
    def __imul__(self, o): return self._inplace(np.multiply, o)
    def __itruediv__(self, o): return self._inplace(np.true_divide, o)


# ============================================================================
# Module
# ============================================================================
def _walk(obj, prefix: str, seen: set, out: list) -> None:
    """Collect (path, Parameter) pairs in attribute order, depth first; a
    Parameter shared by several attributes is listed once (where first met)."""
    if isinstance(obj, Parameter):
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append((prefix, obj))
    elif isinstance(obj, Module):
        if id(obj) in seen:        # a sub-module reachable twice (or a cycle)
            return
        seen.add(id(obj))
        for name, value in vars(obj).items():
            if not name.startswith("_"):
                _walk(value, f"{prefix}.{name}" if prefix else name, seen, out)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _walk(value, f"{prefix}.{i}" if prefix else str(i), seen, out)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _walk(value, f"{prefix}.{key}" if prefix else str(key), seen, out)


class Module:
    """Base class of models holding Parameters (PyTorch / MindSpore style).

    Subclasses define ``forward`` (or MindSpore's ``construct``); calling the
    module calls it. Parameters are found through attributes, sub-modules and
    lists/tuples/dicts of them, in definition order.

    >>> import numpy as np, dualad as da
    >>> class Scale(da.Module):
    ...     def __init__(self):
    ...         self.w = da.Parameter(2.0)
    ...     def forward(self, x):
    ...         return self.w * x
    >>> m = Scale()
    >>> float(m(3.0)), [p.name for p in m.trainable_params()]
    (6.0, ['w'])
    """

    def __setattr__(self, name: str, value) -> None:
        # Name unnamed Parameters after the attribute they are assigned to
        # (MindSpore does the same), so error messages and lists are readable.
        if isinstance(value, Parameter) and value.name is None:
            value.name = name
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        """The computation; defaults to ``construct`` where only that is defined."""
        if type(self).construct is not Module.construct:
            return self.construct(*args, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} must define forward (or construct)")

    def construct(self, *args, **kwargs):
        """MindSpore's name for :meth:`forward`."""
        if type(self).forward is not Module.forward:
            return self.forward(*args, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} must define forward (or construct)")

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """``(dotted path, Parameter)`` for every Parameter, in definition order."""
        out: list = []
        _walk(self, "", set(), out)
        return out

    def parameters(self) -> list[Parameter]:
        """Every Parameter (trainable or not), in definition order."""
        return [p for _, p in self.named_parameters()]

    def trainable_params(self) -> list[Parameter]:
        """The Parameters with ``requires_grad=True``: pass as ``weights=``."""
        return [p for p in self.parameters() if p.requires_grad]

    def requires_grad_(self, flag: bool = True) -> Module:
        """Set ``requires_grad`` on every Parameter; returns self."""
        for p in self.parameters():
            p.requires_grad = bool(flag)
        return self

    def __repr__(self) -> str:
        names = ", ".join(n for n, _ in self.named_parameters())
        return f"{type(self).__name__}({names})"
