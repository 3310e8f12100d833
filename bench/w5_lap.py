"""W5 (PINN Laplacian, tanh MLP 3->64->64->1, 4096 points, float64): every
route in ONE process, interleaved call by call, timed by wall clock AND by
process CPU time.

Why CPU time: on a shared machine (load above the core count) a 15-60 ms call
is preempted by other processes; its wall time then measures the scheduler.
With one thread per library the process CPU time is the unloaded wall time
(up to cache pollution), so ratios of CPU times are the honest same-run
comparison; wall-clock ratios are printed beside them.

Run from the repository root::

    PYTHONPATH=. python bench/w5_lap.py --threads 1 --reps 30
    PYTHONPATH=. python bench/w5_lap.py --threads 0 --reps 30   # library defaults

``--threads 0`` leaves every library at its default (OpenBLAS and XLA then
use all cores; CPU time then sums the threads, so compare wall times).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _set_threads(n: int) -> None:
    if n <= 0:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()


def routes(slow: bool) -> dict:
    import numpy as np

    import bench.workloads as wl
    import dualad as da
    params, pts = wl.w5_data()

    def without_kernels():
        with da.kernels.use_kernels("numpy"):
            return wl.laplacian_forward(params, pts)

    out = {
        "dualad laplacian": lambda: wl.laplacian_forward(params, pts),
        "dualad jit laplacian": lambda: wl.laplacian_jit(params, pts),
        "dualad laplacian, kernels off": without_kernels,
        "NumPy fwd Laplacian (hand-written)": lambda: wl.laplacian_ref(params, pts),
    }
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy
        u1 = lambda q, x: wl.mlp(q, x[None, :], jnp)[0, 0]      # noqa: E731
        lap = jax.jit(jax.vmap(lambda q, x: jnp.trace(jax.hessian(u1, argnums=1)(q, x)),
                               in_axes=(None, 0)))
        q = tuple(jnp.asarray(w) for w in params)
        x = jnp.asarray(pts)
        out["JAX jit vmap(trace(hessian))"] = lambda: jax.block_until_ready(lap(q, x))
    except ImportError:
        pass
    if slow:
        out["dualad trace(vmap(hessian))"] = lambda: wl.laplacian_vmap_hessian(params, pts)
        out["dualad jvp(grad) x3 (old route)"] = lambda: wl.laplacian_fwd_rev(params, pts)
    ref = wl.laplacian_ref(params, pts)
    for name, f in out.items():
        np.testing.assert_allclose(np.asarray(f()), ref, rtol=1e-9, atol=1e-9,
                                   err_msg=name)
    return out


def measure(fns: dict, reps: int) -> dict:
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            c, t = time.process_time(), time.perf_counter()
            f()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {"wall": wall, "cpu": cpu}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="0: library defaults")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--slow-reps", type=int, default=5,
                    help="samples of the slow routes (vmap(hessian), jvp(grad) x3)")
    args = ap.parse_args(argv)
    if "numpy" in sys.modules:
        print("warning: numpy imported before the thread settings", file=sys.stderr)
    _set_threads(args.threads)
    import numpy as np
    fns = routes(slow=False)
    res = measure(fns, args.reps)
    if args.slow_reps:
        slow = {k: f for k, f in routes(slow=True).items() if k not in fns}
        extra = measure({**fns, **slow}, args.slow_reps)
        for kind in res:
            for k in slow:
                res[kind][k] = extra[kind][k]
    ref = "JAX jit vmap(trace(hessian))"
    ref = ref if ref in res["wall"] else "dualad laplacian"
    print(f"W5, threads={args.threads or 'default'}, load {os.getloadavg()[0]:.1f}; "
          f"ms; min / median; ratios: to {ref}")
    print(f"{'route':38s} {'cpu min':>8s} {'cpu med':>8s} {'wall min':>9s} {'wall med':>9s}"
          f" {'cpu med x':>9s} {'wall med x':>10s}")
    med = {kind: {k: float(np.median(v)) for k, v in res[kind].items()} for kind in res}
    for k in res["wall"]:
        c, w = np.array(res["cpu"][k]) * 1e3, np.array(res["wall"][k]) * 1e3
        print(f"{k:38s} {c.min():8.2f} {np.median(c):8.2f} {w.min():9.2f} {np.median(w):9.2f}"
              f" {med['cpu'][k] / med['cpu'][ref]:9.2f} {med['wall'][k] / med['wall'][ref]:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
