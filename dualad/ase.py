"""An ASE calculator from an energy written in plain NumPy: energy, forces,
stress from one reverse pass; the exact Hessian and ASE ``VibrationsData``.

ASE is optional (``pip install "dualad[ase]"``); it is imported when this
module is. The energy has the signature of :mod:`dualad.physics`:
``energy(positions, cell, numbers, neighbors=..., **params)``. With a
``cutoff`` the calculator builds ``ase.neighborlist.neighbor_list("ijS", atoms,
cutoff)`` (both directions, periodic image shifts) at each new geometry and
passes it as ``neighbors=``; without one, the energy gets ``neighbors=None``
only if it has that keyword (molecular force fields need none).

Forces are ``-dE/dpositions``. The stress is ``(1/V) dE/d(strain)`` for the
symmetric strain ``eps`` that maps positions and cell rows to ``x (1 + eps)``,
ASE's sign and Voigt order ``(xx, yy, zz, yz, xz, xy)``; it comes from the
same pass: ``dE/deps = positions^T dE/dpositions + cell^T dE/dcell``.

>>> import numpy as np
>>> from ase import Atoms
>>> from dualad.ase import DualadCalculator
>>> from dualad.physics import morse
>>> atoms = Atoms("Cu3", positions=[[0, 0, 0], [1, 0, 0], [0.5, 3 ** 0.5 / 2, 0]])
>>> atoms.calc = DualadCalculator(morse, cutoff=2.7, epsilon=1.0, r0=1.0)
>>> atoms.get_forces().shape
(3, 3)
>>> vib = atoms.calc.vibrations(atoms)          # ase.vibrations.VibrationsData
>>> int(np.sum(np.abs(vib.get_energies()) < 1e-6))   # at a minimum: 3 translations, 3 rotations
6
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list
from ase.stress import full_3x3_to_voigt_6_stress
from ase.vibrations import VibrationsData

import dualad as da
from dualad.physics.potentials import Neighbors

__all__ = ["DualadCalculator"]


def _accepts_neighbors(energy: Callable) -> bool:
    try:
        params = inspect.signature(energy).parameters
    except (TypeError, ValueError):        # builtins, some callables: assume it does
        return True
    return "neighbors" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class DualadCalculator(Calculator):
    """ASE calculator for ``energy(positions, cell, numbers, **params)``.

    ``cutoff``: build a neighbour list of that radius and pass it as
    ``neighbors=`` (:class:`dualad.physics.Neighbors`); ``None``: no list.
    ``hessian_mode``: passed to :func:`dualad.hessian` (``"auto"``: the
    planner picks structured, sparse or dense). Remaining keywords are the
    energy's parameters.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    nolabel = True

    def __init__(self, energy: Callable, cutoff: float | None = None, *,
                 hessian_mode: str = "auto", **params):
        super().__init__()
        self.energy_fn = energy
        self.cutoff = cutoff
        self.hessian_mode = hessian_mode
        self.params = params
        self._pass_nb = cutoff is not None or _accepts_neighbors(energy)

    def _energy_of(self, atoms) -> Callable:
        """``E(positions, cell)`` at the neighbour list of ``atoms`` (the list
        is fixed at this geometry: exact derivatives as long as no pair
        crosses the cutoff, where a smooth energy vanishes anyway)."""
        kw = dict(self.params)
        if self.cutoff is not None:
            i, j, s = neighbor_list("ijS", atoms, self.cutoff)
            kw["neighbors"] = Neighbors(i, j, s)
        elif self._pass_nb:
            kw["neighbors"] = None
        numbers = atoms.numbers
        return lambda positions, cell: self.energy_fn(positions, cell, numbers, **kw)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        f = self._energy_of(atoms)
        pos, cell = np.array(atoms.positions, dtype=float), np.array(atoms.cell, dtype=float)
        e, (gp, gc) = da.value_and_grad(f, grad_position=(0, 1))(pos, cell)
        self.results["energy"] = self.results["free_energy"] = float(e)
        self.results["forces"] = -np.asarray(gp)
        if atoms.cell.rank == 3:
            m = pos.T @ np.asarray(gp) + cell.T @ np.asarray(gc)
            self.results["stress"] = full_3x3_to_voigt_6_stress(
                0.5 * (m + m.T) / atoms.get_volume())

    def hessian(self, atoms=None, mode: str | None = None) -> np.ndarray:
        """The exact Hessian ``d^2E/dx dx`` of the positions, ``(3N, 3N)``
        (eV/A^2), by :func:`dualad.hessian` (the planner chooses the mode
        unless ``mode`` or the calculator's ``hessian_mode`` names one)."""
        atoms = self.atoms if atoms is None else atoms
        f = self._energy_of(atoms)
        cell = np.array(atoms.cell, dtype=float)
        n = len(atoms)
        h = da.hessian(lambda x: f(x.reshape(n, 3), cell), mode=mode or self.hessian_mode)(
            np.array(atoms.positions, dtype=float).ravel())
        h = h.toarray() if hasattr(h, "toarray") else np.asarray(h)
        return h

    def vibrations(self, atoms=None, indices=None, mode: str | None = None) -> VibrationsData:
        """ASE ``VibrationsData`` from the exact Hessian: ``get_frequencies()``
        (cm^-1), ``get_energies()``, ``get_modes()``, ``write_jmol()``,
        ``get_dos()``. ``indices``: the atoms that move (others fixed).
        Masses are those of ``atoms`` (``VibrationsData`` mass-weights)."""
        atoms = self.atoms if atoms is None else atoms
        h = self.hessian(atoms, mode=mode)
        if indices is not None:
            idx = np.asarray(indices)
            dof = (3 * idx[:, None] + np.arange(3)).ravel()
            h = h[np.ix_(dof, dof)]
        return VibrationsData.from_2d(atoms, h, indices=indices)
