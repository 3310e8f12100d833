"""Forward mode: Dual, HyperDual and Taylor values; jvp, jacfwd, derivative."""
from .dual import Dual  # noqa: F401
