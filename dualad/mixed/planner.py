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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dualad.core.args import as_array, as_tuple_positions, at_positions
from dualad.core.tree import tree_flatten
from dualad.forward.api import pick_chunk
from dualad.mixed.budget import (  # noqa: F401  (public through dualad.planner)
    available_memory,
    format_bytes,
    get_memory_budget,
    memory_budget,
    parse_bytes,
    set_memory_budget,
)
from dualad.mixed.cache import cache_for, signature_key
from dualad.mixed.coloring import Coloring
from dualad.mixed.compressed import STRUCTURED_REPLAY_MAX
from dualad.mixed.patterns import coloring_for, pattern, volatile_reads
from dualad.mixed.probe import Probe, probe
from dualad.structured.api import structured_estimate

__all__ = ["Plan", "Probe", "Candidate", "plan", "probe", "set_memory_budget",
           "memory_budget", "get_memory_budget", "available_memory", "choose", "explain",
           "plan_from_probe", "format_bytes", "parse_bytes"]

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
DETECT_BYTES = 48    # sparsity detection, per intermediate element (index sets)
REPLAYED = 0.25      # a single colored Hessian pass, replayed compiled, vs interpreted
STRUCT_REPLAYED = 0.5   # the structured pass, replayed compiled, vs its measured probe
REPROBE_S = 0.05     # a structured probe faster than this (seconds) is measured twice

# Bytes kept alive per carried direction, in units of one evaluation's
# intermediate bytes: a forward pass keeps a tangent per live intermediate,
# a forward-over-reverse pass tangents of the tape values and of the
# cotangents too.
BYTES_PER_DIRECTION = {"fwd": 1.0, "rev": 1.0, "fwd-rev": 3.0, "rev-rev": 3.0,
                       "hyperdual": 1.0, "fwd-fwd": 2.0, "sparse": 3.0}


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


# ============================================================================
# pricing: each pass's cost formula written once
# ============================================================================
# pass kind -> (overhead per primitive, per-element work fixed, per direction)
_PASS = {"fwd": (OP_FWD, 2, 4), "record": (OP_REC, 2, 0), "rev": (OP_BWD, 2, 6),
         "fwd-rev": (OP_FWD_REV, 8, 20), "rev-rev-record": (OP_REV_REV, 3, 0),
         "rev-rev": (OP_REV_REV, 3, 22)}
# The one-off pass a mode runs before its batched passes (the recorded tape).
_SETUP = {"rev": "record", "rev-rev": "rev-rev-record"}


def pass_cost(kind: str, pr: Probe, k: int) -> float:
    """Microseconds of one pass of ``kind`` carrying ``k`` directions
    (``"pair"``: ``k * k`` direction pairs, hyper-dual / nested forward).

    >>> pr = Probe(10, 1000, 8000, 10, 1)
    >>> pass_cost("fwd", pr, 4) > pass_cost("fwd", pr, 1)
    True
    """
    if kind == "pair":
        return pr.n_ops * OP_PAIR + pr.n_elems * ELEM * 5 * (1 + 2 * k + k * k)
    op, fixed, per_dir = _PASS[kind]
    return pr.n_ops * op + pr.n_elems * ELEM * (fixed + per_dir * k)


def mode_cost(mode: str, pr: Probe, k: int, passes: int) -> float:
    """A directional mode (``fwd``, ``rev``, ``fwd-rev``, ``rev-rev``): its
    setup pass, then ``passes`` batched passes of ``k`` directions. The
    colored (sparse) evaluation prices the same passes over its colors."""
    setup = _SETUP.get(mode)
    return (pass_cost(setup, pr, 0) if setup else 0.0) + passes * pass_cost(mode, pr, k)


def _bpd(pr: Probe, mode: str) -> int:
    base = max(pr.n_bytes, (pr.n_in + pr.n_out) * pr.itemsize)
    return int(math.ceil(BYTES_PER_DIRECTION[mode] * base))


@dataclass(frozen=True)
class Candidate:
    """One way to compute the result, priced: ``cost`` (microseconds),
    ``chunk`` directions per pass over ``passes`` passes, ``memory`` bytes
    per carried direction, the ``coloring`` of a sparse candidate (``None``
    otherwise) and a ``note`` (the structured probe's verdict, a sparse
    Jacobian's direction...)."""

    mode: str
    cost: float
    chunk: int
    passes: int
    memory: int
    coloring: Coloring | None = None
    note: str = ""
    # The structured probe's assembled pattern (a CSR probe), for the
    # coloring's cost check; never kept in a Plan.
    pattern: object = field(default=None, compare=False, repr=False)


