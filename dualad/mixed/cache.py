"""The per-function caches of mixed/: one owner, bounded stores, safe keys.

Everything mixed/ remembers about a user function lives here, in a
:class:`FunctionCache` per function:

============  =====  ===========================================================
store         size   holds
============  =====  ===========================================================
``patterns``  64     sparsity patterns (and the readers that made one volatile)
``colorings`` 64     colorings; each keeps its recorded passes (``programs``)
``plans``     32     the planner's plans
============  =====  ===========================================================

and, process-wide, :data:`CODE_GLOBALS` (1024 code objects: the global
names a function's code reads, for the fingerprint's self-containment test).

Each store is a least-recently-used map (:class:`LRU`): a function called
with ever new held-fixed values (``da.hessian(f)(x, t)`` with a new float
``t`` per call) reuses at most that many entries, it never grows without
bound. Functions are held weakly (a ``WeakKeyDictionary``): their caches go
when they do. Callables that cannot be weakly referenced (ufuncs, some
builtins) are held strongly in a bounded LRU of :data:`MAX_STRONG`
functions, keyed by the object itself, never by a bare ``id()`` that a
later object could reuse.

Keys: :func:`signature_key` (types and shapes only) where a held-fixed
value cannot change the result (plans); :func:`content_key` digests where it
can (their zero structure, integer/bool arrays in full, scalars by value),
used with the function's structure fingerprint by
:func:`dualad.mixed.patterns.pattern_key`.

Example::

    >>> import numpy as np
    >>> f = lambda x: np.sum(x ** 2)
    >>> c = cache_for(f)
    >>> c.plans.put("k", 1); c.plans.get("k")
    1
    >>> clear_cache(); cache_for(f).plans.get("k") is None
    True
"""
from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict

import numpy as np

from dualad.core.backend import dtype_of
from dualad.core.registry import shape_of
from dualad.core.tree import tree_flatten

__all__ = ["LRU", "FunctionCache", "cache_for", "clear_cache", "content_key",
           "signature_key", "MAX_STRONG", "CODE_GLOBALS"]

MAX_PATTERNS = 64
MAX_COLORINGS = 64
MAX_PLANS = 32
MAX_STRONG = 64        # functions that cannot be weakly referenced
MAX_CODE = 1024        # code objects whose global names are remembered


class LRU:
    """A bounded map that forgets its least recently used entry; safe to
    share between threads (one lock per store).

    >>> c = LRU(2)
    >>> c.put("a", 1); c.put("b", 2); _ = c.get("a"); c.put("c", 3)
    >>> sorted(c.keys())
    ['a', 'c']
    """

    __slots__ = ("maxsize", "_data", "_lock")

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, default=None):
        # No lock on the read (da.jit's hit path: the lock cost as much as
        # the rest of the lookup): each step is one atomic dict operation,
        # and a key evicted in between is just a miss or an older order.
        data = self._data
        try:
            value = data[key]
        except KeyError:
            return default
        try:
            data.move_to_end(key)
        except KeyError:
            pass
        return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def pop(self, key, default=None):
        with self._lock:
            return self._data.pop(key, default)

    def keys(self) -> list:
        with self._lock:
            return list(self._data.keys())

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class FunctionCache:
    """What mixed/ remembers about one function (see the module notes)."""

    __slots__ = ("patterns", "colorings", "plans")

    def __init__(self):
        self.patterns = LRU(MAX_PATTERNS)
        self.colorings = LRU(MAX_COLORINGS)
        self.plans = LRU(MAX_PLANS)

    def __len__(self) -> int:
        return len(self.patterns) + len(self.colorings) + len(self.plans)


class _Held:
    """A strongly held key compared by identity (the object stays alive with
    the entry, so its identity cannot be reused by another object)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Held) and other.obj is self.obj


_WEAK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STRONG = LRU(MAX_STRONG)
# code object -> the global names it (and its nested code) uses: what
# dualad.mixed.fingerprint.self_contained reads (a code object never changes).
CODE_GLOBALS = LRU(MAX_CODE)


def cache_for(fn) -> FunctionCache:
    """The cache of ``fn`` (made on first use)."""
    try:
        c = _WEAK.get(fn)
        if c is None:
            c = _WEAK[fn] = FunctionCache()
        return c
    except TypeError:                   # not weakly referenceable (or unhashable)
        key = _Held(fn)
        c = _STRONG.get(key)
        if c is None:
            c = FunctionCache()
            _STRONG.put(key, c)
        return c


def clear_cache() -> None:
    """Forget every cached pattern, coloring, recorded pass and plan.

    >>> clear_cache()
    """
    _WEAK.clear()
    _STRONG.clear()
    CODE_GLOBALS.clear()


# ============================================================================
# keys
# ============================================================================
def _leaf_signature(v) -> tuple:
    """Type, shape and dtype of a leaf (no values)."""
    if hasattr(v, "shape") or hasattr(v, "_level"):
        return ("array", shape_of(v), dtype_of(v).str)
    return (type(v).__name__,)


def content_key(value) -> object:
    """A content key for a held-fixed argument, what a pattern can depend on:
    float arrays through their zeros, integer and boolean arrays (indices,
    masks) in full, scalars by value, other objects by identity (held)."""
    v = value
    if isinstance(v, (bool, int, float, complex, str, type(None))):
        return (type(v).__name__, v)
    if isinstance(v, np.ndarray):
        data = np.packbits(v != 0) if v.dtype.kind in "fc" else np.ascontiguousarray(v)
        return (v.shape, v.dtype.str, hashlib.blake2b(data.tobytes(), digest_size=16).digest())
    if isinstance(v, np.generic):
        return (v.dtype.str, v.item())
    leaves, td = tree_flatten(v)
    if len(leaves) == 1 and leaves[0] is v:
        return _Held(v)
    return (str(td), tuple(content_key(leaf) for leaf in leaves))


def signature_key(kind: str, args: tuple, positions: tuple) -> tuple:
    """A key from types and shapes only: for results a held-fixed value
    cannot change (plans: a stale plan is at worst a slower mode).

    >>> signature_key("k", (np.ones(2), 0.5), (0,)) == signature_key("k", (np.ones(2), 7.0), (0,))
    True
    """
    parts = []
    for a in args:
        if type(a) is np.ndarray:               # the common case, without a flatten
            parts.append(("array", a.shape, a.dtype.str))
            continue
        leaves, td = tree_flatten(a)
        parts.append((str(td), tuple(_leaf_signature(v) for v in leaves)))
    return (kind, tuple(positions), tuple(parts))
