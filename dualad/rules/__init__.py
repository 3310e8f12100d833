"""Derivative rules, one module per op family. Importing this package fills
the primitive registry and the NumPy dispatch tables."""
from . import contractions, indexing, joins, linalg, linalg_decomp, reductions, shape, ufuncs  # noqa: F401
