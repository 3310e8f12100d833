"""Environment guards for ``da.jit``: what a function reads besides its
arguments, and a cheap test that none of it changed.

:func:`environment_guards` walks a function and every function it reaches
(closure cells, globals, defaults, ``functools.partial`` arguments, bound
``self``, callable objects, ``da.jit`` wrappers) and returns a tuple of
zero-argument checks. Each check re-reads one binding and compares it with
what the recording saw:

* arrays (and lists, tuples, dicts of them), NumPy scalars and Python
  numbers, strings: by content digest (:func:`dualad.mixed.fingerprint.digest`)
  and, for arrays, by identity too (a recorded program holds the array it
  saw as a constant);
* every other object (functions, modules, classes, instances): by identity;
  and the attributes that the code names (``self.w``, ``config.scale``) are
  guarded one level down, by the same rules.

Library code (dualad, NumPy, SciPy, math, builtins...) is taken as fixed:
only the closure cells of its functions are followed (that is how
``da.grad(f)`` reaches ``f``).

>>> import numpy as np
>>> def scaled(c):
...     return lambda x: c * x
>>> c = np.ones(2)
>>> guards = environment_guards(scaled(c))
>>> all(g() for g in guards)
True
>>> c[0] = 2.0
>>> all(g() for g in guards)
False
"""
from __future__ import annotations

import builtins
import dis
import functools
import types

import numpy as np

from dualad.mixed.cache import LRU
from dualad.mixed.fingerprint import _Unkeyable, digest

__all__ = ["environment_guards", "guard_function", "MAX_GUARDS"]

MAX_GUARDS = 4096       # beyond this the function runs eagerly (see jit.py)
_MISSING = object()
_LIBRARIES = frozenset(("dualad", "numpy", "scipy", "math", "builtins", "numba", "jax",
                        "cupy", "functools", "operator", "itertools", "collections", "typing"))
_GLOBAL_OPS = frozenset(("LOAD_GLOBAL", "LOAD_NAME"))
_code_names = LRU(1024)     # code -> (global names, attribute names)


class GuardLimit(Exception):
    """The function reaches more bindings than :data:`MAX_GUARDS`."""


def _names(code) -> tuple[frozenset, frozenset]:
    """The global names and the attribute names ``code`` (and the code
    nested in it) uses."""
    got = _code_names.get(code)
    if got is None:
        glob, attrs, stack = set(), set(), [code]
        while stack:
            c = stack.pop()
            attrs.update(c.co_names)
            for ins in dis.get_instructions(c):
                if ins.opname in _GLOBAL_OPS:
                    glob.add(ins.argval)
            stack.extend(k for k in c.co_consts if hasattr(k, "co_code"))
        got = (frozenset(glob), frozenset(attrs))
        _code_names.put(code, got)
    return got


def _is_library(obj) -> bool:
    mod = getattr(obj, "__module__", None)
    if mod is None and isinstance(obj, types.ModuleType):
        mod = obj.__name__
    if not isinstance(mod, str):
        return False
    return mod.partition(".")[0] in _LIBRARIES


def _by_content(value) -> bool:
    """Whether ``value`` is guarded by its digest (arrays, numbers, strings
    and containers of only those); a container holding a function or another
    object is guarded by identity and followed instead."""
    return _keyable(digest(value))


def _keyable(d) -> bool:
    if isinstance(d, _Unkeyable):
        return False
    return all(_keyable(e) for e in d) if type(d) is tuple else True


