"""The one authority on nesting.

Every tracer (Dual, HyperDual, Taylor, tape Var) carries the :class:`Level` of
the transform that made it. A primitive unwraps only the highest level among
its arguments and treats everything below as a constant; that is what keeps
``d/dx [x * d/dy (x + y)]`` free of perturbation confusion. Levels are ordered
by creation, so a transform started inside another always sits above it.

A tracer whose transform has finished ("leaked") is refused with an error
rather than silently treated as a constant.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

_order = itertools.count(1)


# ----------------------------------------------------------------------------
# the tracer test: a traced value is anything carrying a ``_level``
# ----------------------------------------------------------------------------
def is_traced(x) -> bool:
    """Whether ``x`` is a traced value (a tracer of any level, open or closed).

    >>> is_traced(1.0)
    False
    """
    return hasattr(x, "_level")


def level_of(x):
    """The :class:`Level` of a traced ``x``; None for a constant. (The
    per-primitive hot paths, ``bind`` and ``split_at``, spell this inline.)

    >>> level_of(1.0) is None
    True
    """
    return getattr(x, "_level", None)


class Level:
    """One level of differentiation: an order (for nesting) and an interpreter.

    Each interpreter is a subclass with typed state of its own and a
    ``process(prim, args, params)`` method: its rule for running ``prim`` when
    this level is the highest among ``args`` (JAX's ``Trace.process_primitive``).

    >>> class Echo(Level):
    ...     kind = "echo"
    ...     def process(self, prim, args, params):
    ...         return prim.impl(*args, **params)
    >>> Echo().kind
    'echo'
    """

    __slots__ = ("order", "active", "__weakref__")
    kind = "level"

    def __init__(self):
        self.order = next(_order)
        self.active = True

    def process(self, prim, args, params):
        raise NotImplementedError(f"{type(self).__name__} interprets no primitive")

    def __repr__(self) -> str:
        state = "" if self.active else ", closed"
        return f"Level({self.kind}#{self.order}{state})"


_state = threading.local()


def active_levels() -> list:
    """The stack of levels opened by running transforms in this thread."""
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


class new_level:
    """Open a level for the duration of one transform, and close it after.

    Closing (even on an exception) means a tracer that escapes the transform
    is detected the next time it meets a primitive. (A small class rather
    than a generator context manager: it is entered on every transform call.)

    >>> with new_level(Level()) as level:
    ...     level.active
    True
    """

    __slots__ = ("level",)

    def __init__(self, level: Level):
        self.level = level

    def __enter__(self) -> Level:
        stack = active_levels()
        if not stack and _outermost:
            _outermost[0]()
        stack.append(self.level)
        return self.level

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack = active_levels()
        stack.pop()
        self.level.active = False
        if not stack and _outermost:
            _outermost[1]()
        if exc_type is ValueError and isinstance(exc.__cause__, LostDerivativeError):
            # NumPy turns the error of float(tracer) in `buffer[i] = tracer` into
            # "setting an array element with a sequence" (a tracer has
            # __getitem__); the reason and the fix are in ours.
            raise exc.__cause__.with_traceback(tb) from None
        return False


# (enter, exit) called when a thread opens its first / closes its last level:
# dualad.core.convert swaps NumPy's conversion entry points meanwhile.
_outermost: list = []


def set_outermost_hooks(enter: Callable[[], None], exit: Callable[[], None]) -> None:
    _outermost[:] = [enter, exit]


class LostDerivativeError(TypeError):
    """A traced value was converted to a plain number or array (``float(x)``,
    ``np.asarray(x)``, ``buffer[i] = x``): its derivative would be lost."""


def persistent_level(key: str, make: Callable[[], Level]) -> Level:
    """A per-thread level that never closes (user-built Duals, HyperDuals,
    Taylors), made by ``make()`` on first use in each thread."""
    levels = getattr(_state, "persistent", None)
    if levels is None:
        levels = _state.persistent = {}
    level = levels.get(key)
    if level is None:
        level = levels[key] = make()
    return level


class LeakedTracerError(RuntimeError):
    """A traced value was used after the transform that made it had returned."""


def leaked(level: Level) -> LeakedTracerError:
    return LeakedTracerError(
        f"a traced value from a finished transform ({level!r}) was used again. "
        "Values computed inside jvp/grad/... must not be stored and reused "
        "outside that call; return them from the function instead.")


def lower_to(x, level):
    """An output leaf as the transform at ``level`` sees it.

    Why: a tape tensor made inside the transform lives at a still-active level
    above it; to the transform its value is its primal (e.g. a Var of
    ``level``), not a constant. Closed levels above are left alone (leaks).
    """
    while True:
        lv = level_of(x)
        if lv is None or lv.order <= level.order or not lv.active:
            return x
        x = x.primal


def split_at(level: Level, args, field: str, missing=None, primal: str = "primal"):
    """Split a primitive's arguments for the interpreter of ``level``: the
    values one level down, and each argument's ``field`` (its tangent,
    pattern, ...) or ``missing`` for arguments that are constants here."""
    primals, fields = [], []
    for a in args:
        if getattr(a, "_level", None) is level:
            primals.append(getattr(a, primal))
            fields.append(getattr(a, field))
        else:
            primals.append(a)
            fields.append(missing)
    return primals, fields
