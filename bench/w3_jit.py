"""W3 (tanh MLP 64->256->256->1, batch 1024, float64): ``da.jit`` jvp and
vjp against JAX jit, interleaved call by call in ONE process (min and
median of the wall clock; ratios are what to compare on a shared machine).

Run from the repository root::

    PYTHONPATH=. python bench/w3_jit.py            # library default threads
    PYTHONPATH=. python bench/w3_jit.py --threads 1
"""
from __future__ import annotations

import argparse
import os
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="0: library defaults")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args(argv)
    if args.threads > 0:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
        os.environ["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
    import numpy as np

    import bench.peers as peers
    import bench.workloads as wl
    import dualad as da
    params, x, v = wl.w3_data()
    jv = da.jit(lambda p, a, b: da.jvp(lambda xx: wl.mlp(p, xx), (a,), (b,)))
    vj = da.jit(lambda p, a: da.grad(lambda q: wl.w3_loss(q, a))(p))
    for g, w in zip(jv(params, x, v), wl.w3_jvp_ref(params, x, v)):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13 * np.abs(w).max())
    for g, w in zip(vj(params, x), wl.w3_vjp_ref(params, x)):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13 * np.abs(w).max())
    fns = {"da.jit jvp": lambda: jv(params, x, v), "da.jit vjp": lambda: vj(params, x)}
    try:
        jax = peers._jax()
        f1, a1 = peers._jax_fn("W3.jvp", {"params": params, "x": x, "v": v})
        f2, a2 = peers._jax_fn("W3.vjp", {"params": params, "x": x})
        f1, f2 = jax.jit(f1), jax.jit(f2)
        fns["JAX jit jvp"] = lambda: jax.block_until_ready(f1(*a1))
        fns["JAX jit vjp"] = lambda: jax.block_until_ready(f2(*a2))
    except ImportError:
        pass
    for f in fns.values():
        f()
        f()
    res = {k: [] for k in fns}
    for _ in range(args.reps):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            res[k].append(time.perf_counter() - t)
    print(f"W3 jit, threads={args.threads or 'default'}, load {os.getloadavg()[0]:.1f}; "
          "ms, wall min / median")
    for k, t in res.items():
        peer = res.get(k.replace("da.jit", "JAX jit"))
        ratio = "" if peer is None or k.startswith("JAX") else (
            f"  x JAX jit {min(t) / min(peer):.2f} / {np.median(t) / np.median(peer):.2f}")
        print(f"{k:12s} {min(t) * 1e3:8.2f} {np.median(t) * 1e3:8.2f}{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
