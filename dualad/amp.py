"""Loss scaling and finiteness checks (MindSpore's ``amp``): the public
facade of :mod:`dualad.compat.amp`.

>>> import dualad as da
>>> da.amp.StaticLossScaler(8.0).scale(2.0)
16.0
"""
from __future__ import annotations

from dualad.compat.amp import (
    DynamicLossScaler,
    StaticLossScaler,
    all_finite,
    clip_by_global_norm,
)

__all__ = ["DynamicLossScaler", "StaticLossScaler", "all_finite", "clip_by_global_norm"]
