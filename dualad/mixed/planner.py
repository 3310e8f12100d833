"""The mixed-mode planner: which mode, how many directions per pass, and why.

A cheap *probe* runs the function once under a counting interpreter (number
of primitive calls ``K``, total elements ``W`` and bytes of the
intermediates, input and output sizes). A cost model in microseconds,

* ``OP_*``: Python/dispatch overhead per primitive call of one pass (a
  forward-over-reverse pass binds about seven primitives per user op),
* ``ELEM``: time per element of an intermediate, per carried direction,

prices every mode as (number of batched passes) x (cost of one pass). The
memory budget (default: a quarter of the available RAM; see
:func:`set_memory_budget`) caps the directions carried by one pass: a pass
keeps about ``BYTES_PER_DIRECTION[mode] * intermediate bytes`` per direction
alive, so ``chunk = budget // that`` (never below 1: a problem whose single
directional pass fits is never refused). For inputs of at least
:data:`SPARSE_MIN_N` entries the sparsity pattern is detected (once, cached)
and the compressed (colored) evaluation is priced too, and for Hessians the
structured mode (:mod:`dualad.structured`) when its probe says it fits.
The textbook mode (forward when ``n_in <= n_out``, else reverse; fwd-rev
for Hessians) is kept unless another is priced at least 2x cheaper
(:data:`SWITCH`): the estimates are rough, and within 2x either is fine.

:func:`plan` returns a :class:`Plan` whose ``reason`` quotes the numbers.
Plans are cached per function, kind, input shapes/dtypes and the structure
of the arguments held fixed.

Example::

    >>> import numpy as np, dualad as da
    >>> p = da.plan(lambda x: np.sum(x ** 2), np.ones(384), kind="jacobian")
    >>> p.mode
    'rev'
    >>> print(p.reason)  # doctest: +ELLIPSIS
    n_in=384, n_out=1, 2 ops, 3.0 KB: reverse (1 pass of 1, est. ...) vs forward (2 chunks of 192...
"""
from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dualad.core.args import as_array, as_tuple_positions
from dualad.core.backend import peel
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, new_level
from dualad.core.registry import bind, shape_of
from dualad.core.tree import tree_flatten, tree_unflatten
from dualad.forward.api import pick_chunk
from dualad.mixed.sparsity import cache_for, coloring_for, pattern, pattern_key, volatile_reads

__all__ = ["Plan", "Probe", "plan", "probe", "set_memory_budget", "get_memory_budget",
           "choose", "format_bytes", "parse_bytes"]

# ----------------------------------------------------------------------------
# cost model constants (microseconds), measured on the bench workloads
# ----------------------------------------------------------------------------
OP_FWD = 8.0         # one primitive through a Dual pass (value + batched jvp)
OP_REC = 5.0         # one primitive recorded on the tape
OP_BWD = 7.0         # one primitive's vjp in the backward sweep
OP_FWD_REV = 25.0    # one user primitive through a batched forward-over-reverse pass
OP_REV_REV = 35.0    # ... through a reverse-over-reverse chunk (bigger tape)
OP_PAIR = 20.0       # one primitive through a hyper-dual / nested-forward pass
ELEM = 6e-4          # one element of an intermediate, per direction carried
MAX_CHUNK = 256      # most directions per pass: beyond, no overhead left to amortise
OP_STRUCT = 60.0     # one user primitive through a structured Hessian pass
SPARSE_MIN_N = 32    # probe for sparsity / structure only from this many inputs on
SWITCH = 0.5         # leave the textbook mode only for one priced 2x cheaper
COLOR_WORK = 0.02    # greedy coloring, per unit of sum(row nonzeros ** 2)

# Bytes kept alive per carried direction, in units of one evaluation's
# intermediate bytes: a forward pass keeps a tangent per live intermediate,
# a forward-over-reverse pass tangents of the tape values and of the
# cotangents too.
BYTES_PER_DIRECTION = {"fwd": 1.0, "rev": 1.0, "fwd-rev": 3.0, "rev-rev": 3.0,
                       "hyperdual": 1.0, "fwd-fwd": 2.0, "sparse": 3.0}


