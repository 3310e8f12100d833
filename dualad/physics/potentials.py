"""Energies of atomic systems in plain NumPy, ready for every dualad transform.

Signature: ``energy(positions, cell, numbers, neighbors=None, **params)`` with
``positions`` ``(N, 3)`` (the differentiated argument), ``cell`` ``(3, 3)``
(rows are lattice vectors; differentiated for the stress), ``numbers`` the
atomic numbers. ``neighbors`` is a :class:`Neighbors` ``(i, j, shifts)``
list, both directions of every pair, as ``ase.neighborlist.neighbor_list("ijS",
atoms, cutoff)`` gives it; ``None`` means every ordered pair of a finite
cluster (:func:`all_pairs`). Pair vectors are ``positions[j] - positions[i] +
shifts @ cell``, so a strain of the cell and positions strains every pair:
that is what makes the stress come out of the same code.

The pair potentials reproduce ASE's ``LennardJones`` and ``MorsePotential``
term by term (same cutoffs and shifts), so energies, forces and stresses agree
to rounding (``tests/test_ase.py``).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Neighbors(NamedTuple):
    """A full (both-ways) neighbour list: pair ``k`` runs from atom ``i[k]``
    to atom ``j[k]`` in the periodic image ``shifts[k]`` (integer cell
    offsets)."""
    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray


def all_pairs(n: int) -> Neighbors:
    """Every ordered pair ``i != j`` of ``n`` atoms, no periodic images.

    >>> all_pairs(3).i
    array([0, 0, 1, 1, 2, 2])
    """
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    return Neighbors(i, j, np.zeros((i.size, 3)))


def pair_vectors(positions, cell, neighbors: Neighbors | None):
    """``(pairs, 3)`` vectors from atom ``i`` to the image of atom ``j``, and
    the neighbour list used (:func:`all_pairs` when ``neighbors`` is None)."""
    nb = all_pairs(len(positions)) if neighbors is None else neighbors
    d = positions[nb.j] - positions[nb.i]
    if cell is not None and np.any(nb.shifts):
        d = d + np.asarray(nb.shifts, dtype=float) @ cell
    return d, nb


def _smoothstep_cut(r, r_on, r_off):
    """ASE's ``fcut``: 1 below ``r_on``, 0 above ``r_off``, a quintic
    (C^2) in between. ``np.where`` keeps the unselected branches out of the
    derivatives."""
    s = 1.0 - (r - r_on) / (r_off - r_on)
    poly = 6.0 * s ** 5 - 15.0 * s ** 4 + 10.0 * s ** 3
    return np.where(s >= 1.0, 1.0, np.where(s > 0.0, poly, 0.0))


def lennard_jones(positions, cell, numbers, neighbors: Neighbors | None = None, *,
                  sigma: float = 1.0, epsilon: float = 1.0, rc: float | None = None,
                  ro: float | None = None, smooth: bool = False):
    """Lennard-Jones energy, ASE's conventions: cut at ``rc`` (default
    ``3 sigma``) and shifted to 0 there, or (``smooth=True``) multiplied by
    ASE's cutoff function between ``ro`` (default ``0.66 rc``) and ``rc``.

    >>> r = np.array([[0.0, 0.0, 0.0], [2 ** (1 / 6), 0.0, 0.0]])
    >>> round(float(lennard_jones(r, None, None, rc=10.0)), 6)
    -0.999996
    """
    rc = 3.0 * sigma if rc is None else rc
    ro = 0.66 * rc if ro is None else ro
    d, _ = pair_vectors(positions, cell, neighbors)
    r2 = np.sum(d * d, axis=1)
    c6 = (sigma ** 2 / r2) ** 3
    e = 4.0 * epsilon * (c6 * c6 - c6)
    if smooth:
        rc2, ro2 = rc ** 2, ro ** 2
        fc = (rc2 - r2) ** 2 * (rc2 + 2.0 * r2 - 3.0 * ro2) / (rc2 - ro2) ** 3
        e = e * np.where(r2 < ro2, 1.0, np.where(r2 < rc2, fc, 0.0))
    else:
        e = e - 4.0 * epsilon * ((sigma / rc) ** 12 - (sigma / rc) ** 6)
    return 0.5 * np.sum(np.where(r2 <= rc ** 2, e, 0.0))


def morse(positions, cell, numbers, neighbors: Neighbors | None = None, *,
          epsilon: float = 1.0, rho0: float = 6.0, r0: float = 1.0, rcut1: float = 1.9,
          rcut2: float = 2.7):
    """Morse energy ``epsilon (e^{-2 rho0 (r/r0 - 1)} - 2 e^{-rho0 (r/r0 - 1)})``
    with ASE's ``MorsePotential`` smooth cutoff between ``rcut1 r0`` and
    ``rcut2 r0``.

    >>> r = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    >>> float(morse(r, None, None))
    -1.0
    """
    d, _ = pair_vectors(positions, cell, neighbors)
    r = np.sqrt(np.sum(d * d, axis=1))
    expf = np.exp(rho0 * (1.0 - r / r0))
    return 0.5 * np.sum(epsilon * expf * (expf - 2.0) * _smoothstep_cut(r, rcut1 * r0,
                                                                       rcut2 * r0))


def eam(positions, cell, numbers, neighbors: Neighbors | None = None, *,
        A: float = 0.2, p: float = 10.0, xi: float = 1.8, q: float = 4.0, r0: float = 2.88,
        rcut1: float = 4.0, rcut2: float = 5.0):
    """A simple embedded-atom (second-moment tight-binding, Gupta/RGL) energy:
    ``sum_i [ sum_j A e^{-p (r_ij/r0 - 1)} / 2 - xi sqrt(rho_i) ]`` with
    ``rho_i = sum_j e^{-2 q (r_ij/r0 - 1)}``, every pair term multiplied by a
    smooth cutoff between ``rcut1`` and ``rcut2``. Defaults are gold-like
    (eV, Angstrom). A genuine many-body term: ``sqrt`` of a per-atom sum.

    >>> r = np.array([[0.0, 0.0, 0.0], [2.88, 0.0, 0.0]])
    >>> round(float(eam(r, None, None)), 6)
    -3.4
    """
    d, nb = pair_vectors(positions, cell, neighbors)
    r = np.sqrt(np.sum(d * d, axis=1))
    fc = _smoothstep_cut(r, rcut1, rcut2)
    pair = 0.5 * np.sum(A * np.exp(-p * (r / r0 - 1.0)) * fc)
    # rho_i as (atoms x pairs) indicator @ pair densities: a per-atom sum that
    # every transform differentiates (np.bincount has no derivative).
    owner = (np.arange(len(positions))[:, None] == np.asarray(nb.i)[None, :]).astype(float)
    rho = owner @ (np.exp(-2.0 * q * (r / r0 - 1.0)) * fc)
    return pair - xi * np.sum(np.sqrt(rho))


def harmonic_bonded(positions, cell=None, numbers=None, neighbors=None, *, bonds=(),
                    bond_k=(), bond_r0=(), angles=(), angle_k=(), angle_theta0=()):
    """A harmonic force field of a molecule: ``sum k_b (r - r0)^2 / 2`` over
    ``bonds`` (index pairs) and ``sum k_a (theta - theta0)^2 / 2`` over
    ``angles`` (triples ``(i, j, k)``, the angle at ``j``, radians).

    >>> water = dict(bonds=[(0, 1), (0, 2)], bond_k=[48.0, 48.0], bond_r0=[0.9572] * 2,
    ...              angles=[(1, 0, 2)], angle_k=[4.0], angle_theta0=[np.radians(104.52)])
    >>> r = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.24, 0.9266, 0.0]])
    >>> float(harmonic_bonded(r, **water)) < 1e-3
    True
    """
    energy = 0.0
    if len(bonds):
        b = np.asarray(bonds)
        d = positions[b[:, 1]] - positions[b[:, 0]]
        r = np.sqrt(np.sum(d * d, axis=1))
        energy = energy + 0.5 * np.sum(np.asarray(bond_k) * (r - np.asarray(bond_r0)) ** 2)
    if len(angles):
        a = np.asarray(angles)
        u = positions[a[:, 0]] - positions[a[:, 1]]
        v = positions[a[:, 2]] - positions[a[:, 1]]
        cos = np.sum(u * v, axis=1) / np.sqrt(np.sum(u * u, axis=1) * np.sum(v * v, axis=1))
        theta = np.arccos(cos)
        energy = energy + 0.5 * np.sum(np.asarray(angle_k)
                                       * (theta - np.asarray(angle_theta0)) ** 2)
    return energy
