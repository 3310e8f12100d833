"""Repository-level pytest configuration: doctests (``--doctest-modules``, see
pyproject.toml) skip the modules whose optional extra is not installed."""
import importlib.util

collect_ignore = ["examples", "bench", "build", "docs"]
if importlib.util.find_spec("ase") is None:
    collect_ignore.append("dualad/ase.py")
if importlib.util.find_spec("scipy") is None:
    collect_ignore.append("dualad/optimize.py")
if importlib.util.find_spec("numba") is None:
    collect_ignore.append("dualad/kernels/vecmath.py")
