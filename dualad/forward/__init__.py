"""Forward mode: Dual, HyperDual and Taylor values; jvp, jacfwd, derivative.

HyperDual and Taylor load on first use, so the core (levels, registry,
Dual, tape) imports without any rule module.

May import: core, rules.
"""
import importlib

from dualad.forward.dual import Dual as Dual

_LAZY = {"HyperDual": ".hyperdual", "Taylor": ".taylor", "derivative": ".taylor"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'dualad.forward' has no attribute {name!r}")
