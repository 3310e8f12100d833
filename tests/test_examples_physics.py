"""The physicist's examples run at a small size (their own checks assert)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_normal_modes(tmp_path, capsys):
    out = _load("normal_modes").main(small=True, out=str(tmp_path))
    np.testing.assert_allclose(out["water"][:6], 0, atol=1.0)
    assert 1500 < out["water"][6] < 1700 and 3600 < out["water"][8] < 3800
    if out["png"] is not None:
        assert Path(out["png"]).stat().st_size > 10_000
    assert "zero modes" in capsys.readouterr().out


def test_normal_modes_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import fails cleanly
    mod = _load("normal_modes")
    assert mod.spectrum_png(str(tmp_path / "x.png"), []) is None
    assert "dualad[plot]" in capsys.readouterr().out


def test_geometry_optimization():
    pytest.importorskip("scipy")
    import dualad as da
    mod = _load("geometry_optimization")
    out = mod.main(n=8)
    for res, _ in out.values():              # every method reaches a stationary point below
        assert res.fun < mod.energy(mod.start(8)) - 1.0                # the start
        assert np.abs(da.grad(mod.energy)(res.x)).max() < 1e-4


def test_ase_vibrations(tmp_path):
    pytest.importorskip("ase")
    out = _load("ase_vibrations").main(shells=2, out=str(tmp_path))
    assert np.abs(out["exact"][:6]).max() < 1e-5
    assert (tmp_path / "cu_modes.xyz").exists()
