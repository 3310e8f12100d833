"""The task list: for each workload of BENCH.md, its rows (np f, dualad
formulations, peers, hand-written floor) and the reference every row is
checked against before it is timed."""
from __future__ import annotations

from . import peers
from . import workloads as wl
from .harness import Row, Task, close_check, rel_error

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")
RTOL = 1e-8


def _const(fn, *args):
    """setup() for a row that calls fn(*args)."""
    return lambda: (lambda: fn(*args))


def _dualad(system, fn, *args, missing=()):
    return Row(system, "dualad", _const(fn, *args), missing=missing)


def _npf(key, fn, *args):
    return Row("numpy f", "npf", _const(fn, *args), key=key)


def _floor(system, fn, *args):
    return Row(system, "floor", _const(fn, *args))


def _peers(task, data, which):
    return peers.rows_for(task, data, which)


# ---------------------------------------------------------------- W1..W7

def w1(which):
    x = wl.w1_data()
    return [Task("W1", "W1 grad n=1e6", [
        _npf("W1", wl.w1_f, x),
        _dualad("dualad grad", wl.w1_grad_dualad, x),
        *_peers("W1.grad", {"x": x}, which),
        _floor("floor (hand NumPy)", wl.w1_grad_ref, x),
    ], reference=lambda: wl.w1_grad_ref(x), check=close_check(RTOL))]


def w2(which):
    a, b = wl.W2_POINT

    return [Task("W2", "W2 grad scalar", [
        _npf("W2", wl.w2_f, a, b),
        _dualad("dualad grad", wl.w2_grad_dualad, a, b),
        _dualad("dualad via two JVPs", wl.w2_grad_two_jvps, a, b),
        *_peers("W2.grad", {"point": (a, b)}, which),
        _floor("floor (hand Python)", wl.w2_grad_ref, a, b),
    ], reference=lambda: wl.w2_grad_ref(a, b), check=close_check(RTOL))]


def w3(which):
    params, x, v = wl.w3_data()
    d = {"params": params, "x": x, "v": v}
    return [
        Task("W3", "W3 MLP forward", [
            _npf("W3", wl.mlp, params, x),
            *_peers("W3.fwd", d, which),
        ], reference=lambda: wl.mlp(params, x), check=close_check(RTOL)),
        Task("W3", "W3 MLP jvp", [
            _npf("W3", wl.mlp, params, x),
            _dualad("dualad jvp", wl.w3_jvp_dualad, params, x, v),
            *_peers("W3.jvp", d, which),
            _floor("floor (hand NumPy)", wl.w3_jvp_ref, params, x, v),
        ], reference=lambda: wl.w3_jvp_ref(params, x, v), check=close_check(RTOL)),
        Task("W3", "W3 MLP vjp", [
            _npf("W3", wl.mlp, params, x),
            _dualad("dualad grad", wl.w3_vjp_dualad, params, x),
            *_peers("W3.vjp", d, which),
            _floor("floor (hand NumPy)", wl.w3_vjp_ref, params, x),
        ], reference=lambda: wl.w3_vjp_ref(params, x), check=close_check(RTOL)),
    ]


def lj_check(got, want):
    """Close to the hand-written Hessian, symmetric, and zero on translations."""
    e = rel_error(got, want)
    if not e <= RTOL:
        return f"relative error {e:.2e} > {RTOL:.0e}"
    from .harness import to_numpy
    asym, trans = wl.lj_hessian_defects(to_numpy(got))
    if asym > RTOL:
        return f"not symmetric: {asym:.2e}"
    if trans > RTOL:
        return f"does not annihilate a translation: {trans:.2e}"
    return None


