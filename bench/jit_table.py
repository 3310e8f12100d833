"""The ``da.jit`` rows of issue 14, with JAX jit in the same process.

``python -m bench.jit_table`` (library default threads: the headline) or
``python -m bench.jit_table --threads 1``; ``--only W3`` (or ``W3,W6``)
runs just those workloads. Each time is the minimum over
interleaved rounds of the mean of a batch of calls (robust to a loaded
machine: compare the ratios, measured in one run). Every dualad row is
checked against its reference before it is timed.
"""
from __future__ import annotations

import os
import sys

if "--threads" in sys.argv:                       # before NumPy loads BLAS
    # the one thread setting of `python -m bench` (environment, XLA flags,
    # and the process pinned to n cores: XLA's pool ignores its flags)
    from bench.__main__ import set_threads
    set_threads(int(sys.argv[sys.argv.index("--threads") + 1]))

import time  # noqa: E402

import numpy as np  # noqa: E402

from . import peers  # noqa: E402
from . import workloads as wl  # noqa: E402

SETTLE_S = 1.0
# ``--only W3`` (comma-separated prefixes): just those workloads' rows
ONLY = (tuple(sys.argv[sys.argv.index("--only") + 1].split(","))
        if "--only" in sys.argv else None)


def _on(block: str) -> bool:
    return ONLY is None or block.startswith(ONLY)


def _timeit(fn, budget: float = 0.4, rounds: int = 7) -> float:
    """Seconds per call: min over rounds of the mean of a batch, after a
    pause of :data:`SETTLE_S`. Why the pause: the previous block's library
    leaves work behind for up to ~1 s (OpenBLAS's and XLA's worker threads
    spinning, Python's full collection of a JAX-sized heap); measured on
    this machine, dualad's eager LJ gradient ran 1.17-1.25 ms in the second
    after a block of JAX calls and 0.77-0.84 ms otherwise (bench/NOTES.md)."""
    time.sleep(SETTLE_S)
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    batch = max(1, int(budget / rounds / one))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        best = min(best, (time.perf_counter() - t0) / batch)
    return best


def _first_call(make) -> float:
    """Seconds of the first call of a freshly made callable."""
    fn = make()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _jax(task, data):
    jax = peers._jax()
    fn, args = peers._jax_fn(task, data)
    fj = jax.jit(fn)
    t0 = time.perf_counter()
    jax.block_until_ready(fj(*args))
    compile_s = time.perf_counter() - t0
    return (lambda: jax.block_until_ready(fj(*args))), compile_s


def _check(got, want, rtol=1e-8):
    from dualad.core.tree import tree_leaves
    got = got.toarray() if hasattr(got, "toarray") else got
    for g, w in zip(tree_leaves(got), tree_leaves(want), strict=True):
        w = np.asarray(w, dtype=float)
        np.testing.assert_allclose(np.asarray(g, dtype=float), w, rtol=rtol,
                                   atol=rtol * float(np.max(np.abs(w))))


class _Printer(list):
    """Rows, printed as they come (a long run shows progress)."""

    def append(self, row) -> None:
        super().append(row)
        name, t, peer, p, _ = row
        ratio = f"{t / p:.2f}" if p == p else "-"
        print(f"| {name} | {_fmt(t)} | {peer} | {_fmt(p)} | {ratio} |", flush=True)


