"""Geometry optimisation of a Lennard-Jones cluster (LJ38 by default) with
SciPy: Newton-CG with the exact Hessian, BFGS with the exact gradient (both
through ``dualad.optimize``), and BFGS with finite-difference gradients
(SciPy alone), from the same start. Prints iterations, evaluations, energies
and wall times.

Run: ``python examples/geometry_optimization.py [--n 38]``. Needs SciPy.
"""
from __future__ import annotations

import argparse
import os
import time

# BFGS does many tiny (114 x 114) matrix products: a multi-threaded BLAS on a
# busy machine spends more time synchronising threads than computing (18 s
# instead of 1 s measured on a shared 2-core VM). Must be set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.optimize as so  # noqa: E402

import dualad as da  # noqa: E402
from dualad.optimize import minimize  # noqa: E402
from dualad.physics import lennard_jones  # noqa: E402


def energy(x):
    return lennard_jones(x.reshape(-1, 3), None, None, rc=1e3)


def start(n, seed=0):
    """Atoms on a jittered simple-cubic grid, nearest neighbours ~1.1 sigma."""
    k = int(np.ceil(n ** (1 / 3)))
    g = np.array([[a, b, c] for a in range(k) for b in range(k) for c in range(k)], float)
    g = g[np.argsort(np.linalg.norm(g - g.mean(0), axis=1), kind="stable")][:n]
    return (1.1 * g + 0.1 * np.random.default_rng(seed).normal(size=g.shape)).ravel()


def main(n: int = 38) -> dict:
    x0 = start(n)
    print(f"LJ{n}: {3 * n} coordinates, E(start) = {energy(x0):.4f}")
    runs = {
        "Newton-CG, exact Hessian (dualad)": lambda: minimize(energy, x0, method="Newton-CG",
                                                              options={"xtol": 1e-8}),
        "trust-exact, exact Hessian (dualad)": lambda: minimize(energy, x0, method="trust-exact",
                                                                options={"gtol": 1e-6}),
        "BFGS, exact gradient (dualad)": lambda: minimize(energy, x0, method="BFGS",
                                                          options={"gtol": 1e-6}),
        "BFGS, finite differences (SciPy)": lambda: so.minimize(energy, x0, method="BFGS",
                                                                options={"gtol": 1e-6}),
    }
    out = {}
    print(f"  {'method':38s} {'iter':>5s} {'f evals':>7s} {'energy':>12s} {'|grad|':>8s}"
          f" {'time':>9s}")
    for name, run in runs.items():
        t = time.perf_counter()
        res = run()
        dt = time.perf_counter() - t
        g = np.abs(da.grad(energy)(res.x.ravel())).max()
        print(f"  {name:38s} {res.nit:5d} {res.nfev:7d} {res.fun:12.6f} {g:8.1e} {dt:8.3f}s")
        out[name] = (res, dt)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=38, help="number of atoms")
    main(ap.parse_args().n)
