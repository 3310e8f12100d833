"""``python -m bench [W1 ... W7] [--quick] [--peers jax,torch] [--json FILE]``

Runs the workloads of BENCH.md for dualad and the installed peers in one
process and prints one table. For timing, run it as ``make bench`` (which
unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this one command).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

# NumPy, the peers and the suite are imported in main(), after the thread
# settings below are in the environment (OpenBLAS and OpenMP read them once).
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS")


def set_threads(n: int) -> None:
    """One thread count for every library (0: leave their defaults). On a small
    or shared machine, OpenBLAS, PyTorch's OpenMP pool and XLA each spinning
    their own threads oversubscribe the cores and make timings meaningless."""
    if n <= 0:
        return
    if "numpy" in sys.modules:
        print("[bench] warning: numpy already imported; --threads may not apply to OpenBLAS",
              file=sys.stderr)
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    os.environ["BENCH_THREADS"] = str(n)
    # XLA's CPU runtime keeps its own pool whatever the flags say (JAX's W3
    # jvp ran at 1.7 cores "single-threaded", bench/NOTES.md h14m): the
    # process is pinned to n cores, so every library gets the same n.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:n])
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1").strip()


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="*", metavar="W",
                    help=f"subset to run, among {' '.join(WORKLOADS)} (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="3 timed samples of >= 5 ms instead of 7 of >= 20 ms")
    ap.add_argument("--repeats", type=int, default=None, help="timed samples per row")
    ap.add_argument("--peers", default=None,
                    help="comma-separated peers to run (jax,torch,autograd); 'none' for none")
    ap.add_argument("--row-budget", type=float, default=120.0, metavar="S",
                    help="seconds of timed calls per row before its repeats are cut (120)")
    ap.add_argument("--threads", type=int, default=0, metavar="N",
                    help="threads for every library (default 0: each library's defaults, "
                         "as users run them: the headline table; 1 for the secondary table)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS column")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    bad = [w for w in args.workloads if w.upper() not in WORKLOADS]
    if bad:
        ap.error(f"unknown workload(s) {bad}; choose among {', '.join(WORKLOADS)}")
    args.workloads = [w.upper() for w in args.workloads] or list(WORKLOADS)
    return args


def header(cfg, which, threads: int) -> str:
    import numpy as np

    import dualad

    from . import peers
    avail = peers.available()
    shown = [f"{k} {v}" for k, v in avail.items() if v and (which is None or k in which)]
    missing = [k for k, v in avail.items() if not v]
    lines = [f"dualad {dualad.__version__}, numpy {np.__version__}, python "
             f"{platform.python_version()}, {os.cpu_count()} CPUs, "
             f"{threads if threads > 0 else 'default'} thread(s) per library; peers: "
             f"{', '.join(shown) or 'none'}" + (f" (not installed: {', '.join(missing)})"
                                                if missing else ""),
             f"median of {cfg.repeats} samples (each >= {cfg.sample_s * 1e3:.0f} ms of calls) "
             "after warm-up; '1st call' includes compilation; every row checked against "
             "a hand-written reference first; x np f: ratio to the NumPy evaluation of f; "
             "x best: ratio to the fastest peer; peak MB: peak RSS above the RSS before one call"]
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            lines.append(f"warning: {var} is set; for timing run `make bench` (it unsets it)")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    set_threads(args.threads)
    from . import suite
    from .harness import Config, format_table, run_tasks
    cfg = Config()
    if args.quick:
        cfg.repeats, cfg.sample_s = 3, 0.005
    if args.repeats:
        cfg.repeats = args.repeats
    cfg.row_budget_s = args.row_budget
    cfg.memory = not args.no_memory
    cfg.verbose = not args.quiet
    which = None
    if args.peers is not None:
        which = set() if args.peers == "none" else {p.strip() for p in args.peers.split(",")}
    t0 = time.perf_counter()
    tasks = suite.build(args.workloads, which)
    results = run_tasks(tasks, cfg)
    print(header(cfg, which, args.threads))
    print()
    print(format_table(results, memory=cfg.memory))
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                        for k, v in r.__dict__.items()} for r in results], fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
