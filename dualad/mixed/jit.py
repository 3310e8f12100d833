"""``da.jit``: a guarded compiled replay of any function or transform.

The first call for an input *signature* runs the function under the staging
interpreter (:mod:`dualad.mixed.replay`): every primitive the function and
the transforms inside it perform (primal, tangent and cotangent work alike)
is recorded at the bottom level, under every transform level, as one
straight-line program. Later calls with the same signature run that program:
a flat list of array operations (elementwise runs fused, see
:mod:`dualad.mixed.fuse`), with no tracer, tape or dispatch.

Never stale, never silently wrong
---------------------------------
A program is reused only when everything the recording depended on is
unchanged; the checks are:

* **signature** (the cache key): the pytree structure of ``(args, kwargs)``;
  for floating arrays and Python/NumPy floats (the *traced* inputs) their
  type, shape and dtype; every other argument (ints, strings, integer or
  boolean arrays, ...) by value (a content digest), as ``jax.jit``'s static
  arguments. An argument that cannot be digested (an opaque object) runs
  eagerly.
* **environment guards**, checked on every call before the replay: the
  closure cells, globals, defaults and bound ``self`` attributes the function
  reads, and those of the functions it calls, found through its code objects
  (``da.grad(f)`` reaches ``f``): arrays and scalars by content digest,
  functions, modules and other objects by identity. A failed guard re-records.
* **value guards inside the program**: the finiteness tests of the 0*inf
  guards (``safe_mul``) are re-checked where they were made; a changed answer
  records the new path (up to :data:`MAX_VARIANTS` programs per signature).
* **branches**: comparisons and other derivative-free functions are recorded
  (``np.where(x > 0, a, b)`` needs no guard); a read of a small traced value
  (``if x[0] > 0:`` reads one boolean) becomes a guard on that exact value
  (a changed outcome records the other path); a read of a larger one
  (``np.nonzero(x)``) makes the recording *impure*: that signature runs
  eagerly (``jitted.reasons`` says why), as does one whose program guards
  failed more than :data:`MAX_MISSES` times. Eager is always right.

What is not replayed: Python side effects (``print``, appending to a list,
counters) happen on the recording call only, as in ``jax.jit``. A mutable
object held by identity (a list, a dict, an object without ``__dict__``) is
not looked into beyond one level: mutating it in place without rebinding is
not seen (pass such values as arguments instead).

Cost: a hit costs the key (one pass over the argument leaves), one check per
guard (a dictionary lookup and an identity test; a content digest for
arrays in closures, O(bytes): pass large arrays as arguments), and the
program. Each function keeps at most ``maxsize`` signatures (LRU, default
:data:`MAX_SIGNATURES`), each with at most :data:`MAX_VARIANTS` programs.

Example::

    >>> import numpy as np, dualad as da
    >>> g = da.jit(da.grad(lambda x: np.sum(np.sin(x) * x)))
    >>> np.allclose(g(np.zeros(3)), 0.0), np.allclose(g(np.zeros(3)), 0.0)
    (True, True)
    >>> g.stats["replays"]
    1
"""
from __future__ import annotations

import functools
import types
from collections import deque
from collections.abc import Callable

import numpy as np

from dualad.core.backend import namespace_of
from dualad.core.tree import tree_flatten, tree_unflatten
from dualad.mixed.cache import LRU
from dualad.mixed.compile import compile_program
from dualad.mixed.envguard import guard_function
from dualad.mixed.fingerprint import digest
from dualad.mixed.replay import record

__all__ = ["jit", "Jitted", "MAX_SIGNATURES", "MAX_VARIANTS"]

MAX_SIGNATURES = 64     # signatures remembered per jitted function (LRU)
MAX_VARIANTS = 4        # programs per signature (finiteness-guard variants)
MAX_MISSES = 8          # program-guard failures before a signature runs eagerly

_FLOAT_SCALARS = (float, complex, np.floating, np.complexfloating)


class _Entry:
    """What one signature remembers: the environment guards, the programs
    recorded for it (``None``: impure, run eagerly), and the output tree."""

    __slots__ = ("guards", "programs", "out_tree", "reason", "misses", "single")

    def __init__(self, guards):
        self.guards = guards
        self.misses = 0
        self.single = False         # the output is one leaf (no tree to rebuild)
        self.programs: list | None = []
        self.out_tree = None
        self.reason: str | None = None


def _is_traced_input(leaf) -> bool:
    """Floating arrays and scalars are traced (recorded as inputs); the rest
    of an argument is static (part of the key by value)."""
    t = type(leaf)
    if t is np.ndarray:
        return leaf.dtype.kind in "fc"
    if t is float or isinstance(leaf, _FLOAT_SCALARS):
        return True
    xp = namespace_of(leaf)
    return xp is not np and getattr(leaf, "dtype", None) is not None and leaf.dtype.kind in "fc"


