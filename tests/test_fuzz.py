"""Differential fuzzer: random NumPy programs (tests/fuzz_programs.py), every
derivative mode checked against every other and against finite differences.

Per program ``f`` (an array output ``y``) and the scalar ``s(x) = sum(sin(y))
+ 0.5 sum(y^2)`` it checks: the traced value against NumPy; ``grad``,
``jacfwd``, ``value_and_grad`` of ``s`` and central differences; ``jacfwd``,
``jacrev``, ``jacobian`` (auto, sparse) of ``f`` and central differences;
every Hessian mode of ``s`` (fwd-rev, rev-rev, fwd-fwd, hyperdual, sparse,
structured, auto, csr=True) against each other and differences of the
gradient; ``hvp``, nested ``grad``, ``jvp`` of ``grad``; ``derivative`` of
``t -> s(x + t d)`` to order 4 against ``g.d``, ``d.H.d`` and differences of
the lower orders.

CI runs a bounded, derandomized batch (about a minute). Long runs:
``DUALAD_FUZZ_SECONDS=900 DUALAD_FUZZ_EXAMPLES=100000 pytest tests/test_fuzz.py``
(random seeds then), or ``python tests/test_fuzz.py SECONDS`` for statistics.
A mismatch fails with a runnable reproducer: the program as Python source,
the point, the direction and the failing check.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_programs import Program, programs  # noqa: E402

import dualad as da  # noqa: E402

SECONDS = float(os.environ.get("DUALAD_FUZZ_SECONDS", "45"))
EXAMPLES = int(os.environ.get("DUALAD_FUZZ_EXAMPLES", "120"))
LONG = "DUALAD_FUZZ_SECONDS" in os.environ or "DUALAD_FUZZ_EXAMPLES" in os.environ
HESSIAN_MODES = ("fwd-rev", "rev-rev", "fwd-fwd", "hyperdual", "sparse", "structured", "auto")
MARGIN = 1e-2          # reject points this close to a kink of abs/max/mod/...
STATS = {"programs": 0, "checks": 0, "rejected": 0, "skipped": 0}


class Mismatch(AssertionError):
    pass


def _close(got, want, rtol, atol_scale, what, ctx):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    STATS["checks"] += 1
    if got.shape != want.shape:
        raise Mismatch(f"{what}: shape {got.shape} != {want.shape}\n{ctx()}")
    scale = 1.0 + (float(np.max(np.abs(want))) if want.size else 0.0)
    if not np.allclose(got, want, rtol=rtol, atol=atol_scale * scale, equal_nan=False):
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        raise Mismatch(f"{what}: max |diff| {diff:.3g} (scale {scale:.3g})\n"
                       f"got:\n{got}\nwant:\n{want}\n{ctx()}")


def _fd_jac(f, x, h=1e-6):
    """Central differences: ``out.shape + x.shape``."""
    y0 = np.asarray(f(x))
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = h
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    if not cols:
        return np.zeros(y0.shape + x.shape)
    j = np.stack(cols, axis=-1)
    return j.reshape(y0.shape + x.shape)


def check_program(prog: Program, seed: int) -> None:
    """Every mode against every other and against finite differences."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.3, 1.3, prog.shape)
    d = rng.standard_normal(prog.shape)
    f = prog.function()
    with np.errstate(all="ignore"):
        try:
            y = np.asarray(f(x), dtype=float)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            STATS["rejected"] += 1
            assume(False)
        # |y| <= 100: sin(y) in s must not oscillate faster than differences resolve
        if not np.all(np.isfinite(y)) or np.any(np.abs(y) > 1e2) or prog.margin(x) < MARGIN:
            STATS["rejected"] += 1
            assume(False)
        # the finite-difference stencils must stay on one smooth piece too
        for sgn in (-1.0, 1.0):
            if prog.margin(x + sgn * 1e-3 * d) < MARGIN / 2:
                STATS["rejected"] += 1
                assume(False)
    STATS["programs"] += 1

    def s(v):
        out = f(v)
        return np.sum(np.sin(out)) + 0.5 * np.sum(out * out)

    def ctx():
        return ("--- reproducer ---\n" + prog.source() + "\n\n"
                "def s(v):\n    out = f(v)\n"
                "    return np.sum(np.sin(out)) + 0.5 * np.sum(out * out)\n\n"
                f"x = np.array({x.tolist()!r})\nd = np.array({d.tolist()!r})\n")

    tight, fd = 1e-7, 2e-5
    # -- values and first order -----------------------------------------------
    y_t, jv = da.jvp(f, (x,), (d,))
    # x**3 is x*x*x here, NumPy's pow there: rounding, amplified by sin(large)
    _close(y_t, y, 1e-9, 1e-9, "jvp primal vs NumPy", ctx)
    g = da.grad(s)(x)
    _close(g, _fd_jac(s, x), 1e-5, fd, "grad vs finite differences", ctx)
    _close(da.jacfwd(s)(x), g, tight, tight, "jacfwd(s) vs grad", ctx)
    _close(da.value_and_grad(s)(x)[1], g, tight, tight, "value_and_grad vs grad", ctx)
    jf = da.jacfwd(f)(x)
    _close(jf, _fd_jac(f, x), 1e-5, fd, "jacfwd vs finite differences", ctx)
    _close(da.jacrev(f)(x), jf, tight, tight, "jacrev vs jacfwd", ctx)
    _close(da.jacobian(f)(x), jf, tight, tight, "jacobian auto vs jacfwd", ctx)
    _close(da.jacobian(f, mode="sparse")(x), jf, tight, tight, "jacobian sparse vs jacfwd", ctx)
    _close(jv, np.tensordot(jf, d, axes=d.ndim) if d.ndim else jf * d, tight, tight,
           "jvp vs jacfwd . d", ctx)
    # -- second order -------------------------------------------------------------
    h_ref = da.hessian(s, mode="fwd-rev")(x)
    n = x.size
    _close(h_ref, _fd_jac(lambda v: da.grad(s)(v), x), 1e-5, fd,
           "hessian fwd-rev vs differences of grad", ctx)
    for mode in HESSIAN_MODES[1:]:
        try:
            h = da.hessian(s, mode=mode)(x)
        except (ValueError, NotImplementedError, TypeError, IndexError) as e:
            raise Mismatch(f"hessian {mode} raised {type(e).__name__}: {e}\n{ctx()}") from e
        _close(h, h_ref, 1e-6, 1e-7, f"hessian {mode} vs fwd-rev", ctx)
    if n:
        hs = da.hessian(s, csr=True)(x)
        _close(hs.toarray(), np.reshape(h_ref, (n, n)), 1e-6, 1e-7, "hessian csr=True", ctx)
    hd = np.reshape(np.reshape(h_ref, (n, n)) @ d.ravel(), x.shape)
    _close(da.hvp(s, (x,), (d,))[1], hd, 1e-6, 1e-7, "hvp vs H d", ctx)
    _close(da.grad(lambda v: np.sum(da.grad(s)(v) * d))(x), hd, 1e-6, 1e-7,
           "nested grad vs H d", ctx)
    _close(da.jvp(da.grad(s), (x,), (d,))[1], hd, 1e-6, 1e-7, "jvp of grad vs H d", ctx)
    # -- Taylor along a line, to order 4 -------------------------------------------
    def line(t):
        return s(x + t * d)

    ders = [float(da.derivative(line, 0.0, order=k)) for k in range(5)]
    _close(ders[0], s(x), 1e-12, 1e-12, "derivative order 0", ctx)
    _close(ders[1], np.sum(g * d), 1e-7, 1e-8, "derivative order 1 vs g.d", ctx)
    _close(ders[2], np.sum(hd * d), 1e-6, 1e-7, "derivative order 2 vs d.H.d", ctx)
    nested = line                       # forward mode nested k deep: an exact second route
    for k in range(1, 5):
        nested = (lambda f: lambda t: da.jvp(f, (t,), (1.0,))[1])(nested)
        if k >= 3:
            _close(ders[k], float(nested(0.0)), 1e-8, 1e-9,
                   f"derivative order {k} vs nested jvp", ctx)
    for k in (3, 4):
        lower = lambda t, k=k: float(da.derivative(line, t, order=k - 1))
        central = lambda h: (lower(h) - lower(-h)) / (2 * h)
        want = (4.0 * central(5e-4) - central(1e-3)) / 3.0          # Richardson: O(h^4)
        finer = (4.0 * central(2.5e-4) - central(5e-4)) / 3.0
        if abs(want - finer) > 1e-5 * max(abs(want), 1.0):
            # The differences have not converged (a huge higher derivative,
            # e.g. sin of a large argument): no reference at this point.
            STATS["rejected"] += 1
            continue
        _close(ders[k], want, 1e-4, 1e-5, f"derivative order {k} vs differences", ctx)


_SETTINGS = dict(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not LONG,
                 suppress_health_check=list(HealthCheck), print_blob=False)
_START = [None]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # NaN means of empty slices etc.
@settings(**_SETTINGS)
@given(prog=programs(), seed=st.integers(0, 2**32 - 1))
def test_fuzz_every_mode_agrees(prog, seed):
    if _START[0] is None:
        _START[0] = time.monotonic()
    if time.monotonic() - _START[0] > SECONDS:
        return                           # the time budget is spent: stop checking
    check_program(prog, seed)


def test_fuzz_statistics_are_counted():
    # Runs after the fuzz test in file order: something must have been checked.
    if STATS["programs"] == 0:
        pytest.skip("fuzz test not run in this session")
    assert STATS["checks"] > STATS["programs"]
    print(f"\nfuzz: {STATS}")


if __name__ == "__main__":      # python tests/test_fuzz.py [SECONDS]: random batches
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else SECONDS
    t0 = time.monotonic()
    batch = settings(max_examples=50, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))(
        given(prog=programs(), seed=st.integers(0, 2**32 - 1))(check_program))
    try:
        while time.monotonic() - t0 < budget:
            batch()
    finally:
        print(f"fuzz: {STATS} in {time.monotonic() - t0:.0f} s")