def rows() -> list:
    import dualad as da
    out = _Printer()

    def add(name, dualad_fn, peer_name, peer_fn, note=""):
        t = _timeit(dualad_fn)
        p = _timeit(peer_fn) if peer_fn is not None else float("nan")
        out.append((name, t, peer_name, p, note))

    # W2
    if _on("W2"):
        a, b = wl.W2_POINT
        g2 = da.jit(da.grad(wl.w2_f, grad_position=(0, 1)))
        _check(g2(a, b), wl.w2_grad_ref(a, b))
        j2, _ = _jax("W2.grad", {"point": (a, b)})
        add("W2 grad, da.jit(da.grad)", lambda: g2(a, b), "JAX jit", j2)
        add("W2 grad, eager da.grad", lambda: wl.w2_grad_dualad(a, b), "JAX jit", j2)

    # W6
    if _on("W6"):
        x6, v6 = wl.w6_data()
        g6 = da.jit(da.grad(wl.rosenbrock))
        _check(g6(x6), wl.rosen_grad_ref(x6))
        j6, _ = _jax("W6.grad", {"x": x6})
        add("W6 grad n=1000, jit", lambda: g6(x6), "JAX jit", j6)
        h6 = da.jit(lambda x, v: da.hvp(wl.rosenbrock, (x,), (v,))[1])
        _check(h6(x6, v6), wl.rosen_hvp_ref(x6, v6))
        jh6, _ = _jax("W6.hvp", {"x": x6, "v": v6})
        add("W6 HVP n=1000, jit", lambda: h6(x6, v6), "JAX jit", jh6)
        H6 = da.jit(da.hessian(wl.rosenbrock))
        _check(H6(x6), wl.rosen_hessian_ref(x6))
        jH6, _ = _jax("W6.hess", {"x": x6})
        add("W6 Hessian n=1000, jit auto", lambda: H6(x6), "JAX jit", jH6)

    # W7
    if _on("W7"):
        d7 = lambda: da.jit(lambda x: da.derivative(wl.w7_f, x, order=wl.W7_ORDER))
        j7fn = d7()
        _check(j7fn(wl.W7_POINT), wl.w7_taylor_ref())
        j7, c7 = _jax("W7.d6", {"x0": wl.W7_POINT, "order": wl.W7_ORDER})
        add("W7 6th derivative, jit", lambda: j7fn(wl.W7_POINT), "JAX jit", j7)
        first7 = min(_first_call(lambda: (lambda f: lambda: f(wl.W7_POINT))(d7()))
                     for _ in range(3))
        out.append(("W7 first call of a new da.jit", first7, "JAX jit compile", c7, ""))

    # W4
    if _on("W4"):
        for n_atoms in (32, 128):
            x = wl.lj_positions(n_atoms)
            H = da.jit(da.hessian(wl.lj_energy))
            _check(H(x), wl.lj_hessian_ref(x))
            data = {"x": x}
            jH, _ = _jax("W4.hess", data)
            add(f"W4 N={n_atoms} Hessian, jit auto", lambda H=H, x=x: H(x), "JAX jit", jH)
            if n_atoms == 128:
                out.append((f"W4 N={n_atoms} Hessian, jit auto", _timeit(lambda: H(x)),
                            "hand NumPy", _timeit(lambda: wl.lj_hessian_ref(x)), ""))
                g = da.jit(da.grad(wl.lj_energy))
                _check(g(x), wl.lj_grad_ref(x))
                jg, _ = _jax("W4.grad", data)
                add("W4 N=128 grad, eager", lambda: wl.lj_grad_dualad(x), "JAX jit", jg)
                add("W4 N=128 grad, jit", lambda: g(x), "JAX jit", jg)

    # W1
    if _on("W1"):
        x1 = wl.w1_data()
        g1 = da.jit(da.grad(wl.w1_f))
        _check(g1(x1), wl.w1_grad_ref(x1))
        j1, _ = _jax("W1.grad", {"x": x1})
        add("W1 grad n=1e6, jit", lambda: g1(x1), "JAX jit", j1)
        add("W1 grad n=1e6, eager", lambda: wl.w1_grad_dualad(x1), "JAX jit", j1)

    # W3
    if _on("W3"):
        params, xb, vb = wl.w3_data()
        jv = da.jit(lambda p, x, v: da.jvp(lambda xx: wl.mlp(p, xx), (x,), (v,)))
        _check(jv(params, xb, vb)[1], wl.w3_jvp_ref(params, xb, vb)[1])
        jj, _ = _jax("W3.jvp", {"params": params, "x": xb, "v": vb})
        add("W3 MLP jvp, jit", lambda: jv(params, xb, vb), "JAX jit", jj)
        vj = da.jit(lambda p, x: da.grad(lambda q: wl.w3_loss(q, x))(p))
        _check(vj(params, xb)[0], wl.w3_vjp_ref(params, xb)[0])
        jvj, _ = _jax("W3.vjp", {"params": params, "x": xb})
        add("W3 MLP vjp, jit", lambda: vj(params, xb), "JAX jit", jvj)

    # first call of hessian(mode="auto") on W6 (a new function: planning included)
    if _on("W6first"):
        first = min(_first_call(lambda: (lambda f: lambda: da.hessian(f)(x6))(
            lambda x: wl.rosenbrock(x))) for _ in range(3))
        out.append(('W6 first call of hessian(mode="auto")', first, "-", float("nan"), ""))
    return out


def _fmt(s: float) -> str:
    if s != s:
        return "-"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def main() -> None:
    threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "default"
    print(f"threads: {threads}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| row | dualad | peer | peer time | ratio |")
    print("|---|---|---|---|---|")
    rows()


if __name__ == "__main__":
    main()
