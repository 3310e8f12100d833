"""Timing, checking and the result table.

A :class:`Task` is one quantity (e.g. "W4 N=128 Hessian") computed by several
:class:`Row` s (systems). Each row's ``setup()`` returns a zero-argument
callable; the harness calls it once (the "first call": JAX's trace + compile,
Numba's compile), checks the result against the task's reference, warms up,
then takes the median of ``repeats`` samples, each the mean of enough inner
calls to last a few milliseconds. Peak RSS is measured on one further call
(Linux: the high-water mark is reset through /proc/self/clear_refs).
"""
from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# exceptions meaning "this dualad feature does not exist yet": printed as n/a
MISSING = (ImportError, AttributeError, NotImplementedError)

KINDS = ("npf", "dualad", "peer", "floor")


@dataclass
class Row:
    system: str
    kind: str                               # one of KINDS
    setup: Callable[[], Callable[[], Any]]
    missing: tuple = ()                     # extra exception types that mean n/a
    key: str | None = None                  # shared rows (np f) run once per key

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown row kind {self.kind!r}")


@dataclass
class Task:
    workload: str                           # "W1" ... "W7"
    label: str                              # shown in the table
    rows: list
    reference: Callable[[], Any] | None = None
    check: Callable[[Any, Any], str | None] | None = None


@dataclass
class Result:
    task: str
    system: str
    kind: str
    status: str = "ok"                      # ok | FAIL | n/a | ERROR
    median: float = math.nan
    first: float = math.nan
    peak_mb: float = math.nan
    runs: int = 0
    reduced: bool = False                   # fewer runs than asked (row budget)
    message: str = ""
    shown: bool = True


@dataclass
class Config:
    repeats: int = 7
    warmup: int = 1
    sample_s: float = 0.02                  # aim for samples at least this long
    max_inner: int = 100_000
    row_budget_s: float = 120.0             # very slow rows get fewer timed runs
    memory: bool = True
    verbose: bool = True
    results: list = field(default_factory=list)


# ---------------------------------------------------------------- conversion

def to_numpy(x) -> Any:
    """Plain NumPy (nested tuples kept) from JAX / PyTorch / SciPy / dualad results."""
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return tuple(to_numpy(v) for v in x)
    if hasattr(x, "detach") and hasattr(x, "numpy"):      # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "toarray") and not isinstance(x, np.ndarray):   # scipy.sparse
        return np.asarray(x.toarray())
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x, dtype=float)


def _leaves(x) -> list:
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in _leaves(x[k])]
    if isinstance(x, (tuple, list)):
        return [v for item in x for v in _leaves(item)]
    return [x]


def rel_error(got, want) -> float:
    """max |got - want| / max |want| over all leaves (shapes must agree)."""
    g, w = _leaves(to_numpy(got)), _leaves(to_numpy(want))
    if len(g) != len(w):
        raise ValueError(f"got {len(g)} arrays, expected {len(w)}")
    err, scale = 0.0, 0.0
    for a, b in zip(g, w):
        if a.shape != b.shape:
            raise ValueError(f"shape {a.shape} != expected {b.shape}")
        if a.size:
            if not np.all(np.isfinite(a)):
                return math.inf
            err = max(err, float(np.max(np.abs(a - b))))
            scale = max(scale, float(np.max(np.abs(b))))
    return err / max(scale, 1e-300)


def close_check(rtol: float = 1e-8):
    def check(got, want):
        e = rel_error(got, want)
        return None if e <= rtol else f"relative error {e:.2e} > {rtol:.0e}"
    return check


# ---------------------------------------------------------------- memory

