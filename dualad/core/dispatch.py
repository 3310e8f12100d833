"""Routes NumPy calls on traced values into the primitive registry.

Every traced type (Dual, HyperDual, Taylor, tape Var/tensor) derives from
:class:`Tracer`, whose ``__array_ufunc__``, ``__array_function__`` and
operators look the NumPy callable up in :data:`UFUNCS` / :data:`FUNCTIONS`.
The rule modules fill those tables with :func:`implements`. Anything not in
the tables raises a ``TypeError`` naming the function; conversions that would
silently drop a derivative (``np.asarray``, ``float``, ``tolist``) raise too.
"""
from __future__ import annotations

import linecache
import operator
import re
import sys
from collections.abc import Callable

import numpy as np

from dualad.core.backend import dtype_of, peel, peel_keep_batch, staging_bottom
from dualad.core.levels import LostDerivativeError
from dualad.core.registry import Primitive, bind, provided, shape_of

UFUNCS: dict = {}        # ufunc -> handler(*inputs, **kwargs)
REDUCERS: dict = {}      # (ufunc, method) -> handler(x, **kwargs), e.g. np.add.reduce
FUNCTIONS: dict = {}     # numpy function -> handler(*args, **kwargs)
ARRAY_API: list = []     # [the array API namespace module], see core/array_api.py
LIKE: dict = {}          # creation function -> handler(like, *args, **kwargs), for like=x
# Callables ``loader(ufunc) -> bool`` that register rules for a ufunc from
# another library (scipy.special) the first time one reaches a traced value.
UFUNC_LOADERS: list = []


def implements(*numpy_functions) -> Callable:
    """Register a handler for NumPy functions (or ufuncs) on traced values."""
    def register(handler):
        for f in numpy_functions:
            (UFUNCS if isinstance(f, np.ufunc) else FUNCTIONS)[f] = handler
        return handler
    return register


def prim_caller(prim: Primitive) -> Callable:
    """A handler that binds ``prim`` to the user's arguments."""
    def call(*args, **params):
        return bind(prim, *args, **params)
    call.__name__ = prim.name
    return call


def _nondiff(fn):
    """Run ``fn`` on primal values: its result carries no derivative. Under a
    recording (``da.jit``) it is recorded as an operation on the recorded
    values instead of reading them (see :func:`staged_call`)."""
    def call(*args, **kwargs):
        staged = staged_call(fn, args, kwargs)
        if staged is not None:
            return staged
        vals = [peel_keep_batch(a) for a in args]
        top = None
        for v in vals:
            if getattr(v, "_batched", False) and (top is None or v._level.order > top.order):
                top = v._level
        if top is not None:
            return top.nondiff(fn, vals, {k: peel(v) for k, v in kwargs.items()})
        return fn(*vals, **{k: peel(v) for k, v in kwargs.items()})
    return call


def staged_call(fn, args, kwargs):
    """``fn(*args, **kwargs)`` (a derivative-free function) recorded by the
    staging level at the bottom of some argument, on the recorded values;
    None when no argument is being recorded. The other arguments pass as
    their plain values."""
    level = None
    bottoms = []
    for a in args:
        b = staging_bottom(a) if hasattr(a, "_level") else None
        if b is not None:
            level = b._level
            bottoms.append(b)
        else:
            bottoms.append(a)
    if level is None or any(hasattr(v, "_level") for v in kwargs.values()):
        return None
    for b in bottoms:
        if hasattr(b, "_level") and b._level is not level:
            return None                           # mixed with another tracer
    call = (lambda *vs: fn(*vs, **kwargs)) if kwargs else fn
    # Only array results are recorded: metadata (np.result_type, np.shape)
    # and tuples (np.nonzero) take the reading path, which the recorder sees.
    trial = call(*[b._value if hasattr(b, "_level") else b for b in bottoms])
    if not isinstance(trial, (np.ndarray, np.generic)):
        return None
    return level.stage_call(call, *bottoms)


def _compare(op, a, b):
    """A comparison of traced values: no derivative; recorded under da.jit."""
    staged = staged_call(op, (a, b), {})
    return staged if staged is not None else op(peel_keep_batch(a), peel_keep_batch(b))


def register_nondiff(*functions) -> None:
    """Declare NumPy callables whose result has zero derivative (sign, floor,
    comparisons, ``shape``...): they run on the primal and return plain arrays."""
    for f in functions:
        (UFUNCS if isinstance(f, np.ufunc) else FUNCTIONS)[f] = _nondiff(f)


