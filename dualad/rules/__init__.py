"""Derivative rules, one module per op family. Importing this package fills
the primitive registry and the NumPy dispatch tables."""
from . import ufuncs, reductions, shape, indexing, contractions, linalg  # noqa: F401