def _status_kb(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    """Give freed heap pages back to the OS, so that the call's own allocations
    show up in the RSS instead of reusing memory the allocator kept."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_delta_mb(fn: Callable[[], Any]) -> float:
    """Peak resident memory during one call of ``fn``, above the RSS before it."""
    gc.collect()
    _malloc_trim()
    if not _reset_peak():
        return math.nan
    before = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return math.nan
    return max(0.0, (peak - before) / 1024.0)


# ---------------------------------------------------------------- running

def _classify(exc: BaseException, row: Row) -> str:
    return "n/a" if isinstance(exc, MISSING + tuple(row.missing)) else "ERROR"


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {msg[0] if msg else ''}"
    return text if len(text) <= 160 else text[:157] + "..."


def time_callable(fn: Callable[[], Any], cfg: Config) -> tuple[float, int]:
    """(median seconds per call, number of samples) after warm-up. A row whose
    calls are so slow that ``repeats`` of them would exceed ``row_budget_s``
    gets fewer samples (at least one)."""
    t_est = math.inf
    for _ in range(max(1, cfg.warmup)):
        t0 = time.perf_counter()
        fn()
        t_est = min(t_est, time.perf_counter() - t0)
    inner = 1
    if t_est < cfg.sample_s:
        inner = int(min(cfg.max_inner, max(1, math.ceil(cfg.sample_s / max(t_est, 1e-9)))))
    repeats = cfg.repeats
    if t_est * repeats > cfg.row_budget_s:
        repeats = max(1, int(cfg.row_budget_s / t_est))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples), len(samples)


def run_row(task: Task, row: Row, ref, cfg: Config) -> Result:
    res = Result(task.label, row.system, row.kind)
    try:
        fn = row.setup()
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        res.first = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - a row never crashes the harness
        res.status, res.message = _classify(exc, row), _short(exc)
        return res
    if row.kind != "npf" and task.check is not None and ref is not None:
        try:
            problem = task.check(out, ref)
        except Exception as exc:  # noqa: BLE001
            problem = _short(exc)
        if problem:
            res.status, res.message = "FAIL", problem
            return res
    del out
    try:
        res.median, res.runs = time_callable(fn, cfg)
        res.reduced = res.runs < cfg.repeats
        if cfg.memory:
            res.peak_mb = peak_rss_delta_mb(fn)
    except Exception as exc:  # noqa: BLE001
        res.status, res.message = "ERROR", _short(exc)
    return res


def run_tasks(tasks: list, cfg: Config) -> list:
    shared: dict = {}
    results = []
    try:
        _run_all(tasks, cfg, shared, results)
    except KeyboardInterrupt:
        print("[bench] interrupted: table of the rows run so far", file=sys.stderr)
    cfg.results = results
    return results


def _run_all(tasks: list, cfg: Config, shared: dict, results: list) -> None:
    for task in tasks:
        ref = None
        if task.reference is not None:
            try:
                ref = task.reference()
            except Exception as exc:  # noqa: BLE001
                print(f"[bench] {task.label}: reference failed: {_short(exc)}", file=sys.stderr)
        for row in task.rows:
            if cfg.verbose:
                print(f"[bench] {task.label:<24} {row.system}", file=sys.stderr, flush=True)
            if row.key is not None and row.key in shared:
                r = Result(**{**shared[row.key].__dict__, "task": task.label, "shown": False})
            else:
                r = run_row(task, row, ref, cfg)
                if row.key is not None:
                    shared[row.key] = r
            results.append(r)
            if cfg.verbose and r.status != "ok":
                print(f"[bench]   -> {r.status}: {r.message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- table

def fmt_time(t: float) -> str:
    if not math.isfinite(t):
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.2f} us" if t < 1e-5 else f"{t * 1e6:.1f} us"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms" if t < 1e-2 else f"{t * 1e3:.1f} ms"
    return f"{t:.2f} s"


def fmt_ratio(r: float) -> str:
    if not math.isfinite(r):
        return "-"
    if r >= 100:
        return f"{r:.0f}"
    if r >= 10:
        return f"{r:.1f}"
    return f"{r:.2f}"


def format_table(results: list, memory: bool = True) -> str:
    by_task: dict = {}
    for r in results:
        by_task.setdefault(r.task, []).append(r)
    head = ["workload", "system", "median", "1st call", "x np f", "x best"]
    if memory:
        head.append("peak MB")
    lines = []
    notes = []
    for label, rows in by_task.items():
        npf = next((r.median for r in rows if r.kind == "npf" and r.status == "ok"), math.nan)
        peers = [r.median for r in rows if r.kind == "peer" and r.status == "ok"]
        best = min(peers) if peers else math.nan
        for r in rows:
            if not r.shown:
                continue
            if r.status == "ok":
                median = fmt_time(r.median) + ("*" if r.reduced else "")
                if r.reduced:
                    notes.append(f"*     {label} / {r.system}: median of {r.runs} run(s) only "
                                 "(slow row; see --row-budget)")
                cells = [label, r.system, median, fmt_time(r.first),
                         fmt_ratio(r.median / npf), fmt_ratio(r.median / best)]
                if memory:
                    cells.append("-" if not math.isfinite(r.peak_mb) else f"{r.peak_mb:.1f}")
            else:
                cells = [label, r.system, r.status, "", "", ""] + ([""] if memory else [])
                notes.append(f"{r.status:5} {label} / {r.system}: {r.message}")
            lines.append(cells)
    widths = [max(len(str(c[k])) for c in [head] + lines) for k in range(len(head))]
    align = ["<", "<", ">", ">", ">", ">", ">"]

    def render(cells):
        return "  ".join(f"{str(c):{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [render(head), render(["-" * w for w in widths])]
    prev = None
    for cells in lines:
        wl = cells[0].split()[0]
        if prev is not None and wl != prev:
            out.append("")
        prev = wl
        out.append(render(cells))
    if notes:
        out.append("")
        out.append("notes:")
        out.extend("  " + n for n in notes)
    return "\n".join(out)
