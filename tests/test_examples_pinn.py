"""examples/pinn_poisson.py at a tiny size: the loss must fall."""
import importlib.util
from pathlib import Path

import numpy as np

import dualad as da

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pinn_poisson.py"


def _load():
    spec = importlib.util.spec_from_file_location("pinn_poisson", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pinn_loss_decreases(tmp_path):
    mod = _load()
    history = mod.main(["--steps", "30", "--hidden", "8", "--points", "48", "--log-every", "10",
                        "--lr", "1e-2", "--out", str(tmp_path / "fig.png")])
    losses = [loss for _, loss in history]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert all(b < a for a, b in zip(losses, losses[1:]))   # falls steadily
    assert losses[-1] < 0.7 * losses[0]


def test_pinn_laplacian_matches_hessian_trace():
    mod = _load()
    params = mod.init_params((2, 6, 6, 1), np.random.default_rng(0))
    pts = np.random.default_rng(1).uniform(0, 1, (4, 2))
    lap = da.laplacian(lambda p: mod.net(params, p), batch_axis=0)(pts)
    for n in range(4):
        h = np.asarray(da.hessian(lambda x: mod.net(params, x[None, :])[0])(pts[n]))
        np.testing.assert_allclose(lap[n], np.trace(h), rtol=1e-10, atol=1e-12)
