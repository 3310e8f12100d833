"""Layering: the core (levels, registry, dispatch, Dual, tape) runs on Python
floats without the NumPy rules, Numba or CuPy; lower layers never import
higher ones; ``import dualad`` stays light.

The runtime checks run in a fresh interpreter so that what other tests have
imported does not count.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "dualad"


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=300, cwd=str(PKG.parent))
    assert res.returncode == 0, f"subprocess failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout.strip().splitlines()[-1])


# ============================================================================
# the core on Python floats, without dualad/__init__.py
# ============================================================================
CORE_ON_FLOATS = """
import json, math, sys, types

# A bare package object: dualad/__init__.py (which imports the rules) never runs.
pkg = types.ModuleType("dualad")
pkg.__path__ = [PKG_DIR]
sys.modules["dualad"] = pkg

import dualad.core.levels
import dualad.core.registry as P
import dualad.core.dispatch
import dualad.forward.dual as FD
import dualad.reverse.tape as T

# Partials written with `math` on Python floats.
mul = P.defprimitive("layer_mul", lambda x, y: x * y, partials=lambda out, x, y: (y, x))
sin = P.defprimitive("layer_sin", math.sin, partials=lambda out, x: (math.cos(x),))

def f(x):                       # x sin(x)
    return mul(sin(x), x)

x0 = 0.7
want1 = math.sin(x0) + x0 * math.cos(x0)
out = {}

# Forward: a Dual on Python floats (the persistent level).
d = f(FD.Dual(x0, 1.0))
out["dual_primal"] = d.primal
out["dual_tangent"] = d.tangent
out["dual_types"] = [type(d.primal).__name__, type(d.tangent).__name__]

# Reverse: a tape on Python floats.
y, treedef, pull = T.trace_vjp(f, [x0])
out["tape_value"] = y[0]
out["tape_grad"] = pull(1.0)[0]

out["rules_imported"] = sorted(m for m in sys.modules
                               if m == "dualad.rules" or m.startswith("dualad.rules."))
out["numba"] = "numba" in sys.modules
out["cupy"] = "cupy" in sys.modules
out["init_ran"] = hasattr(sys.modules["dualad"], "__version__")
out["want1"], out["value"] = want1, x0 * math.sin(x0)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def core() -> dict:
    return _run(CORE_ON_FLOATS.replace("PKG_DIR", repr(str(PKG))))


def test_core_does_not_import_rules_numba_or_cupy(core: dict) -> None:
    assert core["init_ran"] is False
    assert core["rules_imported"] == []
    assert core["numba"] is False
    assert core["cupy"] is False


def test_dual_on_python_floats(core: dict) -> None:
    assert core["dual_primal"] == pytest.approx(core["value"], abs=1e-15)
    assert core["dual_tangent"] == pytest.approx(core["want1"], abs=1e-15)
    # The primal stays a Python float; the tangent may be promoted to a 0-d array.
    assert core["dual_types"][0] == "float"
    assert core["dual_types"][1] in ("float", "float64", "ndarray")


def test_tape_on_python_floats(core: dict) -> None:
    assert core["tape_value"] == pytest.approx(core["value"], abs=1e-15)
    assert core["tape_grad"] == pytest.approx(core["want1"], abs=1e-15)


# ============================================================================
# `import dualad` and a small gradient stay light
# ============================================================================
def test_import_dualad_is_light() -> None:
    res = _run("""
        import json, sys
        import numpy as np
        import dualad as da
        after_import = {m: m in sys.modules for m in ("numba", "cupy", "scipy")}
        g = da.grad(lambda x: np.sum(np.sin(x) * x))(np.array([0.1, 0.2]))
        after_grad = {m: m in sys.modules for m in ("numba", "cupy")}
        print(json.dumps({"import": after_import, "grad": after_grad}))
    """)
    assert res["import"] == {"numba": False, "cupy": False, "scipy": False}
    assert res["grad"] == {"numba": False, "cupy": False}


# ============================================================================
# static check: lower layers never import higher ones
# ============================================================================
# layer of each top-level module / package of dualad (see docs: DESIGN.md "Layers")
CORE = {"_levels", "_zero", "_tree", "backend", "primitive", "dispatch", "_api_util"}
RULES = {"rules"}
INTERPRETERS = {"forward", "reverse"}
FORBIDDEN = {
    "core": {"rules", "forward", "reverse", "transforms", "planner", "nn", "compat", "amp",
             "custom", "autograd", "testing", "sparsity", "kernels"},
    "rules": {"forward", "reverse", "transforms", "planner", "nn", "compat", "amp", "autograd",
              "testing"},
}


def _layer(path: Path) -> str | None:
    top = path.relative_to(PKG).parts[0].removesuffix(".py")
    if top in CORE:
        return "core"
    if top in RULES:
        return "rules"
    return None


def _imported_dualad_modules(path: Path) -> set[str]:
    """Top-level dualad modules imported anywhere in ``path`` (lazy imports too)."""
    rel = path.relative_to(PKG).with_suffix("").parts
    package = rel[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                mod = base + (node.module.split(".") if node.module else [])
                names = [".".join(["dualad", *mod])] if mod else \
                    [f"dualad.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for n in names:
            parts = n.split(".")
            if parts[0] == "dualad" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_lower_layers_do_not_import_higher_ones() -> None:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        layer = _layer(path)
        if layer is None:
            continue
        wrong = _imported_dualad_modules(path) & FORBIDDEN[layer]
        if wrong:
            bad.append(f"{path.relative_to(PKG.parent)} ({layer}) imports {sorted(wrong)}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_import_scanner_sees_relative_imports() -> None:
    assert "primitive" in _imported_dualad_modules(PKG / "forward" / "dual.py")
    assert "_zero" in _imported_dualad_modules(PKG / "primitive.py")
