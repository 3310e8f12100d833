"""Hyper-dual numbers: exact second derivatives in one forward pass.

``HyperDual(p, e1, e2, e12)`` stands for ``p + e1 eps1 + e2 eps2 + e12 eps1 eps2``
with ``eps1**2 = eps2**2 = 0``: after ``y = f(x)``, ``y.e12`` holds
``f''(x) e1 e2 + f'(x) e12``. No rule is written for it: its interpreter turns
each hyper-dual argument into NESTED duals at two private levels A < B,

    ``Dual_B(Dual_A(p, e1), Dual_A(e2, e12))``,

binds the primitive (so the registry's jvp rules run, differentiating
themselves at level A) and unpacks the result. Parts that do not arise are
symbolic zeros, materialised only when read.

Batched directions (a whole Hessian in one vectorised pass): with ``S`` the
primal's shape, ``e1`` may be ``(n1,) + S``, ``e2`` ``(n2,) + S`` and then
``e12`` is ``(n1, n2) + S``: ``e12[i, j]`` pairs direction ``i`` of ``e1``
with direction ``j`` of ``e2``. This is exactly how nested duals stack lead
axes: the inner level's (A, ``e1``) tangent axes come first.

Example::

    >>> import numpy as np
    >>> from dualad.forward.hyperdual import HyperDual
    >>> y = np.sin(HyperDual(0.5, 1.0, 1.0, 0.0))
    >>> round(float(y.e12), 6)          # d2/dx2 sin(x) = -sin(0.5)
    -0.479426
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from dualad.core.backend import namespace_of, peel, result_float_dtype
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, new_level, persistent_level
from dualad.core.registry import bind, shape_of
from dualad.core.zero import Zero
from dualad.forward.dual import Dual, DualLevel

__all__ = ["HyperDual", "hyperdual_level"]


# ============================================================================
# the HyperDual tracer
# ============================================================================
def _lead(part, primal_shape: tuple, what: str) -> tuple:
    s = shape_of(part)
    if s == primal_shape:
        return ()
    if s[1:] == primal_shape:
        return s[:1]
    raise ValueError(f"{what} shape {s} must equal the primal shape {primal_shape} "
                     f"(or be (n,) + {primal_shape} for a batch of n directions)")


class HyperDual(Tracer):
    """A primal with two first-order parts and their mixed second-order part.

    ``e1``: shape ``S`` or ``(n1,) + S``; ``e2``: ``S`` or ``(n2,) + S``;
    ``e12``: ``lead1 + lead2 + S``, i.e. ``(n1, n2) + S`` when both are batched.
    ``level``: leave it out for values built by hand; inside another transform
    (e.g. under ``grad``) pass the level of a ``with hyperdual_level()`` block.

    >>> import numpy as np
    >>> x = HyperDual(np.array([1.0, 2.0]), np.eye(2), np.eye(2), np.zeros((2, 2, 2)))
    >>> ((x ** 3).sum()).e12          # the Hessian of sum(x**3): diag(6 x)
    array([[ 6.,  0.],
           [ 0., 12.]])
    """

    __slots__ = ("primal", "_e1", "_e2", "_e12", "_lead1", "_lead2", "_level")

    def __init__(self, primal, e1, e2, e12, level=None):
        # Python-number parts become 0-d arrays: rules reshape tangents to
        # broadcast them (a float part times a matrix would fail otherwise).
        e1, e2, e12 = (np.asarray(e) if isinstance(e, (int, float)) else e for e in (e1, e2, e12))
        s = shape_of(primal)
        lead1, lead2 = _lead(e1, s, "e1"), _lead(e2, s, "e2")
        if shape_of(e12) != lead1 + lead2 + s:
            raise ValueError(f"e12 shape {shape_of(e12)} must be {lead1 + lead2 + s} "
                             f"(lead axes of e1, then of e2, then the primal shape {s})")
        self.primal, self._e1, self._e2, self._e12 = primal, e1, e2, e12
        self._lead1, self._lead2 = lead1, lead2
        # Built by hand: the persistent level. Inside a transform, pass the
        # level of ``hyperdual_level()`` so it sits above the transform's.
        self._level = level if level is not None else _user_level()

    @classmethod
    def _make(cls, primal, e1, e2, e12, lead1: tuple, lead2: tuple, level) -> HyperDual:
        h = cls.__new__(cls)
        h.primal, h._e1, h._e2, h._e12 = primal, e1, e2, e12
        h._lead1, h._lead2, h._level = lead1, lead2, level
        return h

    def _zeros(self, lead: tuple):
        v = peel(self.primal)
        return namespace_of(v).zeros(lead + shape_of(v), dtype=result_float_dtype(v))

    @property
    def e1(self):
        return self._zeros(self._lead1) if self._e1 is Zero else self._e1

    @property
    def e2(self):
        return self._zeros(self._lead2) if self._e2 is Zero else self._e2

    @property
    def e12(self):
        return self._zeros(self._lead1 + self._lead2) if self._e12 is Zero else self._e12

    def __repr__(self) -> str:
        return (f"HyperDual(primal={peel(self.primal)!r}, e1={self._e1!r}, "
                f"e2={self._e2!r}, e12={self._e12!r})")


# ============================================================================
# levels: the hyper-dual level carries its two private dual levels
# ============================================================================
class HyperDualLevel(Level):
    """The hyper-dual interpreter: its values become nested Duals at its two
    private dual levels ``a`` (e1) and ``b`` (e2), the primitive runs on those,
    and the result is repackaged. No derivative rule of its own."""

    __slots__ = ("a", "b")
    kind = "hyperdual"

    def __init__(self, a: Level | None = None, b: Level | None = None):
        super().__init__()
        # Made right after this level, so both sit above every level that can
        # meet it when it is the top one.
        self.a = a if a is not None else DualLevel()
        self.b = b if b is not None else DualLevel()

    def process(self, prim, args, params):
        a, b = self.a, self.b
        nested, lead1, lead2 = [], (), ()
        for x in args:
            if getattr(x, "_level", None) is self:
                if len(x._lead1) > len(lead1):
                    lead1 = x._lead1
                if len(x._lead2) > len(lead2):
                    lead2 = x._lead2
                nested.append(_to_nested(x, a, b))
            else:
                nested.append(x)
        out = bind(prim, *nested, **params)
        if prim.n_outputs == 1:
            return _from_nested(out, self, lead1, lead2)
        return tuple(_from_nested(o, self, lead1, lead2) for o in out)


def _user_level() -> Level:
    """The per-thread level of user-built HyperDuals (never closes)."""
    return persistent_level("hyperdual", HyperDualLevel)


@contextmanager
def hyperdual_level() -> Iterator[Level]:
    """A hyper-dual level for one transform (closed, with its dual levels, after)."""
    a, b = DualLevel(), DualLevel()
    with new_level(HyperDualLevel(a, b)) as level, new_level(a), new_level(b):
        yield level


# ============================================================================
# the interpreter: hyper-dual -> nested duals -> bind -> hyper-dual
# ============================================================================
def _to_nested(h: HyperDual, a: Level, b: Level):
    e1, e2, e12 = h._e1, h._e2, h._e12
    if e2 is Zero and e12 is not Zero:
        e2 = h.e2            # a mixed part needs the e2 part it perturbs
    inner = h.primal if e1 is Zero else Dual._make(h.primal, e1, a)
    if e2 is Zero:
        return inner
    tangent = e2 if e12 is Zero else Dual._make(e2, e12, a)
    return Dual._make(inner, tangent, b)


def _split(x, level: Level):
    """(primal, tangent) of ``x`` at ``level``; tangent Zero when not traced there."""
    if getattr(x, "_level", None) is level:
        return x.primal, x.tangent
    return x, Zero


def _from_nested(out, level: Level, lead1: tuple, lead2: tuple):
    a, b = level.a, level.b
    inner, outer = _split(out, b)
    p, e1 = _split(inner, a)
    e2, e12 = (Zero, Zero) if outer is Zero else _split(outer, a)
    if e1 is Zero and e2 is Zero and e12 is Zero:
        return p
    return HyperDual._make(p, e1, e2, e12, lead1, lead2, level)
