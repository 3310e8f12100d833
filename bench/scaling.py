"""``python -m bench.scaling [S1 S2 S3] [--quick]``: how dualad's sparse and
structured Hessians grow with the problem, beside hand-written NumPy.

* S1: Lennard-Jones cluster, ``hessian(mode="auto")``, N = 32 ... 1024 atoms,
  vs the hand-written dense 3x3-block Hessian (``bench.workloads``).
* S2: Rosenbrock ``hessian(csr=True)``, n = 10^4, 10^5, 10^6, first call
  (planning, detection, coloring, evaluation) and repeated, vs a hand-written
  NumPy CSR assembly of the tridiagonal Hessian.
* S3: periodic Lennard-Jones with a 2.5 sigma cutoff and a neighbour list
  (``scipy.spatial.cKDTree.query_pairs`` with shift vectors),
  ``hessian(csr=True)`` for N = 10^3, 10^4, 10^5 atoms: checked against a
  hand-written CSR Hessian at 10^3 and by Hessian-vector products (``hvp``)
  at the largest size; time and peak memory (``ru_maxrss`` growth).

Every dualad result is checked against its reference before it is timed.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from bench.workloads import lj_energy, lj_hessian_ref, lj_positions


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------
# S2: Rosenbrock
# ---------------------------------------------------------------------------
def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_hessian_ref(x):
    """Hand-written tridiagonal Hessian as CSR."""
    import scipy.sparse as sp
    n = x.shape[0]
    diag = np.zeros(n)
    diag[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    diag[1:] += 200.0
    off = -400.0 * x[:-1]
    return sp.diags([off, diag, off], [-1, 0, 1], format="csr")


# ---------------------------------------------------------------------------
# S3: periodic LJ with a cutoff and a neighbour list
# ---------------------------------------------------------------------------
RC = 2.5


def periodic_lattice(n_atoms: int, spacing: float = 1.12, seed: int = 0):
    """(x flat (3N,), box length): a jittered simple cubic lattice filling a
    periodic cube (N rounded to the next cube)."""
    side = int(round(n_atoms ** (1 / 3)))
    g = np.arange(side)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    box = side * spacing
    r = (spacing * grid + rng.normal(0.0, 0.05, grid.shape)) % box
    return r.reshape(-1), box


def neighbour_list(x, box: float, rc: float = RC):
    """Pairs ``i < j`` within ``rc`` (minimum image) and their shift vectors
    ``d = r_i - r_j + shift`` (a constant of the list, as ASE returns them)."""
    from scipy.spatial import cKDTree
    r = x.reshape(-1, 3)
    pairs = cKDTree(r, boxsize=box).query_pairs(rc, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    d = r[i] - r[j]
    shift = -box * np.round(d / box)
    return i, j, shift


def lj_cut_energy(x, i, j, shift, rc: float = RC):
    """Truncated and shifted LJ over a neighbour list: the cutoff by
    ``np.where`` (pairs that drift past ``rc`` contribute nothing)."""
    r = x.reshape(-1, 3)
    d = r[i] - r[j] + shift
    r2 = np.sum(d * d, axis=1)
    s6 = 1.0 / r2 ** 3
    e_rc = 4.0 * (rc ** -12 - rc ** -6)
    return np.sum(np.where(r2 < rc * rc, 4.0 * (s6 * s6 - s6) - e_rc, 0.0))


def lj_cut_hessian_ref(x, i, j, shift, rc: float = RC):
    """Hand-written CSR Hessian from the 3x3 pair blocks."""
    import scipy.sparse as sp
    r = x.reshape(-1, 3)
    n = r.shape[0]
    d = r[i] - r[j] + shift
    r2 = np.einsum("pk,pk->p", d, d)
    inside = r2 < rc * rc
    i, j, d, r2 = i[inside], j[inside], d[inside], r2[inside]
    s6 = 1.0 / r2 ** 3
    # V(u) with u = r^2: V' = 4(-6 s12 + 3 s6)/u, V'' = 4(42 s12 - 12 s6)/u^2
    v1 = 4.0 * (-6.0 * s6 * s6 + 3.0 * s6) / r2
    v2 = 4.0 * (42.0 * s6 * s6 - 12.0 * s6) / (r2 * r2)
    blocks = 4.0 * v2[:, None, None] * d[:, :, None] * d[:, None, :] \
        + 2.0 * v1[:, None, None] * np.eye(3)
    a = np.arange(3)
    rows_i = (3 * i[:, None, None] + a[None, :, None]) * np.ones((1, 1, 3), dtype=np.int64)
    cols_j = (3 * j[:, None, None] + a[None, None, :]) * np.ones((1, 3, 1), dtype=np.int64)
    rows_j = (3 * j[:, None, None] + a[None, :, None]) * np.ones((1, 1, 3), dtype=np.int64)
    cols_i = (3 * i[:, None, None] + a[None, None, :]) * np.ones((1, 3, 1), dtype=np.int64)
    rows = np.concatenate([rows_i, rows_j, rows_i, rows_j]).ravel()
    cols = np.concatenate([cols_i, cols_j, cols_j, cols_i]).ravel()
    vals = np.concatenate([blocks, blocks, -blocks, -blocks]).ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(3 * n, 3 * n))


# ---------------------------------------------------------------------------
# runners
# ---------------------------------------------------------------------------
def s1(quick: bool) -> list:
    import dualad as da
    rows = []
    for n_atoms in ((32, 128, 512) if quick else (32, 64, 128, 256, 512, 1024)):
        x = lj_positions(n_atoms)
        h = da.hessian(lj_energy)
        t = time.perf_counter()
        got = h(x)
        first = time.perf_counter() - t
        ref = lj_hessian_ref(x)
        err = np.max(np.abs(got - ref)) / np.max(np.abs(ref))
        t_d = _best(lambda: h(x), 2 if n_atoms >= 512 else 3)
        t_r = _best(lambda: lj_hessian_ref(x), 3)
        mode = da.plan(lj_energy, x, kind="hessian").mode
        rows.append(("S1 LJ auto", f"N={n_atoms}", mode, first, t_d, t_r, err, None))
    return rows


def s2(quick: bool) -> list:
    import dualad as da
    rows = []
    for n in ((10**4, 10**5) if quick else (10**4, 10**5, 10**6)):
        x = np.linspace(-1.2, 1.1, n)
        f = lambda x: rosen(x)                       # a fresh function: nothing cached
        h = da.hessian(f, csr=True)
        t = time.perf_counter()
        got = h(x)
        first = time.perf_counter() - t
        ref = rosen_hessian_ref(x)
        err = abs(got - ref).max() / abs(ref).max()
        t_d = _best(lambda: h(x))
        t_r = _best(lambda: rosen_hessian_ref(x))
        mode = da.plan(f, x, kind="hessian", csr=True).mode
        rows.append(("S2 Rosenbrock csr", f"n={n}", mode, first, t_d, t_r, err, None))
    return rows


def s3(quick: bool) -> list:
    import dualad as da
    rows = []
    for n_atoms in ((1000, 8000) if quick else (1000, 10**4, 10**5)):
        x, box = periodic_lattice(n_atoms)
        i, j, shift = neighbour_list(x, box)
        f = lambda x, i=i, j=j, shift=shift: lj_cut_energy(x, i, j, shift)
        h = da.hessian(f, csr=True)
        rss0 = _rss_mb()
        t = time.perf_counter()
        got = h(x)
        first = time.perf_counter() - t
        peak = _rss_mb() - rss0
        if x.shape[0] <= 3 * 10**4:
            ref = lj_cut_hessian_ref(x, i, j, shift)
            err = abs(got - ref).max() / abs(ref).max()
            t_r = _best(lambda: lj_cut_hessian_ref(x, i, j, shift), 2)
        else:
            v = np.random.default_rng(1).normal(size=x.shape)
            hv = da.hvp(f, (x,), (v,))[1]
            err = np.max(np.abs(got @ v - hv)) / np.max(np.abs(hv))
            t_r = None
        t_d = _best(lambda: h(x), 1) if n_atoms <= 10**4 else None
        mode = da.plan(f, x, kind="hessian", csr=True).mode
        rows.append(("S3 periodic LJ cutoff csr", f"N={x.shape[0] // 3}, "
                     f"{i.shape[0]} pairs", mode, first, t_d, t_r, err, peak))
    return rows


def _fmt(t) -> str:
    return "-" if t is None else (f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="*", default=["S1", "S2", "S3"])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    runners = {"S1": s1, "S2": s2, "S3": s3}
    print("| case | size | mode | first call | repeated | hand-written | ratio | "
          "rel. error | peak RSS growth |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in a.which:
        for case, size, mode, first, rep, ref, err, peak in runners[name.upper()](a.quick):
            ratio = "-" if rep is None or ref is None else f"{rep / ref:.1f}x"
            mem = "-" if peak is None else f"{peak:.0f} MB"
            print(f"| {case} | {size} | {mode} | {_fmt(first)} | {_fmt(rep)} | {_fmt(ref)} | "
                  f"{ratio} | {err:.1e} | {mem} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
