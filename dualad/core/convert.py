"""Conversions that keep traced values: ``np.asarray(x)`` inside a transform.

NumPy does not hand ``np.asarray``/``np.array`` (nor functions given a *list*
of traced values) to ``__array_function__``, and almost every library
function starts with one of them. While at least one transform runs on any
thread, the entry points in :data:`PATCHED` are answered by thin wrappers
(``numpy``'s and ``numpy.linalg``'s module class is switched to one whose
descriptors return them: one store on entry and one on exit, however many
names): when no argument holds a traced value they call the original at once
(identical results; one Python call and a type check more); otherwise they
return traced values:

* ``np.asarray/array/asanyarray/ascontiguousarray/asfortranarray/
  asarray_chkfinite(x)`` return ``x`` itself (``np.array`` and ``copy=True`` a
  copy), with float ``dtype=`` casts applied; an integer cast raises;
* a (nested) list or tuple mixing traced values, numbers and arrays becomes
  the stacked traced array (``np.array([x, x**2])``, ``np.mean([a, b])``,
  ``np.linalg.norm([dx, dy])``, ``np.append([a, 1.0], b)``, ``np.r_``,
  ``np.c_``).

When the last transform on every thread has finished the modules get their
own class back, so code outside transforms runs exactly the original
functions, looked up exactly as before.
Out of reach: compiled code converting its inputs, and names bound before the
transform started (``from numpy import asarray`` at import time).

Example::

    >>> import numpy as np, dualad as da
    >>> da.grad(lambda x: np.linalg.norm(np.asarray([x[0], 2.0 * x[1]])))(np.array([3.0, 2.0]))
    array([0.6, 1.6])
"""
from __future__ import annotations

import functools
import threading

import numpy as np

from dualad.core import levels
from dualad.core.dispatch import LIKE, Tracer, _lost, clone

_ndarray = np.ndarray


def has_tracer(obj) -> bool:
    """Whether ``obj`` is traced or a (nested) list/tuple holding a traced value."""
    if isinstance(obj, Tracer):
        return True
    if obj.__class__ is list or obj.__class__ is tuple:
        for e in obj:
            c = e.__class__
            if c is float or c is int or c is _ndarray:     # the common leaves, inline
                continue
            if has_tracer(e):
                return True
    return False


def _stack(obj):
    """A (nested) list/tuple holding traced values as one stacked traced array."""
    if isinstance(obj, Tracer):
        return obj
    if (obj.__class__ is list or obj.__class__ is tuple) and has_tracer(obj):
        if not obj:
            return _orig["asarray"](obj)
        return np.stack([_stack(e) for e in obj])
    return _orig["asarray"](obj)


def to_traced(obj, dtype=None, copy=None, ndmin: int = 0, what: str = "np.asarray"):
    """``obj`` (holding a traced value) as a traced array."""
    out = _stack(obj)
    if dtype is not None:
        dt = np.dtype(dtype)
        if dt.kind not in "fc":
            raise _lost(f"{what}(..., dtype={dt.name})")
        if dt != out.dtype:
            out = out.astype(dt)
    if ndmin and out.ndim < ndmin:
        out = np.reshape(out, (1,) * (ndmin - out.ndim) + out.shape)
    if out is obj and (copy is True or str(copy) == "_CopyMode.ALWAYS"):
        out = clone(out)       # a later x[i] = v on the copy must not reach obj
    return out


def _conversion(name: str, default_copy, min1d: bool = False):
    orig = getattr(np, name)

    @functools.wraps(orig)
    def convert(a, *args, **kwargs):
        cls = a.__class__
        # Fast path first: most calls convert an ndarray or a number.
        if cls is _ndarray or (cls is not list and cls is not tuple
                               and not isinstance(a, Tracer)) or not has_tracer(a):
            return orig(a, *args, **kwargs)
        dtype = args[0] if args else kwargs.get("dtype")
        copy = kwargs.get("copy", default_copy)
        out = to_traced(a, dtype, copy, kwargs.get("ndmin", 1 if min1d else 0), f"np.{name}")
        if name == "asarray_chkfinite" and not np.isfinite(np.sum(out)):
            raise ValueError("array must not contain infs or NaNs")
        return out
    return convert


