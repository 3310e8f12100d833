"""dualad quickstart: exact derivatives of plain NumPy physics code.

Run with `make demo` (or `python examples/quickstart.py`). Every result is
checked against an independent reference (finite differences, a symmetry of
the physics, or a closed form) and the script stops if a check fails.
"""
import numpy as np

import dualad as da


def report(what, err, tol):
    assert err < tol, f"{what}: error {err:.2e} above {tol:.0e}"
    print(f"  check: OK  ({what}: max error {err:.1e})")


# 1. JVP: how fast does a Morse bond energy change along a displacement?
#    V = sum_bonds D (1 - exp(-a (r - r0)))^2 for a bent triatomic molecule.
D, a, r0 = 4.6, 1.9, 0.96


def morse(x):
    r = x.reshape(3, 3)
    bonds = np.sqrt(np.sum((r[[0, 0]] - r[[1, 2]]) ** 2, axis=1))   # O-H1, O-H2
    return np.sum(D * (1.0 - np.exp(-a * (bonds - r0))) ** 2)


x = np.array([0.0, 0.0, 0.0, 1.0, 0.1, 0.0, -0.3, 0.95, 0.05])
v = np.random.default_rng(0).normal(size=9)           # a direction in configuration space
energy, dE = da.jvp(morse, (x,), (v,))                # one forward pass: V(x) and dV/dx . v
h = 1e-5
fd = (morse(x + h * v) - morse(x - h * v)) / (2 * h)   # central difference
print(f"1. Morse energy {float(energy):.6f}, directional derivative {float(dE):.8f}")
report("JVP vs central difference", abs(float(dE) - fd), 1e-7)


# 2. Jacobian: the field-gradient tensor dE_i/dx_j of a point charge.
#    E(r) = r / |r|^3 is curl-free (symmetric Jacobian) and, away from the
#    charge, divergence-free (traceless Jacobian: Gauss's law in vacuum).
def efield(r):
    return r / np.sqrt(np.sum(r * r)) ** 3


p = np.array([0.3, -0.7, 1.1])
J_fwd = da.jacfwd(efield)(p)                          # 3 forward passes (columns)
J_rev = da.jacrev(efield)(p)                          # 3 reverse passes (rows)
J_fd = np.stack([(efield(p + h * e) - efield(p - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
print("2. field gradient tensor dE_i/dx_j at", p, "\n", np.round(J_fwd, 6))
report("jacfwd vs jacrev", np.max(np.abs(J_fwd - J_rev)), 1e-13)
report("jacfwd vs finite differences", np.max(np.abs(J_fwd - J_fd)), 1e-7)
report("curl E = 0 (symmetry)", np.max(np.abs(J_fwd - J_fwd.T)), 1e-13)
report("div E = 0 (trace)", abs(np.trace(J_fwd)), 1e-13)


# 3. Hessian of a Lennard-Jones cluster: 4 atoms at the LJ4 minimum, a regular
#    tetrahedron with edge 2^(1/6). The 12 x 12 Hessian must be symmetric and
#    have 6 zero modes (3 rigid translations + 3 rigid rotations).
def lj_energy(x):
    r = x.reshape(-1, 3)
    i, j = np.triu_indices(len(r), 1)
    s = 1.0 / np.sqrt(np.sum((r[i] - r[j]) ** 2, axis=1))
    return np.sum(4.0 * (s**12 - s**6))


tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
tet *= 2 ** (1 / 6) / np.sqrt(8.0)                    # edge length 2^(1/6)
x0 = tet.ravel()
H = da.hessian(lj_energy)(x0)
grad = da.grad(lj_energy)(x0)
print(f"3. LJ4 energy {float(lj_energy(x0)):.6f} (exact -6), Hessian {H.shape}")
report("gradient at the minimum", np.max(np.abs(grad)), 1e-12)
report("symmetry", np.max(np.abs(H - H.T)), 1e-12)
translations = [np.tile(e, 4) for e in np.eye(3)]
rotations = [np.cross(e, tet).ravel() for e in np.eye(3)]   # omega x r_i
report("H . (translations, rotations)",
       max(np.max(np.abs(H @ m)) for m in translations + rotations), 1e-11)
freqs = np.linalg.eigvalsh(H)
print("  eigenvalues:", np.round(freqs, 6) + 0.0)
report("6 zero modes", np.max(np.abs(freqs[:6])), 1e-10)
assert np.all(freqs[6:] > 1.0), "the 6 vibrations of a stable cluster are positive"
eps = 1e-4
H_fd = np.array([[(lj_energy(x0 + eps * (ei + ej)) - lj_energy(x0 + eps * (ei - ej))
                   - lj_energy(x0 - eps * (ei - ej)) + lj_energy(x0 - eps * (ei + ej)))
                  / (4 * eps**2) for ej in np.eye(12)] for ei in np.eye(12)])
report("Hessian vs finite differences (relative)",
       np.max(np.abs(H - H_fd)) / np.max(np.abs(H)), 1e-5)


# 4. An 8th derivative in one Taylor-mode pass: d^8/dx^8 exp(-x^2/2) equals
#    He_8(x) exp(-x^2/2) (probabilists' Hermite polynomial, Gaussian wave packets).
def hermite_he(n, x):
    """He_{k+1} = x He_k - k He_{k-1}, He_0 = 1, He_1 = x."""
    h0, h1 = 1.0, x
    for k in range(1, n):
        h0, h1 = h1, x * h1 - k * h0
    return h1 if n > 0 else h0


gauss = lambda x: np.exp(-x**2 / 2)
for x in (0.0, 0.7, 2.5):
    d8 = float(da.derivative(gauss, x, order=8))
    exact = hermite_he(8, x) * np.exp(-x**2 / 2)
    print(f"4. d^8/dx^8 exp(-x^2/2) at x={x}: {d8:.12f}  (He_8 closed form {exact:.12f})")
    report("8th derivative vs Hermite closed form", abs(d8 - exact) / max(1.0, abs(exact)),
           1e-10)

print("all checks passed")