def ufunc_name(ufunc) -> str:
    """The public name of a ufunc: ``numpy.sin``, ``scipy.special.erf``."""
    name = ufunc.__name__
    if getattr(np, name, None) is ufunc:
        return f"numpy.{name}"
    special = sys.modules.get("scipy.special")
    if special is not None and getattr(special, name, None) is ufunc:
        return f"scipy.special.{name}"
    return name


def _ufunc_handler(ufunc):
    handler = UFUNCS.get(ufunc)
    if handler is None:
        for load in UFUNC_LOADERS:
            if load(ufunc):
                return UFUNCS.get(ufunc)
    return handler


def _unsupported(name: str) -> TypeError:
    if "." not in name:
        name = f"numpy.{name}"
    return TypeError(
        f"dualad cannot differentiate {name}: it has no derivative rule. "
        f"Write the computation with supported functions, or wrap it with "
        f"dualad.custom_jvp / dualad.custom_vjp to supply the rule.")


def _caller() -> str | None:
    """The library function that asked for the conversion, for the message:
    ``math.sin`` (a C function seen in the caller's source line) or the
    outermost NumPy/SciPy frame (``numpy.vectorize``). Error path only."""
    f = sys._getframe(2)
    while f is not None and f.f_globals.get("__name__", "").startswith("dualad."):
        f = f.f_back
    entry = None
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if mod.split(".")[0] not in ("numpy", "scipy"):
            break
        entry, f = f, f.f_back
    if entry is not None:
        mod = entry.f_globals["__name__"]
        name = entry.f_code.co_qualname.split(".")[0]
        top = mod.split(".")[0]
        if hasattr(sys.modules.get(top), name):
            return f"{top}.{name}"
        return ".".join([p for p in mod.split(".") if not p.startswith("_")] + [name])
    if f is None:
        return None
    line = linecache.getline(f.f_code.co_filename, f.f_lineno)
    for name in re.findall(r"([A-Za-z_][\w.]*)\s*\(", line):
        head, *rest = name.split(".")
        obj = f.f_locals.get(head, f.f_globals.get(head))
        for part in rest:
            obj = getattr(obj, part, None)
        if getattr(obj, "__module__", None) in ("math", "cmath") or (
                type(obj).__name__ == "builtin_function_or_method"
                and getattr(getattr(obj, "__self__", None), "__name__", None) in ("math", "cmath")):
            return f"{obj.__self__.__name__}.{obj.__name__}"
    return None


def _lost(what: str, buffer: bool = False) -> TypeError:
    site = _caller()
    if site is not None and site.startswith(("math.", "cmath.")):
        return LostDerivativeError(
            f"{site}() on a traced value: {site.split('.')[0]} functions take Python floats "
            f"and would drop the derivative; use numpy.{site.split('.')[1]} instead.")
    if site is not None:
        what = f"{site} (through {what})"
    hint = (" Writing a traced value into a plain NumPy array (z = np.zeros(n); "
            "z[i] = x[j]) does this too: allocate the buffer from a traced value "
            "(z = np.zeros_like(x)), or collect the values in a list and np.stack "
            "them.") if buffer else ""
    return LostDerivativeError(
        f"{what} on a traced value would drop its derivative. Keep using NumPy "
        "functions on it (e.g. np.stack instead of np.array([...])), or cut it "
        f"explicitly with dualad.stop_gradient(x) first.{hint}")


def _apply(ufunc, *inputs, **kwargs):
    """Run a ufunc's handler; lists and tuples become arrays first (NumPy would
    convert them, and the rules need their shapes)."""
    handler = UFUNCS.get(ufunc)
    if handler is None:
        handler = _ufunc_handler(ufunc)
        if handler is None:
            raise _unsupported(ufunc_name(ufunc))
    for a in inputs:
        if a.__class__ is list or a.__class__ is tuple:
            inputs = tuple(np.asarray(b) if b.__class__ in (list, tuple) else b for b in inputs)
            break
    return handler(*inputs, **kwargs)


_SLOTS: dict = {}


def _slots_of(cls) -> tuple:
    slots = _SLOTS.get(cls)
    if slots is None:
        slots = _SLOTS[cls] = tuple(dict.fromkeys(
            s for c in cls.__mro__ for s in c.__dict__.get("__slots__", ())
            if s not in ("__weakref__", "__dict__")))
    return slots


def clone(t):
    """A new tracer object with ``t``'s state: a copy (values underneath are
    never mutated, so sharing them is safe)."""
    cls = type(t)
    new = cls.__new__(cls)
    for s in _slots_of(cls):
        if hasattr(t, s):
            setattr(new, s, getattr(t, s))
    return new


