"""Training utilities in MindSpore's style: loss scaling, overflow checks and
gradient clipping by global norm.

All of them take any pytree (tuple, list, dict) of arrays, Python floats or
traced values, and give back the same structure; ``None`` leaves pass through.

>>> import numpy as np
>>> from dualad.compat.amp import StaticLossScaler, all_finite, clip_by_global_norm
>>> scaler = StaticLossScaler(1024.0)
>>> grads = scaler.unscale((np.array([2048.0, 4096.0]),))
>>> grads, all_finite(grads)
((array([2., 4.]),), True)
>>> clip_by_global_norm((np.array([3.0]), np.array([4.0])))
(array([0.6]), array([0.8]))
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from dualad.core.backend import all_finite_value
from dualad.core.tree import tree_flatten, tree_unflatten

__all__ = ["StaticLossScaler", "DynamicLossScaler", "all_finite", "clip_by_global_norm"]


def _map(fn, tree):
    leaves, td = tree_flatten(tree)
    return tree_unflatten(td, [None if x is None else fn(x) for x in leaves])


def _check_scale(scale) -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise TypeError(f"the loss scale must be a number, got {type(scale).__name__}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"the loss scale must be positive and finite, got {value}")
    return value


# ============================================================================
# Loss scalers
# ============================================================================
class StaticLossScaler:
    """A fixed loss scale: ``scale(loss)`` multiplies, ``unscale(grads)`` divides.

    ``scale`` works inside a differentiated function (the scale then flows
    through the chain rule into every gradient).

    >>> import numpy as np, dualad as da
    >>> s = da.amp.StaticLossScaler(8.0)
    >>> g = da.grad(lambda x: s.scale((x ** 2).sum()))(np.array([1.0, 2.0]))
    >>> g, s.unscale(g)
    (array([16., 32.]), array([2., 4.]))
    """

    def __init__(self, scale: float):
        self.scale_value = _check_scale(scale)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale_value})"

    def scale(self, inputs: Any) -> Any:
        """``inputs`` (any pytree) times the current scale."""
        s = self.scale_value
        return _map(lambda x: x * s, inputs)

    def unscale(self, inputs: Any) -> Any:
        """``inputs`` (any pytree) divided by the current scale."""
        s = self.scale_value
        return _map(lambda x: x / s, inputs)

    def adjust(self, grads_finite: bool) -> bool:
        """A static scale never changes (MindSpore's API has the method)."""
        return False


class DynamicLossScaler(StaticLossScaler):
    """A loss scale that adapts to overflow (MindSpore's rule).

    ``adjust(grads_finite)`` after each step: on overflow (``False``) the scale
    is divided by ``scale_factor`` (never below 1) and the counter of good
    steps restarts; after ``scale_window`` consecutive finite steps the scale
    is multiplied by ``scale_factor`` (unless that overflows to inf).

    >>> from dualad.compat.amp import DynamicLossScaler
    >>> s = DynamicLossScaler(1024.0, scale_factor=2, scale_window=2)
    >>> _ = s.adjust(False); s.scale_value
    512.0
    >>> _ = s.adjust(True); _ = s.adjust(True); s.scale_value
    1024.0
    """

    def __init__(self, scale: float, scale_factor: float = 2, scale_window: int = 1000):
        super().__init__(scale)
        self.scale_factor = _check_scale(scale_factor)
        if self.scale_factor < 1:
            raise ValueError(f"scale_factor must be >= 1, got {scale_factor}")
        if int(scale_window) != scale_window or scale_window < 1:
            raise ValueError(f"scale_window must be a positive integer, got {scale_window}")
        self.scale_window = int(scale_window)
        self.counter = 0

    def __repr__(self) -> str:
        return (f"DynamicLossScaler(scale={self.scale_value}, scale_factor={self.scale_factor}, "
                f"scale_window={self.scale_window}, counter={self.counter})")

    def adjust(self, grads_finite: bool) -> bool:
        """Update the scale after a step; returns ``True`` (as MindSpore).

        >>> from dualad.compat.amp import DynamicLossScaler
        >>> s = DynamicLossScaler(2.0, scale_factor=4)
        >>> _ = s.adjust(False); s.scale_value     # 2 / 4 would be below 1
        1.0
        """
        if isinstance(grads_finite, (tuple, list, dict)):
            # a pytree here is almost surely the gradients themselves
            raise TypeError("adjust() takes a bool (grads_finite); "
                            "pass all_finite(grads), not the gradients")
        finite = bool(grads_finite)
        if finite:
            if self.counter == self.scale_window - 1:
                grown = self.scale_value * self.scale_factor
                if math.isfinite(grown):
                    self.scale_value = grown
            self.counter = (self.counter + 1) % self.scale_window
        else:
            self.scale_value = max(1.0, self.scale_value / self.scale_factor)
            self.counter = 0
        return True


# ============================================================================
# Overflow check and clipping
# ============================================================================
def all_finite(inputs: Any) -> bool:
    """``True`` when no leaf of ``inputs`` holds an inf or a NaN.

    >>> import numpy as np
    >>> from dualad.compat.amp import all_finite
    >>> all_finite((np.ones(2), [1.0, 2.0])), all_finite({"w": np.array([np.inf])})
    (True, False)
    """
    leaves, _ = tree_flatten(inputs)
    return all(all_finite_value(x) for x in leaves if x is not None)


def clip_by_global_norm(grads: Any, clip_norm: float = 1.0) -> Any:
    """Scale every leaf by ``clip_norm / max(global_norm, clip_norm)``, where
    ``global_norm`` is the 2-norm of all leaves together: the result has the
    same structure, and a global norm of at most ``clip_norm``. Gradients
    already within the norm (all-zero ones included) come back unchanged.

    >>> import numpy as np, dualad as da
    >>> g = da.clip_by_global_norm((np.array([[2.0, 4.0, 6.0]]),), clip_norm=1.0)
    >>> np.round(g[0], 4)
    array([[0.2673, 0.5345, 0.8018]])
    """
    clip = float(clip_norm)
    if not (clip > 0 and math.isfinite(clip)):
        raise ValueError(f"clip_norm must be positive and finite, got {clip_norm}")
    leaves, td = tree_flatten(grads)
    present = [x for x in leaves if x is not None]
    if not present:
        return grads
    sq = None
    for x in present:
        s = np.sum(x * x)
        sq = s if sq is None else sq + s
    norm = np.sqrt(sq)
    # max(norm, clip) >= clip > 0: no division by zero for all-zero gradients
    factor = clip / np.maximum(norm, clip)
    return tree_unflatten(td, [None if x is None else x * factor for x in leaves])
