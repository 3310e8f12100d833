"""Structure fingerprints: what a cached pattern, coloring or recorded pass
may silently depend on besides the input shapes.

A function's closures and globals are invisible to a cache keyed by the
function and its argument shapes: ``lambda x: np.sum(c * x**2)`` has a
different Hessian (and, through ``c``'s zeros, a different sparsity pattern)
after ``c[:] = ...``. :func:`fingerprint` runs the function once under a light
interpreter that records every primitive it binds, with its parameters and a
digest of every constant operand (closure and global arrays included), and
the output structure. Caches include the fingerprint in their keys, so any
change that could alter a derivative makes a miss, never a stale hit.

>>> import numpy as np
>>> c = np.zeros(2)
>>> f = lambda x: np.sum(c * x)
>>> a = fingerprint(f, (np.ones(2),), (0,))
>>> c[0] = 1.0
>>> a == fingerprint(f, (np.ones(2),), (0,))
False
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, new_level, split_at
from dualad.core.registry import bind
from dualad.core.tree import tree_flatten
from dualad.mixed.cache import CODE_GLOBALS


class _Traced(Tracer):
    __slots__ = ("primal", "_level")

    def __init__(self, primal, level):
        self.primal, self._level = primal, level


class _Unkeyable:
    """A digest equal to nothing (not even itself): the value cannot be keyed
    (a lower-level tracer, an opaque object), so nothing may be reused."""

    __slots__ = ()

    def __eq__(self, other) -> bool:
        return False

    def __hash__(self) -> int:
        return id(self)


def digest(value) -> object:
    """A hashable summary that changes whenever the value could change a
    derivative: arrays by shape, dtype and content; scalars by value."""
    t = type(value)
    if t in _PLAIN_SET:
        return (t, value) if t is not float or value == value else ("nan",)
    if t is tuple or t is list:
        return (t.__name__,) + tuple(digest(v) for v in value)
    if t is dict:
        return ("dict",) + tuple((k, digest(v)) for k, v in value.items())
    if t is np.ndarray:
        data = np.ascontiguousarray(value).tobytes()
        return (value.shape, value.dtype.str, hashlib.blake2b(data, digest_size=16).digest())
    if isinstance(value, np.generic):
        return (value.dtype.str, value.item())
    if t is slice:
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, np.dtype) or value is Ellipsis:
        return repr(value)
    return _Unkeyable()


# Types whose value is its own digest (bool/int/float keep their types apart:
# a dict key of ("x", 1) and ("x", True) hash alike but compare by value).
_PLAIN_SET = frozenset((bool, int, float, complex, str, bytes, type(None)))


class FingerprintLevel(Level):
    """Records, per primitive bound, its name, a digest of its parameters and
    digests of its constant operands into ``trace``."""

    __slots__ = ("trace",)
    kind = "fingerprint"

    def __init__(self, trace: list):
        super().__init__()
        self.trace = trace

    def process(self, prim, args, params):
        primals, marks = split_at(self, args, "_level", None)
        consts = tuple(None if m is not None else digest(a) for a, m in zip(args, marks))
        self.trace.append((prim.name, digest(params), consts))
        out = bind(prim, *primals, **params)
        if prim.n_outputs == 1:
            return _Traced(out, self)
        return tuple(_Traced(o, self) for o in out)


def fingerprint(fn: Callable, args: tuple, positions: tuple, *,
                value: list | None = None) -> tuple:
    """The primitives ``fn(*args)`` binds, their parameters, digests of their
    constant operands and the output structure; ``args[positions]`` traced.
    ``value``: a list that receives ``fn(*args)`` when it is one array or
    scalar (the evaluation is a plain one underneath: callers checking a
    value need not evaluate ``fn`` again)."""
    trace: list = []
    with new_level(FingerprintLevel(trace)) as level:
        call = list(args)
        for p in positions:
            call[p] = _Traced(args[p], level)
        out = fn(*call)
    leaves, treedef = tree_flatten(out)
    if value is not None and len(leaves) == 1 and out is leaves[0]:
        value.append(out.primal if isinstance(out, _Traced) else out)
    shapes = tuple(np.shape(leaf.primal if isinstance(leaf, _Traced) else leaf)
                   for leaf in leaves)
    return (tuple(trace), repr(treedef), shapes)


# ============================================================================
# self-contained functions need no fingerprint
# ============================================================================
_GLOBAL_OPS = frozenset(("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"))


def _global_names(code) -> frozenset:
    names = CODE_GLOBALS.get(code)
    if names is None:
        import dis
        found = set()
        stack = [code]
        while stack:
            c = stack.pop()
            for ins in dis.get_instructions(c):
                if ins.opname in _GLOBAL_OPS:
                    found.add(ins.argval)
            stack.extend(k for k in c.co_consts if hasattr(k, "co_code"))
        names = frozenset(found)
        CODE_GLOBALS.put(code, names)
    return names


def _fixed(value) -> bool:
    """A global or default the function cannot see change: NumPy or math
    (the modules or their functions) and builtins."""
    import builtins
    import math
    import types
    if isinstance(value, types.ModuleType):
        return value is np or value is math or value.__name__.startswith("numpy.")
    if isinstance(value, np.ufunc):
        return True
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        mod = getattr(value, "__module__", None) or ""
        return mod == "builtins" or mod == "math" or mod.startswith("numpy") or (
            getattr(builtins, getattr(value, "__name__", ""), None) is value)
    return isinstance(value, type) and value.__module__ == "builtins"


def self_contained(fn) -> bool:
    """True when ``fn`` is a plain function with no closure, whose globals are
    only NumPy, math and builtins and whose defaults are immutable: its
    derivatives then depend on its arguments alone, and a cache keyed by the
    arguments is safe without a :func:`fingerprint`."""
    import builtins
    import types
    if type(fn) is not types.FunctionType or fn.__closure__:
        return False
    defaults = tuple(fn.__defaults__ or ()) + tuple((fn.__kwdefaults__ or {}).values())
    if not all(d is None or isinstance(d, (bool, int, float, complex, str)) or _fixed(d)
               for d in defaults):
        return False
    g = fn.__globals__
    missing = object()
    for name in _global_names(fn.__code__):
        value = g.get(name, missing)
        if value is missing:
            value = getattr(builtins, name, missing)
        if value is missing or not _fixed(value):
            return False
    return True