def w4(which):
    tasks = []
    for n, modes in ((32, ("auto", "structured", "fwd-rev", "rev-rev", "fwd-fwd", "hyperdual")),
                     (128, ("auto", "structured", "fwd-rev")),
                     (256, ("auto", "structured"))):
        x = wl.lj_positions(n)
        d = {"x": x}
        key = f"W4.{n}"
        tasks.append(Task("W4", f"W4 LJ N={n} grad", [
            _npf(key, wl.lj_energy, x),
            _dualad("dualad grad", wl.lj_grad_dualad, x),
            *_peers("W4.grad", d, which),
            _floor("floor (hand NumPy)", wl.lj_grad_ref, x),
        ], reference=lambda x=x: wl.lj_grad_ref(x), check=close_check(RTOL)))
        hess_rows = [_npf(key, wl.lj_energy, x)]
        for mode in modes:
            hess_rows.append(_dualad(f"dualad hessian {mode}", wl.lj_hessian_dualad, x, mode,
                                     missing=() if mode == "auto" else (ValueError,)))
        hess_rows += [*_peers("W4.hess", d, which),
                      _floor("floor (hand NumPy 3x3)", wl.lj_hessian_ref, x)]
        tasks.append(Task("W4", f"W4 LJ N={n} hessian", hess_rows,
                          reference=lambda x=x: wl.lj_hessian_ref(x), check=lj_check))
    return tasks


def w5(which):
    params, pts = wl.w5_data()
    return [Task("W5", "W5 PINN laplacian", [
        _npf("W5", wl.pinn_u, params, pts),
        _dualad("dualad laplacian", wl.laplacian_forward, params, pts),
        _dualad("dualad jit laplacian", wl.laplacian_jit, params, pts),
        _dualad("dualad trace(vmap(hessian))", wl.laplacian_vmap_hessian, params, pts),
        _dualad("dualad jvp(grad) x3", wl.laplacian_fwd_rev, params, pts),
        _dualad("dualad jvp(jvp) x3", wl.laplacian_fwd_fwd, params, pts),
        _dualad("dualad hvp x3", wl.laplacian_hvp, params, pts),
        _dualad("dualad HyperDual x3", wl.laplacian_hyperdual, params, pts),
        _dualad("dualad grad(Dual[3 dirs])", wl.laplacian_dual_batch_grad, params, pts),
        *_peers("W5.lap", {"params": params, "pts": pts}, which),
        _floor("floor (NumPy fwd Laplacian)", wl.laplacian_ref, params, pts),
    ], reference=lambda: wl.laplacian_ref(params, pts), check=close_check(RTOL))]


def w6(which):
    x, v = wl.w6_data()
    d = {"x": x, "v": v}
    hess_rows = [_npf("W6", wl.rosenbrock, x)]
    for mode in ("auto", "fwd-rev", "sparse", "structured"):
        hess_rows.append(_dualad(f"dualad hessian {mode}", wl.rosen_hessian_dualad, x, mode,
                                 missing=() if mode == "auto" else (ValueError,)))
    hess_rows.append(_dualad("dualad hessian csr=True (CSR)", wl.rosen_hessian_csr_dualad, x))
    return [
        Task("W6", "W6 rosen grad", [
            _npf("W6", wl.rosenbrock, x),
            _dualad("dualad grad", wl.rosen_grad_dualad, x),
            *_peers("W6.grad", d, which),
            _floor("floor (hand NumPy)", wl.rosen_grad_ref, x),
        ], reference=lambda: wl.rosen_grad_ref(x), check=close_check(RTOL)),
        Task("W6", "W6 rosen hessian", [
            *hess_rows,
            *_peers("W6.hess", d, which),
            _floor("floor (hand NumPy)", wl.rosen_hessian_ref, x),
        ], reference=lambda: wl.rosen_hessian_ref(x), check=close_check(RTOL)),
        Task("W6", "W6 rosen hvp", [
            _npf("W6", wl.rosenbrock, x),
            _dualad("dualad hvp", wl.rosen_hvp_dualad, x, v),
            *_peers("W6.hvp", d, which),
            _floor("floor (hand NumPy)", wl.rosen_hvp_ref, x, v),
        ], reference=lambda: wl.rosen_hvp_ref(x, v), check=close_check(RTOL)),
    ]


def w7(which):
    x0, order = wl.W7_POINT, wl.W7_ORDER
    return [Task("W7", f"W7 d^{order} exp(sin)", [
        _npf("W7", wl.w7_f, x0),
        _dualad("dualad derivative", wl.w7_dualad, x0, order),
        *_peers("W7.d6", {"x0": x0, "order": order}, which),
        _floor("floor (Taylor recurrence)", wl.w7_taylor_ref, x0, order),
    ], reference=lambda: wl.w7_taylor_ref(x0, order), check=close_check(RTOL))]


BUILDERS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7}


def build(selected=WORKLOADS, which=None) -> list:
    tasks = []
    for name in selected:
        tasks.extend(BUILDERS[name](which))
    return tasks