def _lists_to_traced(fn):
    """``fn`` with list/tuple arguments that hold traced values stacked first,
    so NumPy's dispatch sees the tracer (``np.mean([a, b])``)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        for a in args:
            if (a.__class__ is list or a.__class__ is tuple) and has_tracer(a):
                args = tuple(_stack(b) if b.__class__ in (list, tuple) and has_tracer(b)
                             else b for b in args)
                break
        return fn(*args, **kwargs)
    return call


class _Concat:
    """``np.r_`` / ``np.c_`` that also join traced values."""

    def __init__(self, orig, columns: bool):
        self._orig, self._columns = orig, columns

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not any(has_tracer(k) for k in items):
            return self._orig[key]
        parts = []
        for k in items:
            if isinstance(k, (slice, str)):
                if isinstance(k, str):
                    raise TypeError("np.r_/np.c_ string directives are not supported "
                                    "with traced values; use np.concatenate/np.stack")
                k = self._orig[k]
            a = np.atleast_1d(_stack(k))
            if self._columns:
                a = np.reshape(a, a.shape + (1,)) if a.ndim == 1 else a
            parts.append(a)
        if self._columns and all(p.ndim == 2 and p.shape[0] == 1 for p in parts) \
                and all(np.ndim(k) == 0 for k in items):
            return np.concatenate([np.reshape(p, (1, -1)) for p in parts], axis=1)
        return np.concatenate(parts, axis=-1 if self._columns else 0)

    def __getattr__(self, name):
        return getattr(self._orig, name)

    def __len__(self):
        return len(self._orig)


# name -> wrapper factory; _orig keeps the functions in place before patching
_orig: dict = {n: getattr(np, n) for n in (
    "asarray", "array", "asanyarray", "ascontiguousarray", "asfortranarray",
    "asarray_chkfinite", "r_", "c_") if hasattr(np, n)}
# NumPy functions often handed a list of traced scalars (np.mean([a, b])).
_LIST_TAKERS = ("mean", "sum", "prod", "max", "min", "average", "var", "std", "append",
                "dot", "cumsum", "diff", "atleast_1d", "atleast_2d", "atleast_3d", "outer",
                "cross", "where", "clip", "ravel", "reshape", "transpose")


def _patches() -> list:
    """``(module, name, wrapper)`` for every entry point replaced during transforms."""
    out = [(np, n, _conversion(n, c, n == "ascontiguousarray" or n == "asfortranarray"))
           for n, c in (("asarray", None), ("array", True), ("asanyarray", None),
                        ("ascontiguousarray", None), ("asfortranarray", None),
                        ("asarray_chkfinite", None)) if n in _orig]
    out += [(np, "r_", _Concat(_orig["r_"], False)), (np, "c_", _Concat(_orig["c_"], True))]
    out += [(np, n, _lists_to_traced(getattr(np, n))) for n in _LIST_TAKERS
            if hasattr(np, n) and not isinstance(getattr(np, n), np.ufunc)]
    out += [(np.linalg, n, _lists_to_traced(getattr(np.linalg, n)))
            for n in ("norm", "det", "solve")]
    return out


def _shadowing_class(module, wrappers: dict) -> type:
    """A subclass of ``module``'s type whose data descriptors answer
    ``module.<name>`` with ``wrappers[name]``: a data descriptor on the type
    wins over the module's ``__dict__``, so assigning ``module.__class__``
    switches every name at once (one store, however many names; a
    ``dict.update`` of the namespace cost a store per name on each entry
    and exit). Each getter is a C-level ``dict.__getitem__``. Assigning a
    name meanwhile writes the module's ``__dict__`` (seen after the exit)."""
    def prop(name, w):
        def assign(m, value):
            m.__dict__[name] = value

        def delete(m):
            del m.__dict__[name]
        return property({module: w}.__getitem__, assign, delete)
    return type(f"_traced_{module.__name__}", (type(module),),
                {n: prop(n, w) for n, w in wrappers.items()})


PATCHED = _patches()
_ORIGINALS = [(m, n, getattr(m, n)) for m, n, _ in PATCHED]
# module, its class with the wrappers, its own class
_SWAP = [(m, _shadowing_class(m, {n: w for mm, n, w in PATCHED if mm is m}), type(m))
         for m in (np, np.linalg)]
_lock = threading.Lock()
_active = [0]          # threads currently inside at least one transform


def _enter() -> None:
    with _lock:
        _active[0] += 1
        if _active[0] == 1:
            for m, traced, _ in _SWAP:
                m.__class__ = traced


def _exit() -> None:
    with _lock:
        _active[0] -= 1
        if _active[0] == 0:
            for m, _, plain in _SWAP:
                m.__class__ = plain


levels.set_outermost_hooks(_enter, _exit)


def _like_conversion(name: str):
    def convert(like, a, *args, **kwargs):
        if has_tracer(a):
            return to_traced(a, args[0] if args else kwargs.get("dtype"),
                             kwargs.get("copy"), kwargs.get("ndmin", 0), f"np.{name}")
        return _orig[name](a, *args, **kwargs)
    return convert


for _n in ("asarray", "array", "asanyarray"):
    LIKE[_orig[_n]] = _like_conversion(_n)