def become(t, new):
    """Make tracer ``t`` hold ``new``'s value (``x[i] = v``, ``x += v``,
    ``np.add.at``): only the tracer object changes; the arrays and graph nodes
    it held before stay as they were for every earlier operation."""
    if new is t:
        return t
    if type(new) is not type(t) or new._level is not t._level:
        lv = getattr(new, "_level", None)
        if lv is not None and lv.order > t._level.order:
            raise TypeError(
                "in-place update of a traced array with a value traced by a transform "
                "started inside the one that made the array; build a new array instead "
                "(e.g. collect the values and np.stack them).")
        new = _apply(np.add, new, traced_zero(t))
        if type(new) is not type(t) or new._level is not t._level:
            raise TypeError(f"cannot write a {type(new).__name__} into a traced "
                            f"{type(t).__name__} in place; build a new array instead.")
    for s in _slots_of(type(t)):
        if hasattr(new, s):
            setattr(t, s, getattr(new, s))
    return t


def traced_zero(t):
    """A 0-d zero at ``t``'s level with a zero derivative (the sum of an empty
    slice of ``t``: NaN-free whatever ``t`` holds), to lift constants there."""
    return np.sum(np.ravel(t)[0:0])


class Tracer:
    """Array-like base of every traced value. Subclasses set ``primal`` (the
    value one level down) and ``_level``."""

    __slots__ = ()
    __array_priority__ = 1000
    # True for tracers whose value reads are observed (staging, sparsity):
    # they keep the value one level down in ``_value`` and their level has
    # ``observe_finite`` (see dualad.mixed.replay for the contract).
    _observing = False

    # -- array protocol ---------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if kwargs:
            if kwargs.get("out") is not None:
                raise TypeError(
                    f"in-place numpy.{ufunc.__name__}(..., out=...) into a traced array is "
                    "not differentiable; write the result to a new array instead.")
            kwargs.pop("out", None)
        if method == "__call__":
            return _apply(ufunc, *inputs, **kwargs)
        handler = REDUCERS.get((ufunc, method))
        if handler is None:
            raise _unsupported(f"{ufunc_name(ufunc)}.{method}")
        return handler(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        handler = FUNCTIONS.get(func)
        if func in LIKE and not any(a is self for a in args):
            return LIKE[func](self, *args, **kwargs)      # np.zeros(n, like=x)
        if handler is None:
            mod = func.__module__ or "numpy"
            prefix = mod.replace("numpy", "", 1).lstrip(".")
            raise _unsupported(f"numpy.{prefix + '.' if prefix else ''}{func.__name__}")
        return handler(*args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        raise _lost("np.asarray()/np.array()", buffer=True)

    def __float__(self):
        raise _lost("float()", buffer=True)

    def __int__(self):
        raise _lost("int()", buffer=True)

    def __complex__(self):
        raise _lost("complex()")

    def tolist(self):
        raise _lost(".tolist()")

    def item(self, *args):
        raise _lost(".item()")

    def __setitem__(self, key, value):
        # Functional update (dualad/rules/inplace.py): this tracer takes the new value.
        become(self, FUNCTIONS["setitem"](self, key, value))

    def __format__(self, spec: str) -> str:
        return format(peel(self), spec)

    def __array_namespace__(self, *, api_version=None):
        return ARRAY_API[0]          # dualad.core.array_api, registered on import

    # -- augmented assignment updates this tracer (NumPy aliasing semantics) --
    def __iadd__(self, o): return become(self, _apply(np.add, self, o))
    def __isub__(self, o): return become(self, _apply(np.subtract, self, o))
    def __imul__(self, o): return become(self, _apply(np.multiply, self, o))
    def __itruediv__(self, o): return become(self, _apply(np.true_divide, self, o))
    def __ipow__(self, o): return become(self, _apply(np.power, self, o))

    # -- array-like attributes ---------------------------------------------
    @property
    def shape(self) -> tuple:
        return shape_of(self.primal)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def dtype(self):
        return dtype_of(self)

    @property
    def T(self):
        return np.transpose(self)

    @property
    def mT(self):
        return np.swapaxes(self, -1, -2)

    @property
    def real(self):
        return np.real(self)

    @property
    def imag(self):
        return np.imag(self)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d traced value")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        # Branching on a traced value follows the primal.
        return bool(peel_keep_batch(self))

    __hash__ = object.__hash__

    def __getitem__(self, key):
        return FUNCTIONS["getitem"](self, key)

    # -- operators: straight to the ufunc handlers (skipping NumPy's override
    #    resolution, which costs a microsecond per scalar op) ----------------
    def __add__(self, o): return _apply(np.add, self, o)
    def __radd__(self, o): return _apply(np.add, o, self)
    def __sub__(self, o): return _apply(np.subtract, self, o)
    def __rsub__(self, o): return _apply(np.subtract, o, self)
    def __mul__(self, o): return _apply(np.multiply, self, o)
    def __rmul__(self, o): return _apply(np.multiply, o, self)
    def __truediv__(self, o): return _apply(np.true_divide, self, o)
    def __rtruediv__(self, o): return _apply(np.true_divide, o, self)
    def __pow__(self, o): return _apply(np.power, self, o)
    def __rpow__(self, o): return _apply(np.power, o, self)
    def __matmul__(self, o): return np.matmul(self, o)
    def __rmatmul__(self, o): return np.matmul(o, self)
    def __neg__(self): return _apply(np.negative, self)
    def __pos__(self): return clone(self)      # +x is a copy in NumPy too
    def __abs__(self): return _apply(np.absolute, self)
    def __floordiv__(self, o): return np.floor_divide(self, o)
    def __rfloordiv__(self, o): return np.floor_divide(o, self)
    def __mod__(self, o): return np.mod(self, o)
    def __rmod__(self, o): return np.mod(o, self)
    def __lt__(self, o): return _compare(operator.lt, self, o)
    def __le__(self, o): return _compare(operator.le, self, o)
    def __gt__(self, o): return _compare(operator.gt, self, o)
    def __ge__(self, o): return _compare(operator.ge, self, o)
    def __eq__(self, o): return _compare(operator.eq, self, o)
    def __ne__(self, o): return _compare(operator.ne, self, o)

    # -- ndarray methods (all through the NumPy functions above) -----------
    def sum(self, *a, **k): return np.sum(self, *a, **k)
    def mean(self, *a, **k): return np.mean(self, *a, **k)
    def prod(self, *a, **k): return np.prod(self, *a, **k)
    def max(self, *a, **k): return np.max(self, *a, **k)
    def min(self, *a, **k): return np.min(self, *a, **k)
    def var(self, *a, **k): return np.var(self, *a, **k)
    def std(self, *a, **k): return np.std(self, *a, **k)
    def cumsum(self, *a, **k): return np.cumsum(self, *a, **k)
    def cumprod(self, *a, **k): return np.cumprod(self, *a, **k)
    def dot(self, o): return np.dot(self, o)
    def clip(self, *a, **k): return np.clip(self, *a, **k)
    def trace(self, *a, **k): return np.trace(self, *a, **k)
    def diagonal(self, *a, **k): return np.diagonal(self, *a, **k)
    def swapaxes(self, a, b): return np.swapaxes(self, a, b)
    def squeeze(self, axis=None): return np.squeeze(self, axis)
    def ravel(self): return np.ravel(self)
    def flatten(self): return np.ravel(self)
    def conj(self): return np.conjugate(self)
    def conjugate(self): return np.conjugate(self)
    def copy(self, order="K"): return clone(self)
    def argmax(self, *a, **k): return np.argmax(self, *a, **k)
    def argmin(self, *a, **k): return np.argmin(self, *a, **k)
    def argsort(self, *a, **k): return np.argsort(self, *a, **k)
    def nonzero(self): return np.nonzero(self)
    def all(self, *a, **k): return np.all(self, *a, **k)
    def any(self, *a, **k): return np.any(self, *a, **k)
    def repeat(self, *a, **k): return np.repeat(self, *a, **k)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return np.reshape(self, tuple(shape), order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return np.transpose(self, axes or None)

    def astype(self, dtype, copy=True):
        dtype = np.dtype(dtype)
        if dtype.kind not in "fc":
            return peel_keep_batch(self).astype(dtype)   # integer/bool views carry no derivative
        if dtype.kind == "f" and self.dtype.kind == "c":
            return np.real(self).astype(dtype)  # NumPy drops the imaginary part
        return provided.astype(self, dtype=dtype)


class ObservingTracer(Tracer):
    """A tracer whose reads are observed (the replay safety contract of
    :mod:`dualad.mixed.replay`): ``.primal`` tells the level
    (``level.observe_read(self)``); metadata accessors go through ``_value``
    without a read. Subclasses: the recorder's ``Staged``, the sparsity
    ``Pattern``."""

    __slots__ = ()
    _observing = True

    @property
    def primal(self):
        self._level.observe_read(self)
        return self._value

    @property
    def shape(self) -> tuple:
        return shape_of(self._value)

