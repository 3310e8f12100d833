"""Normal modes from exact Hessians: a water molecule (harmonic bonded force
field) and a Lennard-Jones cluster, frequencies in cm^-1, the six zero modes,
and a spectrum plot (PNG; needs matplotlib: ``pip install "dualad[plot]"``).

Run: ``python examples/normal_modes.py [--small] [--out DIR]``. Needs only
NumPy and dualad.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import dualad as da
from dualad.physics import harmonic_bonded, lennard_jones

# sqrt(eV / (A^2 amu)) in rad/s, over 2 pi c (cm/s): eigenvalue -> wavenumber
CM1 = np.sqrt(1.602176634e-19 / (1e-20 * 1.66053906660e-27)) / (2 * np.pi * 2.99792458e10)

WATER = dict(bonds=[(0, 1), (0, 2)], bond_k=[48.0, 48.0], bond_r0=[0.9572] * 2,
             angles=[(1, 0, 2)], angle_k=[4.0], angle_theta0=[np.radians(104.52)])
MASSES_H2O = np.array([15.999, 1.008, 1.008])


def newton_relax(energy, x, steps=30, tol=1e-10):
    """Newton-Raphson with the exact Hessian (rigid-body modes projected out
    by a pseudo-inverse): quadratic convergence to the nearest stationary point."""
    g = da.grad(energy)(x)
    for _ in range(steps):
        h = da.hessian(energy)(x)
        x = x - np.linalg.pinv(h, rcond=1e-8, hermitian=True) @ g
        g = da.grad(energy)(x)
        if np.abs(g).max() < tol:
            break
    return x, np.abs(g).max()


def modes(energy, x, masses):
    """Harmonic frequencies (eigenvalues of the mass-weighted exact Hessian,
    signed square roots: negative = imaginary) and the modes."""
    h = da.hessian(energy)(x)
    m = np.repeat(masses, 3)
    w2, v = np.linalg.eigh(h / np.sqrt(np.outer(m, m)))
    return np.sign(w2) * np.sqrt(np.abs(w2)), v


def icosahedron13(r_nn=1.12):
    """LJ13: a centre atom and 12 on an icosahedron."""
    p = (1 + 5 ** 0.5) / 2
    v = np.array([[0, s1, s2 * p] for s1 in (-1, 1) for s2 in (-1, 1)], float)
    shell = np.concatenate([v, np.roll(v, 1, axis=1), np.roll(v, 2, axis=1)])
    shell *= r_nn * 0.951 / np.linalg.norm(shell[0])       # shell radius ~ 0.951 edge
    return np.vstack([np.zeros(3), shell])


def lj_cluster(n):
    """LJ13 (icosahedron) or, for the small run, its first n atoms."""
    return icosahedron13()[:n]


def spectrum_png(path, sets, width=20.0):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('  (matplotlib not installed: pip install "dualad[plot]" for the figure; skipped)')
        return None
    fig, axes = plt.subplots(len(sets), 1, figsize=(7, 2.6 * len(sets)))
    for ax, (title, freqs, unit, w) in zip(np.atleast_1d(axes), sets):
        nu = np.asarray(freqs)[np.abs(freqs) > 1e-3 * np.abs(freqs).max()]
        grid = np.linspace(0, 1.15 * nu.max(), 2000)
        lor = np.sum((w / 2) ** 2 / ((grid[:, None] - nu[None, :]) ** 2 + (w / 2) ** 2), axis=1)
        ax.plot(grid, lor, color="tab:blue")
        ax.vlines(nu, 0, 1, color="tab:red", lw=1)
        ax.set_title(title)
        ax.set_xlabel(unit)
        ax.set_ylabel("mode density (arb.)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(small: bool = False, out: str = ".") -> dict:
    print("1. Water, harmonic bonds and angle (eV, Angstrom, amu)")
    e_w = lambda x: harmonic_bonded(x.reshape(3, 3), **WATER)
    x0 = np.array([0.0, 0, 0, 0.97, 0.05, 0, -0.25, 0.9, 0.1])
    t = time.perf_counter()
    xw, gmax = newton_relax(e_w, x0)
    nu_w, _ = modes(e_w, xw, MASSES_H2O)
    nu_w *= CM1
    print(f"   relaxed (|grad| {gmax:.1e}) and diagonalised in "
          f"{1e3 * (time.perf_counter() - t):.0f} ms")
    print("   zero modes (cm^-1):", np.array2string(nu_w[:6], precision=4, suppress_small=True))
    print("   vibrations (cm^-1): bend {:.0f}, symmetric stretch {:.0f}, asymmetric {:.0f}"
          .format(*nu_w[6:]))
    assert np.all(np.abs(nu_w[:6]) < 1.0), "water: six zero modes expected"

    n = 7 if small else 13
    print(f"2. Lennard-Jones cluster, N = {n} (reduced units, mass 1)")
    e_lj = lambda x: lennard_jones(x.reshape(-1, 3), None, None, rc=1e3)
    t = time.perf_counter()
    xl, gmax = newton_relax(e_lj, lj_cluster(n).ravel())
    nu_l, _ = modes(e_lj, xl, np.ones(n))
    print(f"   E = {float(e_lj(xl)):.6f} (|grad| {gmax:.1e}), plan: "
          f"{da.plan(e_lj, xl, kind='hessian').mode}, {1e3 * (time.perf_counter() - t):.0f} ms")
    zero = np.sum(np.abs(nu_l) < 1e-5)
    print(f"   {zero} zero modes (|w| < 1e-5; largest {np.abs(nu_l[:6]).max():.1e}),"
          f" lowest vibration {nu_l[6]:.4f}, highest {nu_l[-1]:.4f}")
    assert zero == 6 and nu_l[6] > 0, "LJ minimum: six zero modes, the rest real"

    png = spectrum_png(os.path.join(out, "normal_modes.png"), [
        ("water: harmonic force field", nu_w, "wavenumber (cm$^{-1}$)", 60.0),
        (f"LJ$_{{{n}}}$ cluster", nu_l, r"frequency ($\sqrt{\epsilon/m\sigma^2}$)", 0.4)])
    if png:
        print(f"3. spectrum saved to {png}")
    return {"water": nu_w, "lj": nu_l, "png": png}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a smaller cluster (tests)")
    ap.add_argument("--out", default=".", help="where to save the PNG")
    a = ap.parse_args()
    main(a.small, a.out)
