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
# static check: the folders are the layers; imports only run downward
# ============================================================================
# Each room (a sub-package of dualad/, or a top-level module) and the rooms it
# may import. This one table is the layering: a module in a room missing here,
# an import outside the room's row, or an import circle fails the tests.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "rules": {"core"},
    "kernels": {"core", "rules"},
    "forward": {"core", "rules"},
    "reverse": {"core", "forward"},
    "batching": {"core", "rules", "forward"},
    "structured": {"core", "rules", "forward", "reverse"},
    "custom": {"core", "forward", "reverse", "batching"},
    "testing": {"core", "forward", "reverse"},
    # mixed/ may load the whole package in a fresh executor worker ("root").
    "mixed": {"core", "rules", "kernels", "forward", "reverse", "batching", "structured",
              "custom", "root"},
    "physics": set(),          # plain NumPy energies: usable with any transform

    "compat": {"core", "forward", "reverse", "mixed", "custom"},
    # Integrations sit on top and use the public API (``import dualad as da``).
    "optimize": {"core", "forward", "reverse", "mixed", "root"},
    "ase": {"core", "forward", "reverse", "mixed", "physics", "root"},
    "amp": {"compat"},
    "autograd": {"reverse"},
    "root": None,              # dualad/__init__.py: the public names, may import all
}
TOP_LEVEL_MAX = 8              # modules directly in dualad/ (incl. __init__.py)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def _import_graph() -> dict[str, set[str]]:
    """Every dualad module and the dualad modules it imports (anywhere in the
    file: function-level imports count, they are edges all the same)."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod
                           for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def test_every_room_is_declared() -> None:
    rooms = {_room(m) for m in _import_graph()}
    assert rooms <= set(ALLOWED), f"rooms missing from ALLOWED: {sorted(rooms - set(ALLOWED))}"


def test_imports_only_run_downward() -> None:
    bad = []
    for module, edges in sorted(_import_graph().items()):
        room = _room(module)
        allowed = ALLOWED.get(room)
        if allowed is None:
            continue
        for target in sorted(edges):
            other = _room(target)
            if other != room and other not in allowed:
                bad.append(f"{module} ({room}) imports {target} ({other})")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_no_import_circles() -> None:
    graph = _import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_top_level_is_small() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= TOP_LEVEL_MAX, f"{len(top)} modules at the top of dualad/: {top}"


def test_every_package_says_what_it_is_for() -> None:
    missing = []
    for init in sorted(PKG.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if "May import" not in doc:
            missing.append(str(init.relative_to(PKG.parent)))
    assert not missing, f"package docstrings without a 'May import:' line: {missing}"


def test_graph_sees_relative_and_lazy_imports(tmp_path: Path) -> None:
    graph = _import_graph()
    assert "dualad.core.registry" in graph["dualad.forward.dual"]
    assert "dualad.core.levels" in graph["dualad.core.registry"]
