"""dualad.ase against ASE's own calculators (energy, forces, stress to 1e-10)
and its Hessians against finite differences and ase.vibrations."""
from __future__ import annotations

import numpy as np
import pytest

ase = pytest.importorskip("ase")
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.lj import LennardJones  # noqa: E402
from ase.calculators.morse import MorsePotential  # noqa: E402

from dualad.ase import DualadCalculator  # noqa: E402
from dualad.physics import eam, harmonic_bonded, lennard_jones, morse  # noqa: E402


def _cluster(n, seed=0, spacing=1.1):
    rng = np.random.default_rng(seed)
    g = np.array([[a, b, c] for a in range(3) for b in range(3) for c in range(3)], float)
    return Atoms(f"Ar{n}", positions=g[:n] * spacing + 0.05 * rng.normal(size=(n, 3)))


def _crystal(scale, seed=1):
    atoms = bulk("Cu", "fcc", a=scale, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.03, seed=seed)
    atoms.set_cell(atoms.cell @ (np.eye(3) + 0.01 * np.random.default_rng(seed).normal(
        size=(3, 3))), scale_atoms=True)
    return atoms


def _compare(atoms, ref_calc, calc, stress=True):
    a, b = atoms.copy(), atoms.copy()
    a.calc, b.calc = ref_calc, calc
    assert abs(a.get_potential_energy() - b.get_potential_energy()) < 1e-10
    np.testing.assert_allclose(b.get_forces(), a.get_forces(), rtol=0, atol=1e-10)
    if stress:
        np.testing.assert_allclose(b.get_stress(), a.get_stress(), rtol=0, atol=1e-10)


LJ = dict(sigma=1.0, epsilon=1.0, rc=2.5)
MORSE = dict(epsilon=0.8, rho0=5.0, r0=1.1, rcut1=1.9, rcut2=2.7)


@pytest.mark.parametrize("smooth", [False, True])
def test_lj_matches_ase(smooth):
    _compare(_crystal(1.6), LennardJones(**LJ, smooth=smooth),
             DualadCalculator(lennard_jones, cutoff=LJ["rc"], **LJ, smooth=smooth))
    _compare(_cluster(10), LennardJones(**LJ, smooth=smooth),
             DualadCalculator(lennard_jones, cutoff=LJ["rc"], **LJ, smooth=smooth), stress=False)


def test_morse_matches_ase():
    cut = MORSE["rcut2"] * MORSE["r0"]
    _compare(_crystal(1.55), MorsePotential(**MORSE), DualadCalculator(morse, cutoff=cut, **MORSE))
    _compare(_cluster(8), MorsePotential(**MORSE), DualadCalculator(morse, cutoff=cut, **MORSE),
             stress=False)


def test_cluster_without_list_equals_list():
    """neighbors=None (every pair) and a neighbour list give the same forces."""
    atoms = _cluster(9)
    a, b = atoms.copy(), atoms.copy()
    a.calc = DualadCalculator(morse, cutoff=10.0)
    b.calc = DualadCalculator(morse)
    np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-12)


def _fd_stress(atoms, h=1e-6):
    """Central differences of E over a symmetric strain, / V, Voigt order."""
    voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    out = []
    for a, b in voigt:
        vals = []
        for s in (h, -h):
            eps = np.zeros((3, 3))
            eps[a, b] += s / (1 if a == b else 2)
            eps[b, a] += 0 if a == b else s / 2
            t = atoms.copy()
            t.calc = atoms.calc
            t.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
            vals.append(t.get_potential_energy())
        out.append((vals[0] - vals[1]) / (2 * h) / atoms.get_volume())
    return np.array(out)