def _directional(mode: str, pr: Probe, n: int, budget: int) -> Candidate:
    bpd = _bpd(pr, mode)
    k = budget_chunk(n, bpd, budget)
    p = math.ceil(n / k) if n else 1
    return Candidate(mode, mode_cost(mode, pr, k, p), k, p, bpd)


def dense_candidates(kind: str, pr: Probe, budget: int) -> list[Candidate]:
    """The dense modes of ``kind``, priced."""
    if kind == "jacobian":
        return [_directional("fwd", pr, pr.n_in, budget),
                _directional("rev", pr, pr.n_out, budget)]
    n = pr.n_in
    fr = _directional("fwd-rev", pr, n, budget)
    rr = Candidate("rev-rev", mode_cost("rev-rev", pr, fr.chunk, fr.passes), fr.chunk,
                   fr.passes, _bpd(pr, "rev-rev"))
    # Pair modes carry k*k direction pairs per pass over ceil(n/k)^2 blocks.
    bpd = _bpd(pr, "hyperdual")
    kp = pick_chunk(n, max(1, min(n, math.isqrt(max(1, budget // max(1, bpd))), 64)))
    blocks = math.ceil(n / kp) if n else 1
    pair = pass_cost("pair", pr, kp)
    tri = blocks * (blocks + 1) // 2
    return [fr, rr, Candidate("hyperdual", tri * pair, kp, tri, bpd),
            Candidate("fwd-fwd", blocks * blocks * 1.5 * pair, kp, blocks * blocks,
                      _bpd(pr, "fwd-fwd"))]


def sparse_candidate(pr: Probe, kind: str, fn, args, positions, budget: int):
    """The compressed (colored) evaluation, priced (for a Jacobian the
    cheaper of column/forward and row/reverse coloring); ``(None, why)``
    when no pattern can be found here."""
    variants = ("hessian",) if kind == "hessian" else ("jacobian-fwd", "jacobian-rev")
    best = None
    for variant in variants:
        try:
            col = coloring_for(fn, args, positions, variant)
        except (TypeError, ValueError, NotImplementedError) as e:
            return None, f"no pattern ({type(e).__name__}: {e})"
        c = max(1, col.n_colors)
        passes = {"hessian": "fwd-rev", "jacobian-fwd": "fwd", "jacobian-rev": "rev"}[variant]
        bpd = _bpd(pr, "sparse" if kind == "hessian" else passes)
        k = budget_chunk(c, bpd, budget, threshold=c)
        p = math.ceil(c / k)
        cost = mode_cost(passes, pr, k, p)
        if volatile_reads(fn, args, positions, "hessian" if kind == "hessian" else "jacobian"):
            # Found anew at every call: its detection is part of the price.
            cost += pr.n_ops * OP_FWD_REV + pr.n_elems * ELEM * (DETECT_BYTES + 2)
        elif kind == "hessian" and p == 1 and 2 * c <= pr.n_in:
            # One pass over all colors is recorded on the first call and
            # replayed compiled after (dualad.mixed.compressed): measured
            # 3.6-4.3x under the interpreted pass (bench S2, n = 10^4..10^6).
            cost *= REPLAYED
        cost += col.nnz * ELEM * 10
        note = "" if kind == "hessian" else passes
        if best is None or cost < best.cost:
            best = Candidate("sparse", cost, k, p, bpd, col, note)
    return best, ""


def structured_candidate(pr: Probe, fn, args, positions, budget: int, csr: bool = False):
    """The structured Hessian priced by one probe pass
    (:func:`dualad.structured.structured_estimate`: its measured time plus
    the assembly, CSR: its entries, dense: n x n); ``(None, why)`` when the
    structure does not hold. The probe stops before a dense fallback tangent
    over the budget, so probing a large function without structure is cheap.
    A CSR probe assembles its entries (measured with the pass); the
    symmetrisation left costs about ``ELEM * 60`` per nonzero (measured 31-53 ns)."""
    def measure():
        return structured_estimate(at_positions(fn, args, positions), args[positions[0]],
                                   dense_limit=max(1, budget // max(1, pr.itemsize)), csr=csr)
    try:
        est = measure()
        if est["fits"] and est["seconds"] < REPROBE_S:
            # A cheap pass: measure it once more, warm, and keep the faster.
            # The first pass of a process pays one-off costs that could flip
            # the choice (LJ N = 32: 1.3-5.6 ms cold against 11 ms fwd-rev).
            again = measure()
            if again["fits"] and again["seconds"] < est["seconds"]:
                est = again
    except Exception as e:                   # noqa: BLE001 - no structure: not a candidate
        return None, f"its probe failed ({type(e).__name__}: {e})"
    if not est["fits"]:
        return None, est["why"]
    assembly = est["entries"] * ELEM * 60 if csr else pr.n_in * pr.n_in * ELEM * 20
    # The pass is recorded on the first call and replayed compiled after
    # (dualad.mixed.compressed.structured_hessian): LJ N = 32, 2.6x faster.
    replayed = STRUCT_REPLAYED if pr.n_in <= STRUCTURED_REPLAY_MAX else 1.0
    return Candidate("structured", est["seconds"] * 1e6 * replayed + assembly, pr.n_in,
                     1, 0, note=est["why"], pattern=est.get("pattern")), ""


def structured_requested(pr: Probe) -> Candidate:
    """``mode="structured"`` asked for: no probe (its dense fallbacks are
    exact, and the function's own errors, e.g. ``LinAlgError``, surface from
    the run itself)."""
    return Candidate("structured", pr.n_ops * OP_STRUCT + pr.n_elems * ELEM * 20, pr.n_in, 1,
                     0, note="structured tangents (dense fallbacks where a primitive has no "
                             "structural rule)")


def coloring_too_costly(fn, args, positions, kind: str, extra: list) -> str | None:
    """Why the coloring is not worth running, or ``None``. Its greedy sweep
    costs about ``COLOR_WORK`` us per unit of ``sum(row nonzeros ** 2)``
    (read off the pattern before coloring: the structured probe's assembled
    one when there is one, else the detected one); when that alone is over
    twice a probed candidate's whole estimate, sparse cannot win."""
    if not extra:
        return None
    pat = next((c.pattern for c in extra if c.pattern is not None), None)
    try:
        if pat is None:
            pat = pattern(fn, args, positions, "hessian" if kind == "hessian" else "jacobian")
    except (TypeError, ValueError, NotImplementedError):
        return None
    deg = np.diff(pat.indptr) if hasattr(pat, "indptr") else np.count_nonzero(pat, axis=1)
    work = float(np.sum(deg.astype(np.float64) ** 2)) * COLOR_WORK
    best = min(extra, key=lambda c: c.cost)
    if work > 2 * best.cost:
        return (f"coloring {int(np.sum(deg))} nonzeros (max {int(deg.max(initial=0))} per row) "
                f"would take ~{work / 1e6:.2f} s alone, over twice {best.mode} "
                f"(est. {best.cost / 1e6:.2f} s)")
    return None


# ============================================================================
# deciding, and saying why
# ============================================================================
def default_mode(kind: str, pr: Probe) -> str:
    """The textbook choice, kept unless the model finds a mode 2x cheaper."""
    if kind == "hessian":
        return "fwd-rev"
    return "fwd" if pr.n_in <= pr.n_out or pr.out_leaves != 1 else "rev"


def choose(candidates: list[Candidate], default: str, mode: str = "auto") -> Candidate:
    """The best candidate: ``mode`` itself when one was asked for, else the
    cheapest if it is priced under ``SWITCH`` times the default's cost, else
    the default (pure: no function runs here).

    >>> pr = Probe(4, 400, 3200, 100, 100)
    >>> choose(dense_candidates("jacobian", pr, 2**30), "fwd").mode
    'fwd'
    """
    table = {c.mode: c for c in candidates}
    if mode != "auto":
        if mode not in table:
            raise ValueError(f"mode={mode!r} cannot be planned here (it needs one plain "
                             "array argument to differentiate)")
        return table[mode]
    cheapest = min(candidates, key=lambda c: c.cost)
    base = table.get(default, cheapest)
    return cheapest if cheapest.cost < SWITCH * base.cost else base


def _passes(p: int, k: int) -> str:
    return f"1 pass of {k}" if p == 1 else f"{p} chunks of {k}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


_LONG = {"fwd": "forward", "rev": "reverse", "fwd-rev": "fwd-rev (batched HVPs)",
         "rev-rev": "rev-rev", "hyperdual": "hyperdual", "fwd-fwd": "fwd-fwd",
         "sparse": "sparse", "structured": "structured"}


def describe(c: Candidate, kind: str) -> str:
    """One candidate in words, with its estimate."""
    if c.mode == "sparse":
        what = "star" if kind == "hessian" else c.coloring.kind
        return (f"sparse ({what} coloring, {_n(c.coloring.n_colors, 'color')} for "
                f"{_n(c.coloring.nnz, 'nonzero')}: {_passes(c.passes, c.chunk)} "
                f"{'direction' if c.chunk == 1 else 'directions'}, est. {c.cost / 1e3:.2f} ms)")
    if c.mode == "structured":
        return f"structured (one structured pass, est. {c.cost / 1e3:.2f} ms)"
    unit = "" if kind == "jacobian" else (" direction" if c.chunk == 1 else " directions")
    return f"{_LONG[c.mode]} ({_passes(c.passes, c.chunk)}{unit}, est. {c.cost / 1e3:.2f} ms)"


def _fits(c: Candidate, budget: int) -> str:
    if c.chunk * c.memory > budget:
        return (f"one direction needs ~{format_bytes(c.memory)}, over the "
                f"{format_bytes(budget)} budget: 1 direction per pass")
    return f"chunk {c.chunk} fits {format_bytes(budget)} budget"


def explain(kind: str, pr: Probe, budget: int, best: Candidate, candidates: list[Candidate],
            default: str, mode: str = "auto", skipped: dict | None = None) -> str:
    """``Plan.reason``: the probe's numbers, the choice, every other mode
    priced (cheapest first) and every mode skipped, with why.

    >>> pr = Probe(3, 7, 56, 3, 1)
    >>> cands = dense_candidates("hessian", pr, 2**30)
    >>> best = choose(cands, "fwd-rev")
    >>> print(explain("hessian", pr, 2**30, best, cands, "fwd-rev"))  # doctest: +ELLIPSIS
    n_in=3, n_out=1, 3 ops, 56 B: fwd-rev (batched HVPs) (1 pass of 3 directions, est. ...
    """
    head = f"n_in={pr.n_in}, n_out={pr.n_out}, {pr.n_ops} ops, {format_bytes(pr.n_bytes)}: "
    reason = head + describe(best, kind)
    if mode != "auto":
        reason += " as requested"
    else:
        others = sorted((c for c in candidates if c.mode != best.mode), key=lambda c: c.cost)
        if others:
            reason += " vs " + describe(others[0], kind)
            if len(others) > 1:
                reason += " (also priced: " + ", ".join(describe(c, kind)
                                                        for c in others[1:]) + ")"
        cheapest = min(candidates, key=lambda c: c.cost)
        if best.mode == default and cheapest.mode != default:
            reason += f" (within {1 / SWITCH:.0f}x: keeping the default)"
        for c in others:
            if c.mode in ("sparse", "structured"):
                reason += f"; {c.mode} does not pay"
    for m, why in (skipped or {}).items():
        reason += f"; {m} skipped: {why}"
    if best.mode == "sparse":
        col = best.coloring
        density = col.nnz / max(1, col.shape[0] * col.shape[1])
        reason += f"; pattern density {density:.2%}"
    if best.mode == "structured":
        return f"{reason}; {best.note}"
    return f"{reason}; {_fits(best, budget)}"


def plan_from_probe(kind: str, pr: Probe, budget: int, extra: list | None = None,
                    mode: str = "auto", skipped: dict | None = None,
                    only: tuple | None = None) -> Plan:
    """The plan under the cost model from a probe (pure): the dense
    candidates plus ``extra`` ones found by probing (sparse, structured).
    ``only``: the modes ``"auto"`` may pick (a CSR result: the sparse
    computations); ``ValueError`` when none of them is a candidate.

    >>> p = plan_from_probe("jacobian", Probe(4, 400, 3200, 100, 100), 2**30)
    >>> p.mode
    'fwd'
    """
    skipped = dict(skipped or {})
    candidates = dense_candidates(kind, pr, budget) + list(extra or [])
    if kind == "jacobian" and pr.out_leaves != 1:
        # Reverse mode takes one output array (coloring runs on their
        # concatenation, see dualad.mixed.transforms).
        keep = ("fwd", "sparse", mode)
        for c in candidates:
            if c.mode not in keep:
                skipped[c.mode] = f"{pr.out_leaves} output arrays (it needs one)"
        candidates = [c for c in candidates if c.mode in keep]
    if only is not None and mode == "auto":
        candidates = [c for c in candidates if c.mode in only]
        if not candidates:
            why = "; ".join(f"{m}: {w}" for m, w in skipped.items())
            raise ValueError("a sparse (CSR) result needs a sparse computation (mode='sparse' "
                             "or 'structured') and neither applies here"
                             + (f" ({why})" if why else "")
                             + "; pass mode='fwd-rev' to compute it densely and convert")
    default = default_mode(kind, pr)
    best = choose(candidates, default, mode)
    reason = explain(kind, pr, budget, best, candidates, default, mode, skipped)
    costs = {c.mode: c.cost for c in candidates}
    col = best.coloring
    direction = None
    if best.mode == "sparse" and kind == "jacobian":
        direction = "fwd" if col.kind == "column" else "rev"
    return Plan(kind, best.mode, best.chunk, best.passes, reason, pr.n_in, pr.n_out, budget,
                best.memory, costs, colors=col.n_colors if col is not None else None,
                nnz=col.nnz if col is not None else None, direction=direction, probe=pr)


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
    structured) and raises ``ValueError`` when neither applies. Cached per function, kind,
    and argument types and shapes (values never change a plan's
    correctness, only its estimate).

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
    key = signature_key(f"plan-{kind}-{mode}-{budget}-{chunked_only}-{csr}", args, positions)
    store = cache_for(fn).plans
    if cache:
        hit = store.get(key)
        if hit is not None:
            return hit
    pr = probe(fn, args, positions)
    extra, skipped = _probe_candidates(kind, mode, pr, fn, args, positions, budget,
                                       chunked_only, csr)
    only = None
    if csr and mode == "auto":
        only = ("sparse", "structured") if kind == "hessian" else ("sparse",)
    result = plan_from_probe(kind, pr, budget, extra, mode, skipped, only)
    if chunked_only and mode == "auto" and result.mode not in CHUNKED_MODES[kind]:
        result = plan_from_probe(kind, pr, budget, extra,
                                 "rev" if kind == "jacobian" and pr.n_in > pr.n_out
                                 else CHUNKED_MODES[kind][0], skipped)
    if cache:
        store.put(key, result)
    return result


def _probe_candidates(kind, mode, pr, fn, args, positions, budget, chunked_only, csr=False):
    """The sparse and structured candidates worth probing, and why the
    others were skipped (for ``Plan.reason``). Structured is probed first:
    its probe is one measured pass, and it bounds what the sparse probe
    (detection, then a coloring) may cost."""
    extra, skipped = [], {}
    plain = len(positions) == 1 and isinstance(args[positions[0]], np.ndarray) and not any(
        hasattr(leaf, "_level") for a in args for leaf in tree_flatten(a)[0])
    big = pr.n_in >= SPARSE_MIN_N and (kind == "hessian" or pr.n_out >= SPARSE_MIN_N)
    # The sparse probe must not blow the budget itself: pattern detection
    # keeps index sets, O(elements + nnz) (through a gradient three times
    # more); the structured probe stops before a dense fallback over it.
    detect = (3 if kind == "hessian" else 1) * DETECT_BYTES * pr.n_elems
    wanted = {}
    if kind == "hessian":
        wanted["structured"] = mode in ("auto", "structured")
    wanted["sparse"] = mode in ("auto", "sparse")
    for m, want in wanted.items():
        if not want:
            continue
        if not plain:
            skipped[m] = "needs one plain NumPy array argument to differentiate"
        elif m == "structured" and chunked_only:
            skipped[m] = "progress=/executor= need a chunked mode"
        elif mode == "auto" and not (big or csr):
            skipped[m] = f"below {SPARSE_MIN_N} inputs{'' if kind == 'hessian' else '/outputs'}"
        elif m == "sparse" and mode == "auto" and detect > budget:
            skipped[m] = (f"detection needs ~{format_bytes(detect)}, over the "
                          f"{format_bytes(budget)} budget")
        elif m == "structured" and mode == "structured":
            extra.append(structured_requested(pr))
        else:
            if m == "structured":
                found, why = structured_candidate(pr, fn, args, positions, budget, csr)
            else:
                why = (coloring_too_costly(fn, args, positions, kind, extra)
                       if mode == "auto" else None)
                found = None
                if why is None:
                    found, why = sparse_candidate(pr, kind, fn, args, positions, budget)
            if found is not None:
                extra.append(found)
            else:
                skipped[m] = why
    return extra, skipped
