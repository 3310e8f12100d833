"""Printing helper shared by the seed scripts.

``show(label, value)`` prints one line ``label: value``: arrays as nested
lists, tuples as tuples, every number at float32 precision (the shortest
decimal that round-trips the float32 value) because the tutorials print
MindSpore/PyTorch float32 tensors while dualad computes in float64.

>>> show("g", (np.array([[4.51, 2.7]]), 0.5))
g: ([[4.51, 2.7]], 0.5)
"""
from __future__ import annotations

from typing import Any

import numpy as np


def fmt(value: Any) -> str:
    """The text ``show`` prints for ``value``."""
    if value is None:
        return "None"
    if isinstance(value, tuple):
        inner = ", ".join(fmt(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if hasattr(value, "numpy") and callable(value.numpy):    # tape tensors
        value = value.numpy()
    a = np.asarray(value)
    if a.ndim == 0:
        return np.format_float_positional(np.float32(a), trim="-")
    return "[" + ", ".join(fmt(v) for v in a) + "]"


def show(label: str, value: Any) -> None:
    """Print ``label: value`` (see :func:`fmt`)."""
    print(f"{label}: {fmt(value)}")


def section(title: str) -> None:
    """Print a section banner (ignored by the tests)."""
    print(f"=== {title} ===")