def test_eam_forces_stress_fd():
    atoms = _crystal(4.08)
    atoms.calc = DualadCalculator(eam, cutoff=5.0)
    f = atoms.get_forces()
    e0 = atoms.get_potential_energy()
    assert e0 < 0
    h, fd = 1e-5, np.zeros_like(f)
    for k in range(3):                                  # a few atoms, all directions
        for c in range(3):
            t = atoms.copy()
            t.calc = atoms.calc
            t.positions[k, c] += h
            ep = t.get_potential_energy()
            t.positions[k, c] -= 2 * h
            fd[k, c] = -(ep - t.get_potential_energy()) / (2 * h)
    np.testing.assert_allclose(f[:3], fd[:3], atol=1e-7)
    np.testing.assert_allclose(atoms.get_stress(), _fd_stress(atoms), atol=1e-7)
    np.testing.assert_allclose(f.sum(axis=0), 0, atol=1e-10)


def _fd_hessian(atoms):
    """Central differences of the (exact) forces."""
    n, h = len(atoms), 1e-5
    out = np.zeros((3 * n, 3 * n))
    for k in range(3 * n):
        t = atoms.copy()
        t.calc = atoms.calc
        t.positions.reshape(-1)[k] += h
        fp = t.get_forces().ravel()
        t.positions.reshape(-1)[k] -= 2 * h
        out[k] = -(fp - t.get_forces().ravel()) / (2 * h)
    return out


WATER = dict(bonds=[(0, 1), (0, 2)], bond_k=[48.0, 48.0], bond_r0=[0.9572] * 2,
             angles=[(1, 0, 2)], angle_k=[4.0], angle_theta0=[np.radians(104.52)])


@pytest.mark.parametrize("case", ["lj", "morse_pbc", "eam", "water"])
def test_hessian_against_fd(case):
    if case == "lj":
        atoms, calc = _cluster(7), DualadCalculator(lennard_jones, cutoff=2.5, **LJ, smooth=True)
    elif case == "morse_pbc":
        atoms = _crystal(1.55)[:12]
        atoms.pbc = True
        calc = DualadCalculator(morse, cutoff=2.97, **MORSE)
    elif case == "eam":
        atoms, calc = _crystal(4.08)[:10], DualadCalculator(eam, cutoff=5.0)
        atoms.pbc = True
    else:
        atoms = Atoms("OH2", positions=[[0, 0, 0], [0.97, 0.05, 0], [-0.25, 0.9, 0.1]])
        calc = DualadCalculator(harmonic_bonded, **WATER)
    atoms.calc = calc
    h = calc.hessian(atoms)
    np.testing.assert_array_equal(h, h.T)
    fd = _fd_hessian(atoms)
    np.testing.assert_allclose(h, fd, atol=1e-5 * max(1.0, np.abs(h).max()))


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
def test_vibrations_vs_ase_finite_differences(tmp_path):
    """Water at its minimum: dualad's exact modes vs ase.vibrations (FD)."""
    from ase.optimize import BFGS
    from ase.vibrations import Vibrations

    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.97, 0.05, 0], [-0.25, 0.9, 0.1]])
    atoms.calc = DualadCalculator(harmonic_bonded, **WATER)
    BFGS(atoms, logfile=None).run(fmax=1e-8, steps=500)
    vib = atoms.calc.vibrations(atoms)
    freqs = vib.get_frequencies()
    assert np.all(np.abs(freqs[:6]) < 1.0)                 # cm^-1: six zero modes
    assert 1000 < freqs[6].real < 2000 and 3000 < freqs[8].real < 4500
    ref = Vibrations(atoms, name=str(tmp_path / "vib"), delta=0.005)
    ref.run()
    np.testing.assert_allclose(freqs[6:].real, ref.get_frequencies()[6:].real, rtol=1e-3)
    jmol = tmp_path / "modes.xyz"
    vib.write_jmol(str(jmol))
    assert jmol.stat().st_size > 0
    dos = vib.get_dos()
    assert len(dos.get_energies()) == 9


def test_vibrations_indices_subset():
    atoms = _cluster(6)
    atoms.calc = DualadCalculator(lennard_jones, **LJ)
    full = atoms.calc.hessian(atoms)
    vib = atoms.calc.vibrations(atoms, indices=[1, 3])
    np.testing.assert_array_equal(vib.get_hessian_2d(), full[np.ix_([3, 4, 5, 9, 10, 11],
                                                                    [3, 4, 5, 9, 10, 11])])