class _Walker:
    """Collects the guards as Python boolean expressions over named objects
    (``ns``): :func:`guard_function` compiles them into one function, so a
    hit costs a few attribute reads and identity tests per guard, not a
    closure call each."""

    __slots__ = ("checks", "seen", "ns")

    def __init__(self):
        self.checks: list = []
        self.seen: set = set()
        self.ns: dict = {"_M": _MISSING, "_digest": digest, "_item": _item,
                         "_global": _global, "_cell": _cell}

    def name(self, obj) -> str:
        n = f"o{len(self.ns)}"
        self.ns[n] = obj
        return n

    # -- one binding: a check, then follow what it holds ---------------------
    def bind(self, get: str, value, attrs=frozenset()) -> None:
        """Guard the binding read by the expression ``get`` (now ``value``)
        and follow it; ``attrs``: attribute names the reading code uses on it."""
        if len(self.checks) >= MAX_GUARDS:
            raise GuardLimit
        if value is _MISSING:
            self.checks.append(f"{get} is _M")
            return
        if _by_content(value):
            want = self.name(digest(value))
            t = type(value)
            if _plain(value):
                # digest(v) == (type(v), v): the same test without the call
                self.checks.append(f"(_v := {get}).__class__ is {self.name(t)} "
                                   f"and _v == {self.name(value)}")
            elif t is tuple and len(value) <= 8 and all(_plain(e) for e in value):
                # e.g. argnums=(0,): the digest of a small tuple costs ~1.5 us
                items = "".join(f" and _v[{i}].__class__ is {self.name(type(e))}"
                                for i, e in enumerate(value))
                self.checks.append(f"(_v := {get}).__class__ is tuple and _v == "
                                   f"{self.name(value)}{items}")
            elif isinstance(value, (np.ndarray, list, dict)):
                self.checks.append(f"(_v := {get}) is {self.name(value)} "
                                   f"and _digest(_v) == {want}")
            else:
                self.checks.append(f"_digest({get}) == {want}")
            return
        v = self.name(value)
        self.checks.append(f"{get} is {v}")
        if type(value) in (list, tuple, dict):      # e.g. a dict of functions
            self.checks.append(f"len({v}) == {len(value)}")
            keys = list(value) if type(value) is dict else range(len(value))
            for k in keys:
                self.bind(f"_item({v}, {self.name(k)})", value[k])
        else:
            self.follow(value, attrs)

    def follow(self, obj, attrs=frozenset()) -> None:
        if id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            self.function(obj)
        elif isinstance(obj, types.MethodType):
            self.follow(obj.__func__)
            self.follow(obj.__self__, _names(obj.__func__.__code__)[1]
                        if hasattr(obj.__func__, "__code__") else frozenset())
        elif isinstance(obj, functools.partial):
            self.follow(obj.func)
            p = self.name(obj)
            for i, a in enumerate(obj.args):
                self.bind(f"_item({p}.args, {i})", a)
            for k, a in obj.keywords.items():
                self.bind(f"{p}.keywords.get({self.name(k)}, _M)", a)
        elif isinstance(obj, (type, types.ModuleType, types.BuiltinFunctionType, np.ufunc)):
            if isinstance(obj, types.ModuleType) and not _is_library(obj):
                self.attributes(obj, attrs)
        elif hasattr(obj, "fn") and type(obj).__name__ == "Jitted":
            self.follow(obj.fn)
        elif not _is_library(type(obj)):
            call = vars(type(obj)).get("__call__")
            if isinstance(call, types.FunctionType):
                attrs = attrs | _names(call.__code__)[1]
                self.follow(call)
            self.attributes(obj, attrs)

    def attributes(self, obj, attrs) -> None:
        """Guard the entries of ``obj.__dict__`` that the code names."""
        d = getattr(obj, "__dict__", None)
        if not isinstance(d, dict) or not attrs:
            return
        dn = self.name(d)
        for name in sorted(attrs):
            if name in d:
                self.bind(f"{dn}.get({name!r}, _M)", d[name])

    def function(self, fn: types.FunctionType) -> None:
        cells = fn.__closure__ or ()
        glob, attrs = _names(fn.__code__)
        for cell in cells:
            try:
                value = cell.cell_contents
            except ValueError:
                value = _MISSING
            c = self.name(cell)
            # (an emptied cell raises: the compiled check then says False)
            self.bind(f"_cell({c})" if value is _MISSING else f"{c}.cell_contents",
                      value, attrs)
        if _is_library(fn):
            return                    # library code: only its closure is the user's
        g = self.name(fn.__globals__)
        for name in sorted(glob):
            value = _global(fn.__globals__, name)
            if name in fn.__globals__:      # one dict lookup (a deleted name misses)
                self.bind(f"{g}.get({name!r}, _M)", value, attrs)
            else:
                self.bind(f"_global({g}, {name!r})", value, attrs)
        f = self.name(fn)
        if fn.__defaults__:
            for i, d in enumerate(fn.__defaults__):
                self.bind(f"{f}.__defaults__[{i}]", d, attrs)
        for k, d in (fn.__kwdefaults__ or {}).items():
            self.bind(f"({f}.__kwdefaults__ or {{}}).get({k!r}, _M)", d, attrs)


_PLAIN = frozenset((bool, int, float, complex, str, bytes, type(None)))


def _plain(v) -> bool:
    """A value whose digest is ``(type, value)`` and equal to itself (no NaN)."""
    return type(v) in _PLAIN and v == v


def _item(container, key):
    try:
        return container[key]
    except (KeyError, IndexError):
        return _MISSING


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return _MISSING


def _global(g: dict, name: str):
    value = g.get(name, _MISSING)
    if value is _MISSING:
        value = getattr(builtins, name, _MISSING)
    return value


def _walk(fn) -> _Walker | None:
    w = _Walker()
    try:
        w.follow(fn)
    except GuardLimit:
        return None
    return w


def environment_guards(fn) -> tuple | None:
    """The checks guarding everything ``fn`` reads besides its arguments (see
    the module notes), one zero-argument callable per binding; ``None`` when
    there are more than :data:`MAX_GUARDS` (the caller then runs ``fn``
    eagerly)."""
    w = _walk(fn)
    if w is None:
        return None
    return tuple(_compile([c], w.ns) for c in w.checks)


def _compile(checks: list, ns: dict):
    """One function testing ``checks`` in order; a binding that cannot be
    read any more (an emptied cell, a removed default) fails the guard."""
    lines = ["def check():", "    try:", "        pass"]
    lines += [f"        if not ({c}): return False" for c in checks]
    lines += ["    except (ValueError, LookupError, TypeError, AttributeError):",
              "        return False", "    return True"]
    ns = dict(ns)
    exec(compile("\n".join(lines), "<dualad.jit guards>", "exec"), ns)   # noqa: S102
    return ns["check"]


def guard_function(fn):
    """All of :func:`environment_guards` as one compiled function returning
    whether every check holds (``None``: too many bindings to guard).

    >>> import numpy as np
    >>> def scaled(c):
    ...     return lambda x: c * x
    >>> c = np.ones(2)
    >>> check = guard_function(scaled(c))
    >>> check()
    True
    >>> c[1] = 3.0
    >>> check()
    False
    """
    w = _walk(fn)
    if w is None:
        return None
    check = _compile(w.checks, w.ns)
    check.n_checks = len(w.checks)
    return check