# ============================================================================
# memory budget
# ============================================================================
_budget: dict = {"bytes": None, "default": None, "at": 0.0}
_DEFAULT_TTL = 30.0          # seconds a measured default budget is reused
_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20,
          "MIB": 2**20, "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40,
          "TIB": 2**40}


def parse_bytes(value) -> int:
    """Bytes from an int or a string like ``"2GB"``, ``"512 MiB"``.

    >>> parse_bytes("1.5 KB"), parse_bytes(4096)
    (1536, 4096)
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"a memory budget must be positive, got {value}")
        return int(value)
    if isinstance(value, float) and value > 0:
        return int(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"cannot read a memory size from {value!r}; use bytes or e.g. '2GB'")
    return max(1, int(float(m.group(1)) * _UNITS[m.group(2).upper()]))


def format_bytes(n: float) -> str:
    """``"2.0 GB"``-style text (binary units).

    >>> format_bytes(3 * 2**30), format_bytes(1536)
    ('3.0 GB', '1.5 KB')
    """
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def memory_limit() -> int:
    """Bytes this process can still allocate: the least of the machine's
    available RAM, the cgroup's ``memory.max`` minus its current use, and
    ``RLIMIT_AS`` minus the address space in use. The one place every
    size check and the default budget read the real limit from.

    >>> memory_limit() > 0
    True
    """
    limit = _available_ram()
    for path_max, path_cur in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                               ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(path_max) as fh:
                raw = fh.read().strip()
            if raw == "max" or int(raw) >= 2**60:
                continue
            with open(path_cur) as fh:
                used = int(fh.read().strip())
            limit = min(limit, max(0, int(raw) - used))
            break
        except (OSError, ValueError):
            continue
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as fh:
                vm = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limit = min(limit, max(0, soft - vm))
    except (ImportError, OSError, ValueError):
        pass
    return max(1, limit)


def set_memory_budget(budget=None) -> None:
    """Set the memory one batched pass may use: bytes, or text such as
    ``"2GB"``; ``None`` restores the default (a quarter of the RAM available
    when a plan is made). Per call, ``memory_budget=`` overrides it.

    >>> import dualad as da
    >>> da.set_memory_budget("1GB"); da.planner.get_memory_budget()
    1073741824
    >>> da.set_memory_budget(None)
    """
    _budget["bytes"] = None if budget is None else parse_bytes(budget)


def get_memory_budget(override=None) -> int:
    """The budget in bytes: ``override``, else the set one, else the default.

    >>> get_memory_budget("64MB")
    67108864
    """
    if override is not None:
        return parse_bytes(override)
    if _budget["bytes"] is not None:
        return _budget["bytes"]
    now = time.monotonic()
    if _budget["default"] is None or now - _budget["at"] > _DEFAULT_TTL:
        # Reading /proc/meminfo costs ~30 us: measured again every 30 s only.
        _budget["default"] = max(64 * 2**20, memory_limit() // 4)
        _budget["at"] = now
    return _budget["default"]


# ============================================================================
# the probe: one evaluation under a counting interpreter
# ============================================================================
@dataclass(frozen=True)
class Probe:
    """What one evaluation of the function costs."""

    n_ops: int                 # primitive calls that touched the inputs
    n_elems: int               # elements of their results, summed
    n_bytes: int               # bytes of their results, summed
    n_in: int
    n_out: int
    itemsize: int = 8
    out_leaves: int = 1        # arrays in the output (reverse mode needs one)


class _Counted(Tracer):
    __slots__ = ("primal", "_level")

    def __init__(self, primal, level):
        self.primal, self._level = primal, level


class ProbeLevel(Level):
    """Counts the primitives that depend on the traced inputs and the sizes
    of their results (the planner's probe)."""

    __slots__ = ("ops", "elems", "bytes")
    kind = "probe"

    def __init__(self):
        super().__init__()
        self.ops = self.elems = self.bytes = 0

    def process(self, prim, args, params):
        primals = [a.primal if getattr(a, "_level", None) is self else a for a in args]
        out = bind(prim, *primals, **params)
        outs = out if prim.n_outputs > 1 else (out,)
        self.ops += 1
        for o in outs:
            size = int(np.prod(shape_of(o), dtype=np.int64))
            self.elems += size
            self.bytes += size * getattr(getattr(peel(o), "dtype", None), "itemsize", 8)
        if prim.n_outputs > 1:
            return tuple(_Counted(o, self) for o in out)
        return _Counted(out, self)


def probe(fn: Callable, args: tuple, positions: tuple = (0,)) -> Probe:
    """Run ``fn(*args)`` once, counting the primitives that depend on
    ``args[positions]`` and the size of their results.

    >>> import numpy as np
    >>> p = probe(lambda x: np.sum(np.sin(x) * x), (np.ones(10),))
    >>> p.n_ops, p.n_in, p.n_out
    (3, 10, 1)
    """
    n_in = 0
    itemsize = 8
    with new_level(ProbeLevel()) as level:
        call = list(args)
        for p in positions:
            leaves, td = tree_flatten(args[p])
            n_in += sum(int(np.prod(shape_of(v), dtype=np.int64)) for v in leaves)
            itemsize = max([getattr(getattr(peel(v), "dtype", None), "itemsize", 8)
                            for v in leaves] or [8])
            call[p] = tree_unflatten(td, [_Counted(v, level) for v in leaves])
        out = fn(*call)
        leaves = tree_flatten(out)[0]
        n_out = sum(int(np.prod(shape_of(o), dtype=np.int64)) for o in leaves)
    return Probe(level.ops, level.elems, level.bytes, n_in, n_out, itemsize,
                 len(leaves))


# ============================================================================
# plans
# ============================================================================
@dataclass(frozen=True)
class Plan:
    """How a Jacobian or Hessian will be computed.

    ``mode`` is a ``mode=`` name of :func:`dualad.jacobian` /
    :func:`dualad.hessian` (``"sparse"`` included); ``chunk`` the directions
    per batched pass (colors for sparse), ``n_chunks`` the passes, ``reason``
    the arithmetic behind the choice, ``costs`` the estimate of every mode
    priced (microseconds), ``direction`` for a sparse Jacobian ``"fwd"``
    (column coloring) or ``"rev"`` (row coloring).
    """

    kind: str
    mode: str
    chunk: int
    n_chunks: int
    reason: str
    n_in: int
    n_out: int
    memory_budget: int
    bytes_per_direction: int
    costs: dict = field(default_factory=dict, compare=False)
    colors: int | None = None
    nnz: int | None = None
    direction: str | None = None
    probe: Probe | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"Plan({self.kind}: mode={self.mode!r}, chunk={self.chunk}): {self.reason}"


def budget_chunk(n: int, bytes_per_direction: int, budget: int,
                 threshold: int = MAX_CHUNK) -> int:
    """Directions per pass: at most ``threshold`` and what fits ``budget``
    (at least 1), split evenly (ForwardDiff's rule).

    >>> budget_chunk(1000, 10**6, 2 * 10**8), budget_chunk(1000, 10**9, 10**6)
    (200, 1)
    """
    fit = max(1, budget // max(1, bytes_per_direction))
    return pick_chunk(n, max(1, min(threshold, n, fit)))


def _bpd(pr: Probe, mode: str) -> int:
    base = max(pr.n_bytes, (pr.n_in + pr.n_out) * pr.itemsize)
    return int(math.ceil(BYTES_PER_DIRECTION[mode] * base))


def _fits(chunk: int, bpd: int, budget: int) -> str:
    if chunk * bpd > budget:
        return (f"one direction needs ~{format_bytes(bpd)}, over the "
                f"{format_bytes(budget)} budget: 1 direction per pass")
    return f"chunk {chunk} fits {format_bytes(budget)} budget"


def _dense_jacobian_costs(pr: Probe, budget: int) -> dict:
    """mode -> (cost, chunk, passes) for the dense Jacobian modes."""
    k_f = budget_chunk(pr.n_in, _bpd(pr, "fwd"), budget)
    p_f = math.ceil(pr.n_in / k_f) if pr.n_in else 1
    c_f = p_f * (pr.n_ops * OP_FWD + pr.n_elems * ELEM * (2 + 4 * k_f))
    k_r = budget_chunk(pr.n_out, _bpd(pr, "rev"), budget)
    p_r = math.ceil(pr.n_out / k_r) if pr.n_out else 1
    c_r = (pr.n_ops * OP_REC + pr.n_elems * ELEM * 2
           + p_r * (pr.n_ops * OP_BWD + pr.n_elems * ELEM * (2 + 6 * k_r)))
    return {"fwd": (c_f, k_f, p_f), "rev": (c_r, k_r, p_r)}


def _dense_hessian_costs(pr: Probe, budget: int) -> dict:
    n = pr.n_in
    out = {}
    k = budget_chunk(n, _bpd(pr, "fwd-rev"), budget)
    p = math.ceil(n / k) if n else 1
    out["fwd-rev"] = (p * (pr.n_ops * OP_FWD_REV + pr.n_elems * ELEM * (8 + 20 * k)), k, p)
    out["rev-rev"] = (pr.n_ops * OP_REV_REV + pr.n_elems * ELEM * 3
                      + p * (pr.n_ops * OP_REV_REV + pr.n_elems * ELEM * (3 + 22 * k)), k, p)
    # Pair modes carry k*k direction pairs per pass over ceil(n/k)^2 blocks.
    kp = max(1, min(n, math.isqrt(max(1, budget // max(1, _bpd(pr, "hyperdual")))), 64))
    kp = pick_chunk(n, kp)
    blocks = math.ceil(n / kp) if n else 1
    pair_pass = pr.n_ops * OP_PAIR + pr.n_elems * ELEM * 5 * (1 + 2 * kp + kp * kp)
    out["hyperdual"] = (blocks * (blocks + 1) // 2 * pair_pass, kp, blocks * (blocks + 1) // 2)
    out["fwd-fwd"] = (blocks * blocks * 1.5 * pair_pass, kp, blocks * blocks)
    return out


def _sparse_costs(pr: Probe, kind: str, fn, args, positions, budget: int):
    """(cost, chunk, passes, coloring) of the compressed evaluation (for a
    Jacobian the cheaper of column/forward and row/reverse coloring), or None
    when no pattern can be found here."""
    variants = ("hessian",) if kind == "hessian" else ("jacobian-fwd", "jacobian-rev")
    best = None
    for variant in variants:
        try:
            col = coloring_for(fn, args, positions, variant)
        except (TypeError, ValueError, NotImplementedError):
            return None
        c = max(1, col.n_colors)
        mode = {"hessian": "sparse", "jacobian-fwd": "fwd", "jacobian-rev": "rev"}[variant]
        k = budget_chunk(c, _bpd(pr, mode), budget, threshold=c)
        p = math.ceil(c / k)
        recover = col.nnz * ELEM * 10
        if variant == "hessian":
            cost = p * (pr.n_ops * OP_FWD_REV + pr.n_elems * ELEM * (8 + 20 * k))
        elif variant == "jacobian-fwd":
            cost = p * (pr.n_ops * OP_FWD + pr.n_elems * ELEM * (2 + 4 * k))
        else:
            cost = (pr.n_ops * OP_REC + pr.n_elems * ELEM * 2
                    + p * (pr.n_ops * OP_BWD + pr.n_elems * ELEM * (2 + 6 * k)))
        if volatile_reads(fn, args, positions, "hessian" if kind == "hessian" else "jacobian"):
            # Found anew at every call: its detection is part of the price.
            recover += pr.n_ops * OP_FWD_REV + pr.n_elems * ELEM * (pr.n_in / 8 + 2)
        if best is None or cost + recover < best[0]:
            best = (cost + recover, k, p, col)
    return best


def _structured_cost(pr: Probe, fn, args, positions, budget: int, csr: bool):
    """((cost, n, 1, why), None) for the structured Hessian, priced by one
    probe pass (:func:`dualad.structured.structured_estimate`: measured time,
    result entries) plus the assembly (CSR: its entries; dense: n x n), or
    (None, why not). The probe stops before a dense fallback over the budget."""
    try:
        from dualad.structured import structured_estimate
    except Exception as err:                 # noqa: BLE001 - optional, maybe absent or broken
        return None, f"structured unavailable ({type(err).__name__})"
    pos = positions[0]
    try:
        est = structured_estimate(lambda x: fn(*args[:pos], x, *args[pos + 1:]), args[pos],
                                  dense_limit=max(1, budget // max(1, pr.itemsize)))
    except Exception as err:                 # noqa: BLE001 - no structure: not a candidate
        return None, f"structured probe failed ({type(err).__name__}: {err})"
    if not est["fits"]:
        return None, est["why"]
    assembly = est["entries"] * ELEM * 150 if csr else pr.n_in * pr.n_in * ELEM * 20
    return (est["seconds"] * 1e6 + assembly, pr.n_in, 1, est["why"]), None


def _coloring_too_costly(fn, args, positions, kind, extra, mode) -> str | None:
    """Why the coloring is not worth running, or None. Its greedy sweep costs
    about ``COLOR_WORK`` us per unit of ``sum(row nonzeros ** 2)`` (read off
    the detected pattern before coloring); when that alone is over twice a
    probed mode's whole estimate, sparse cannot win and is skipped."""
    if mode != "auto" or not extra:
        return None
    try:
        pat = pattern(fn, args, positions, "hessian" if kind == "hessian" else "jacobian")
    except (TypeError, ValueError, NotImplementedError):
        return None
    deg = np.diff(pat.indptr) if hasattr(pat, "indptr") else np.count_nonzero(pat, axis=1)
    work = float(np.sum(deg.astype(np.float64) ** 2)) * COLOR_WORK
    best = min(extra, key=lambda m: extra[m][0])
    if work > 2 * extra[best][0]:
        return (f"coloring {int(np.sum(deg))} nonzeros (max {int(deg.max(initial=0))} per row) "
                f"would take ~{work / 1e6:.2f} s alone, over twice {best} "
                f"(est. {extra[best][0] / 1e6:.2f} s)")
    return None


def _passes(p: int, k: int) -> str:
    return f"1 pass of {k}" if p == 1 else f"{p} chunks of {k}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


_LONG = {"fwd": "forward", "rev": "reverse", "fwd-rev": "fwd-rev (batched HVPs)",
         "rev-rev": "rev-rev", "hyperdual": "hyperdual", "fwd-fwd": "fwd-fwd",
         "sparse": "sparse", "structured": "structured"}


def _default_mode(kind: str, pr: Probe) -> str:
    """The textbook choice, kept unless the model finds a mode 2x cheaper."""
    if kind == "hessian":
        return "fwd-rev"
    return "fwd" if pr.n_in <= pr.n_out or pr.out_leaves != 1 else "rev"


def _describe(mode: str, cand, kind: str) -> str:
    cost, k, p, extra = cand
    if mode == "sparse":
        what = "star" if kind == "hessian" else extra.kind
        return (f"sparse ({what} coloring, {_n(extra.n_colors, 'color')} for "
                f"{_n(extra.nnz, 'nonzero')}: {_passes(p, k)} "
                f"{'direction' if k == 1 else 'directions'}, est. {cost / 1e3:.2f} ms)")
    if mode == "structured":
        return f"structured (one structured pass, est. {cost / 1e3:.2f} ms)"
    unit = "" if kind == "jacobian" else (" direction" if k == 1 else " directions")
    return f"{_LONG[mode]} ({_passes(p, k)}{unit}, est. {cost / 1e3:.2f} ms)"


def choose(kind: str, pr: Probe, budget: int, extra: dict | None = None,
           mode: str = "auto", skipped: dict | None = None, only: tuple | None = None) -> Plan:
    """The plan under the cost model (pure: no function runs here).
    ``extra``: priced candidates found by probing, ``{"sparse": (cost, chunk,
    passes, coloring), "structured": (cost, chunk, passes, why)}``.
    ``mode`` other than ``"auto"``: that mode, with its chunk. ``skipped``:
    mode -> why it was not priced (quoted in the reason); ``only``: the
    modes ``"auto"`` may pick (a CSR result: the sparse computations).

    >>> p = choose("jacobian", Probe(4, 400, 3200, 100, 100), 2**30)
    >>> p.mode
    'fwd'
    """
    table = {m: v + (None,) for m, v in (_dense_jacobian_costs(pr, budget) if kind == "jacobian"
                                         else _dense_hessian_costs(pr, budget)).items()}
    table.update(extra or {})
    if kind == "jacobian" and pr.out_leaves != 1:
        # Reverse mode and coloring take one output array.
        table = {m: v for m, v in table.items() if m in ("fwd", "sparse") or m == mode}
    if only is not None and mode == "auto":
        table = {m: v for m, v in table.items() if m in only}
        if not table:
            why = "; ".join(f"{m}: {w}" for m, w in (skipped or {}).items())
            raise ValueError("a sparse (CSR) result needs a sparse computation (mode='sparse' "
                             "or 'structured') and neither applies here"
                             + (f" ({why})" if why else "")
                             + "; pass mode='fwd-rev' to compute it densely and convert")
    costs = {m: v[0] for m, v in table.items()}
    head = f"n_in={pr.n_in}, n_out={pr.n_out}, {pr.n_ops} ops, {format_bytes(pr.n_bytes)}: "
    if mode != "auto":
        if mode not in table:
            raise ValueError(f"mode={mode!r} cannot be planned here (it needs one plain "
                             "array argument to differentiate)")
        best = mode
        reason = head + f"{_describe(mode, table[mode], kind)} as requested"
    else:
        default = _default_mode(kind, pr)
        if default not in table:
            default = min(table, key=lambda m: table[m][0])
        cheapest = min(table, key=lambda m: table[m][0])
        best = cheapest if table[cheapest][0] < SWITCH * table[default][0] else default
        others = sorted((m for m in table if m != best), key=lambda m: table[m][0])
        reason = head + f"{_describe(best, table[best], kind)}"
        if others:
            reason += " vs " + _describe(others[0], table[others[0]], kind)
        if best == default and cheapest != default:
            reason += f" (within {1 / SWITCH:.0f}x: keeping the default)"
        for m in ("sparse", "structured"):
            if m in table and m != best and (not others or m != others[0]):
                reason += f"; {_describe(m, table[m], kind)} does not pay"
    if skipped and mode == "auto":
        reason += "; skipped: " + "; ".join(f"{m} ({w})" for m, w in skipped.items())
    cost, k, p, detail = table[best]
    if best == "sparse":
        direction = None if kind == "hessian" else ("fwd" if detail.kind == "column" else "rev")
        bpd = _bpd(pr, "sparse" if kind == "hessian" else direction)
        density = detail.nnz / max(1, detail.shape[0] * detail.shape[1])
        reason += f"; pattern density {density:.2%}; {_fits(k, bpd, budget)}"
        return Plan(kind, "sparse", k, p, reason, pr.n_in, pr.n_out, budget, bpd, costs,
                    colors=detail.n_colors, nnz=detail.nnz, direction=direction, probe=pr)
    if best == "structured":
        return Plan(kind, best, k, p, f"{reason}; {detail}", pr.n_in, pr.n_out, budget, 0,
                    costs, probe=pr)
    bpd = _bpd(pr, best)
    reason += f"; {_fits(k, bpd, budget)}"
    return Plan(kind, best, k, p, reason, pr.n_in, pr.n_out, budget, bpd, costs, probe=pr)


# ============================================================================
# the public entry point (cached)
# ============================================================================
CHUNKED_MODES = {"jacobian": ("fwd", "rev", "sparse"), "hessian": ("fwd-rev", "sparse")}


def plan(fn: Callable, *args, kind: str = "jacobian", argnums=0, mode: str = "auto",
         memory_budget=None, chunked_only: bool = False, cache: bool = True,
         csr: bool = False) -> Plan:
    """The plan :func:`dualad.jacobian` / :func:`dualad.hessian` would follow
    for ``fn`` at ``args``, without computing it. ``mode`` other than
    ``"auto"`` plans that mode (its chunk under the budget);
    ``chunked_only`` restricts ``"auto"`` to the modes that run in chunks
    (what ``executor=`` and ``progress=`` need); ``csr`` (a sparse result
    asked for) restricts ``"auto"`` to the sparse computations (coloring or
    structured) and raises ``ValueError`` when neither applies.

    >>> import numpy as np, dualad as da
    >>> rosen = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    >>> p = da.plan(rosen, np.zeros(1000), kind="hessian")
    >>> p.mode, p.colors
    ('sparse', 3)
    """
    if kind not in ("jacobian", "hessian"):
        raise ValueError(f"unknown plan kind {kind!r}; valid kinds are 'jacobian', 'hessian'")
    positions, _ = as_tuple_positions(argnums)
    positions = tuple(p % len(args) for p in positions) if args else positions
    args = tuple(as_array(a) if i in positions else a for i, a in enumerate(args))
    budget = get_memory_budget(memory_budget)
    key = pattern_key(f"plan-{kind}-{mode}-{budget}-{chunked_only}-{csr}", args, positions)
    store = cache_for(fn) if cache else {}
    hit = store.get(key)
    if hit is not None:
        return hit
    pr = probe(fn, args, positions)
    plain = len(positions) == 1 and isinstance(args[positions[0]], np.ndarray) and not any(
        hasattr(leaf, "_level") for a in args for leaf in tree_flatten(a)[0])
    extra: dict = {}
    skipped: dict = {}
    big = pr.n_in >= SPARSE_MIN_N and (kind == "hessian" or pr.n_out >= SPARSE_MIN_N)
    # The probes must not blow the budget themselves: pattern detection keeps
    # index sets (O(elements + nnz); a gradient's three times more); the
    # structured probe stops before a dense fallback over the budget.
    detect = (3 if kind == "hessian" else 1) * 48 * pr.n_elems
    want_sparse = mode == "sparse" or (mode == "auto" and (big or csr))
    # Structured first: its probe is one measured pass, and it bounds what
    # the sparse probe (detection, then a coloring) may cost.
    if kind == "hessian" and plain and (mode == "structured" or (mode == "auto" and (big or csr))):
        if chunked_only:
            skipped["structured"] = "does not run in chunks (progress=/executor=)"
        elif mode == "structured":
            # Asked for: no probe (its dense fallbacks are exact, and the
            # function's own errors, e.g. LinAlgError, surface from the run).
            extra["structured"] = (pr.n_ops * OP_STRUCT + pr.n_elems * ELEM * 20, pr.n_in, 1,
                                   "structured tangents (dense fallbacks where a primitive "
                                   "has no structural rule)")
        else:
            structured, why = _structured_cost(pr, fn, args, positions, budget, csr)
            if structured is not None:
                extra["structured"] = structured
            else:
                skipped["structured"] = why
    elif kind == "hessian" and mode == "auto" and not big:
        skipped["structured"] = f"under {SPARSE_MIN_N} inputs: not probed"
    if not plain and (want_sparse or mode == "structured"):
        skipped["sparse"] = "needs one plain array argument"
    elif want_sparse and detect > budget and mode == "auto":
        skipped["sparse"] = (f"pattern detection needs ~{format_bytes(detect)}, over the "
                             f"{format_bytes(budget)} budget")
    elif want_sparse:
        why = _coloring_too_costly(fn, args, positions, kind, extra, mode)
        sparse = None if why else _sparse_costs(pr, kind, fn, args, positions, budget)
        if sparse is not None:
            extra["sparse"] = sparse
        else:
            skipped["sparse"] = why or "no sparsity pattern could be found here"
    elif mode == "auto" and not big:
        skipped["sparse"] = f"under {SPARSE_MIN_N} inputs/outputs: not probed"
    only = None
    if csr and mode == "auto":
        only = ("sparse", "structured") if kind == "hessian" else ("sparse",)
    result = choose(kind, pr, budget, extra, mode, skipped, only)
    if chunked_only and mode == "auto" and result.mode not in CHUNKED_MODES[kind]:
        result = choose(kind, pr, budget, extra, "rev" if kind == "jacobian" and
                        pr.n_in > pr.n_out else CHUNKED_MODES[kind][0])
    if cache:
        store[key] = result
    return result
