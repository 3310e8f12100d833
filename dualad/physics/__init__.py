"""Ready-made energies of atomic systems, written in plain NumPy.

They are examples of the style :class:`dualad.ase.DualadCalculator` expects,
``energy(positions, cell, numbers, neighbors=..., **params)``, and work on
their own with any dualad transform (no ASE needed).

May import: nothing of dualad (plain NumPy, differentiated from outside).

>>> import numpy as np, dualad as da
>>> from dualad.physics import lennard_jones
>>> r = np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0]])
>>> f = -da.grad(lennard_jones)(r, None, None)
>>> bool(np.allclose(f[0], -f[1]))
True
"""
from dualad.physics.potentials import Neighbors as Neighbors
from dualad.physics.potentials import all_pairs as all_pairs
from dualad.physics.potentials import eam as eam
from dualad.physics.potentials import harmonic_bonded as harmonic_bonded
from dualad.physics.potentials import lennard_jones as lennard_jones
from dualad.physics.potentials import morse as morse
from dualad.physics.potentials import pair_vectors as pair_vectors

__all__ = ["Neighbors", "all_pairs", "eam", "harmonic_bonded", "lennard_jones", "morse",
           "pair_vectors"]