class Jitted:
    """A function wrapped by :func:`jit` (see the module notes).

    Attributes: ``stats`` (counts of ``records``, ``replays``, ``eager``
    calls and ``guard_misses``) and ``reasons`` (why signatures run eagerly,
    or were not fused: the latest 32).
    """

    def __init__(self, fn: Callable, *, maxsize: int = MAX_SIGNATURES, fuse: bool = True):
        if not callable(fn):
            raise TypeError(f"da.jit needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.__wrapped__ = fn
        self.cache = LRU(maxsize)
        self.stats = {"records": 0, "replays": 0, "eager": 0, "guard_misses": 0}
        self.reasons: deque = deque(maxlen=32)       # the latest reasons only
        self.fuse = fuse
        self._last = None            # (key, entry) of the latest fast-path hit
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args, **kwargs):
        if not kwargs:
            # Fast path: positional float arrays and floats only (the key is
            # the one the general path makes for them).
            key = [_flat_tree(len(args))]
            for a in args:
                t = type(a)
                if t is float:
                    key.append(_FLOAT_KEY)
                elif t is np.ndarray and a.dtype.kind in "fc":
                    key.append((t, a.shape, a.dtype))
                else:
                    break
            else:
                key = tuple(key)
                # The signature hit last: an equality test of the same
                # objects instead of a hash and an LRU lookup (W7: ~0.5 us).
                last = self._last
                if last is not None and last[0] == key:
                    entry = last[1]
                else:
                    entry = self.cache.get(key)
                    if entry is not None:
                        self._last = (key, entry)       # one assignment: thread-safe
                if entry is not None and entry.programs and entry.guards():
                    for program in entry.programs:
                        out = program(*args)
                        if out is not None:
                            self.stats["replays"] += 1
                            if program.const_outputs:
                                out = _fresh(out, program)
                            return out[0] if entry.single else tree_unflatten(
                                entry.out_tree, out)
        leaves, treedef = tree_flatten((args, kwargs) if kwargs else args)
        dyn, key = [], [_TreeKey(treedef)]
        for leaf in leaves:
            if hasattr(leaf, "_level"):
                # Inside a transform or another recording: run the function
                # itself (the outer interpreter records or differentiates it).
                return self.fn(*args, **kwargs)
            if _is_traced_input(leaf):
                dyn.append(leaf)
                key.append((type(leaf), getattr(leaf, "shape", ()), getattr(leaf, "dtype", None)))
            else:
                key.append(digest(leaf))
        try:
            key = tuple(key)
            entry = self.cache.get(key)
        except TypeError:                       # an undigestable argument
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        if entry is not None:
            if entry.programs is None:
                self.stats["eager"] += 1
                return self.fn(*args, **kwargs)
            if entry.guards is not None and entry.guards():
                for program in entry.programs:
                    out = program(*dyn)
                    if out is not None:
                        self.stats["replays"] += 1
                        return tree_unflatten(entry.out_tree, _fresh(out, program))
            self.stats["guard_misses"] += 1
            if entry.guards is None or not entry.guards():
                entry = None                    # the environment changed: start over
            else:
                entry.misses += 1
                if entry.misses > MAX_MISSES:   # value guards that keep failing
                    entry.programs = None
                    entry.reason = (f"{MAX_MISSES} program guards failed for one signature "
                                    "(values read while recording keep changing); runs eagerly")
                    self.reasons.append(entry.reason)
                    self.stats["eager"] += 1
                    return self.fn(*args, **kwargs)
        if entry is None:
            entry = _Entry(guard_function(self.fn))
            self.cache.put(key, entry)
            self._last = None
        return self._record(entry, args, kwargs, leaves, treedef)

    def _record(self, entry: _Entry, args, kwargs, leaves, treedef):
        traced = [i for i, leaf in enumerate(leaves) if _is_traced_input(leaf)]
        box = []

        def staged_call(*staged):
            call = list(leaves)
            for i, s in zip(traced, staged):
                call[i] = s
            rebuilt = tree_unflatten(treedef, call)
            a, k = rebuilt if kwargs else (rebuilt, {})
            out = self.fn(*a, **k)
            box.append(tree_flatten(out)[1])
            return out

        if entry.guards is None:
            entry.programs = None
            entry.reason = "the function reaches too many bindings to guard"
            self.reasons.append(entry.reason)
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        try:
            values, program = record(staged_call, tuple(leaves[i] for i in traced))
        except Exception as exc:        # noqa: BLE001  (eager decides: its answer or its error)
            entry.programs = None
            entry.reason = f"recording failed ({type(exc).__name__}: {exc}); runs eagerly"
            self.reasons.append(entry.reason)
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        self.stats["records"] += 1
        entry.out_tree = box[0]
        entry.single = entry.out_tree.kind == "leaf"
        if program is None:
            entry.programs = None
            entry.reason = "a traced value was read (a branch or a conversion)"
            self.reasons.append(entry.reason)
        else:
            entry.programs.append(self._compile(program, [leaves[i] for i in traced], values))
            del entry.programs[:-MAX_VARIANTS]
        return tree_unflatten(entry.out_tree, values)

    def _compile(self, program, inputs, values):
        """The compiled program, with fused kernels when they reproduce the
        recorded values (a kernel that cannot compile, or disagrees beyond
        rounding, leaves the plain program)."""
        plain = compile_program(program)
        if not self.fuse or not all(type(v) is np.ndarray or isinstance(v, (float, np.generic))
                                    for v in inputs):
            return plain            # (the fused kernels are CPU Numba code: NumPy inputs)
        from dualad.mixed.fuse import fuse_ops
        from dualad.mixed.fuse_index import fuse_region_ops
        from dualad.mixed.fuse_lap import fold_bias
        from dualad.mixed.rewrite import rewrite_products
        try:
            ops = rewrite_products(program.ops, program.meta)
            ops = fold_bias(list(ops), program.outputs, program.meta)
            ops = fuse_region_ops(ops, program.outputs, program.meta)
            ops = fuse_ops(ops, program.outputs, program.meta)
            if len(ops) == len(program.ops) and all(
                    a is b for a, b in zip(ops, program.ops)):
                return plain
            fused = compile_program(program, ops)
            got = fused(*inputs)
        except Exception as exc:            # noqa: BLE001  (Numba missing or refusing)
            self.reasons.append(f"not fused: {type(exc).__name__}: {exc}")
            return plain
        if got is None or not all(_agree(a, b) for a, b in zip(got, values)):
            self.reasons.append("not fused: the fused program disagreed with the recording")
            return plain
        return fused

    def __get__(self, obj, objtype=None):
        """Jitted methods bind like functions."""
        return self if obj is None else types.MethodType(self, obj)

    def __repr__(self) -> str:
        return f"jit({getattr(self.fn, '__name__', self.fn)!r})"


