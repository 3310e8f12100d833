"""Exact vibrations inside ASE: a Morse copper cluster relaxed with ASE's BFGS
on ``DualadCalculator`` forces, then its normal modes from the exact Hessian
(``calc.vibrations(atoms)``, an ASE ``VibrationsData``) next to
``ase.vibrations.Vibrations`` (finite differences, 6N force calls).

Run: ``python examples/ase_vibrations.py [--out DIR]``. Needs ASE
(``pip install "dualad[ase]"``); without it the script says so and exits.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

try:
    from ase.cluster import Icosahedron
    from ase.optimize import BFGS
    from ase.vibrations import Vibrations
except ImportError:
    Icosahedron = None

MORSE = dict(epsilon=0.34, rho0=4.0, r0=2.55, rcut1=1.9, rcut2=2.7)   # eV, Angstrom (Cu-like)


def main(shells: int = 2, out: str = ".") -> dict | None:
    if Icosahedron is None:
        print('ASE is not installed: pip install "dualad[ase]" to run this example')
        return None
    from dualad.ase import DualadCalculator
    from dualad.physics import morse

    atoms = Icosahedron("Cu", shells, latticeconstant=2.55 * 2 ** 0.5)
    atoms.calc = DualadCalculator(morse, cutoff=MORSE["rcut2"] * MORSE["r0"], **MORSE)
    BFGS(atoms, logfile=None).run(fmax=1e-6, steps=1000)
    print(f"Cu{len(atoms)} Morse cluster: E = {atoms.get_potential_energy():.6f} eV, "
          f"max force {np.abs(atoms.get_forces()).max():.1e} eV/A")

    t = time.perf_counter()
    vib = atoms.calc.vibrations(atoms)
    t_exact = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        ref = Vibrations(atoms, name=os.path.join(tmp, "vib"), delta=0.01)
        t = time.perf_counter()
        ref.run()
        t_fd = time.perf_counter() - t
        e_fd = ref.get_energies()
    e_ex = vib.get_energies()
    zero_ex, zero_fd = np.abs(e_ex[:6]).max() * 1e3, np.abs(e_fd[:6]).max() * 1e3
    rel = np.abs(e_ex[6:].real - e_fd[6:].real).max() / e_ex[6:].real.max()
    print(f"  {'':34s} {'exact (dualad)':>16s} {'ase.vibrations FD':>18s}")
    print(f"  {'time':34s} {1e3 * t_exact:14.1f}ms {1e3 * t_fd:16.1f}ms")
    print(f"  {'largest of the 6 zero modes':34s} {zero_ex:12.2e} meV {zero_fd:14.2e} meV")
    print(f"  {'highest mode':34s} {1e3 * e_ex[-1].real:12.3f} meV {1e3 * e_fd[-1].real:14.3f} meV")
    print(f"  other modes agree to {rel:.1e} (relative; FD error)")
    print("  frequencies (cm^-1):", np.array2string(vib.get_frequencies()[6:].real,
                                                     precision=1, max_line_width=88))
    path = os.path.join(out, "cu_modes.xyz")
    vib.write_jmol(path)                  # animate the modes in Jmol
    print(f"  modes written to {path}; vib.get_dos() gives the density of states")
    return {"exact": e_ex, "fd": e_fd, "t_exact": t_exact, "t_fd": t_fd}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shells", type=int, default=2, help="icosahedral shells (2: 13 atoms)")
    ap.add_argument("--out", default=".", help="where to write the Jmol file")
    a = ap.parse_args()
    main(a.shells, a.out)