_FLAT: dict = {}


_FLOAT_KEY = (float, (), None)


class _TreeKey:
    """A treedef in a cache key, its hash computed once (hashing a TreeDef
    walks it: ~1 us per call on the hit path)."""

    __slots__ = ("td", "h")

    def __init__(self, td):
        self.td, self.h = td, hash(td)

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other) -> bool:
        return self is other or (type(other) is _TreeKey and self.h == other.h
                                 and self.td == other.td)


def _flat_tree(n: int) -> _TreeKey:
    """The key of the treedef of a flat tuple of ``n`` leaves (made once per ``n``)."""
    td = _FLAT.get(n)
    if td is None:
        td = _FLAT[n] = _TreeKey(tree_flatten((0,) * n)[1])
    return td


def _fresh(out: list, program) -> list:
    """Output leaves the program holds as constants are copied (a caller
    mutating a returned array must not change the next call's result)."""
    consts = getattr(program, "const_outputs", ())
    if consts:
        out = list(out)
        for i in consts:
            if type(out[i]) is np.ndarray:
                out[i] = out[i].copy()
    return out


def _agree(a, b) -> bool:
    """Equal up to the rounding a fused kernel may differ by (an ulp or two
    in sin/cos): 1e-14 relative to the largest magnitude."""
    if hasattr(a, "toarray") and hasattr(b, "toarray"):        # SciPy sparse results
        # (never densified: a 10^5 x 10^5 CSR Hessian would need 75 GB)
        if a.shape != b.shape:
            return False
        diff, scale = abs(a - b), abs(b)
        return diff.nnz == 0 or bool(diff.max() <= 1e-14 * (scale.max() if scale.nnz else 0.0))
    if type(a) is not np.ndarray or type(b) is not np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
        return bool(np.array_equal(a, b, equal_nan=True)
                    or np.allclose(a, b, rtol=1e-14, atol=0, equal_nan=True))
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return bool(np.all(np.abs(a - b) <= 1e-14 * scale) or np.array_equal(a, b, equal_nan=True))


def jit(fn: Callable | None = None, *, maxsize: int = MAX_SIGNATURES,
        fuse: bool = True) -> Jitted:
    """Wrap ``fn`` (any function, or a transform such as ``da.grad(f)``) so
    that repeated calls replay a recorded program (see the module notes for
    the guarantees). ``maxsize``: signatures kept per function (LRU);
    ``fuse``: compile runs of elementwise operations into one kernel.

    >>> import numpy as np, dualad as da
    >>> f = da.jit(lambda x: np.sin(x) ** 2 + np.cos(x) ** 2)
    >>> float(f(1.0)), float(f(2.0))
    (1.0, 1.0)
    """
    if fn is None:
        return lambda f: Jitted(f, maxsize=maxsize, fuse=fuse)
    return Jitted(fn, maxsize=maxsize, fuse=fuse)
