"""JAX, PyTorch and HIPS autograd versions of the workloads, imported lazily.

Each ``*_rows(task, data)`` returns :class:`bench.harness.Row` s for one task
id ("W1.grad", "W4.hess", ...); ``data`` holds the NumPy inputs. The peers run
the very functions of :mod:`bench.workloads`, given their own namespace
(``jax.numpy``, ``torch``, ``autograd.numpy``) as ``xp``.

Setup: float64 everywhere (``jax_enable_x64``, torch float64); JAX results are
``block_until_ready``-ed inside the timed call; JAX eager and ``jit`` are
separate rows (the jit row's "first call" is the trace + compile time).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from functools import cache

import numpy as np

from . import workloads as wl
from .harness import Row

PEERS = ("jax", "torch", "autograd")


def available() -> dict:
    """{peer: version or None} without importing the peers."""
    out = {}
    for name in PEERS:
        if importlib.util.find_spec(name) is None:
            out[name] = None
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "?"
    return out


def rows_for(task: str, data: dict, which=None) -> list:
    avail = available()
    rows = []
    for name, builder in (("jax", jax_rows), ("torch", torch_rows), ("autograd", autograd_rows)):
        if avail.get(name) and (which is None or name in which):
            rows.extend(builder(task, data))
    return rows


def _unit_tangents(pts):
    return wl._unit_tangents(pts)


# ---------------------------------------------------------------- JAX

@cache
def _jax():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax


def _jax_fn(task: str, data: dict):
    """(function, args) for a task, written with jax.numpy; args are JAX arrays."""
    jax = _jax()
    jnp = jax.numpy
    A = jnp.asarray
    if task == "W1.grad":
        return jax.grad(lambda x: wl.w1_f(x, jnp)), (A(data["x"]),)
    if task == "W2.grad":
        return jax.grad(lambda a, b: wl.w2_f(a, b, jnp), (0, 1)), tuple(data["point"])
    if task in ("W3.fwd", "W3.jvp", "W3.vjp"):
        p = tuple(A(w) for w in data["params"])
        x = A(data["x"])
        if task == "W3.fwd":
            return (lambda q, xx: wl.mlp(q, xx, jnp)), (p, x)
        if task == "W3.jvp":
            return (lambda q, xx, vv: jax.jvp(lambda y: wl.mlp(q, y, jnp), (xx,), (vv,))), (
                p, x, A(data["v"]))
        return (lambda q, xx: jax.grad(lambda r: wl.w3_loss(r, xx, jnp))(q)), (p, x)
    if task in ("W4.grad", "W4.hess"):
        n = data["x"].shape[0] // 3
        pairs = np.triu_indices(n, 1)
        energy = lambda x: wl.lj_energy(x, pairs, jnp)
        op = jax.grad if task == "W4.grad" else jax.hessian
        return op(energy), (A(data["x"]),)
    if task == "W5.lap":
        tangents = [A(t) for t in _unit_tangents(data["pts"])]

        def lap(q, pts):
            g = jax.grad(lambda y: jnp.sum(wl.pinn_u(q, y, jnp)))
            return sum(jax.jvp(g, (pts,), (t,))[1][:, k] for k, t in enumerate(tangents))

        return lap, (tuple(A(w) for w in data["params"]), A(data["pts"]))
    if task in ("W6.grad", "W6.hess", "W6.hvp"):
        f = lambda x: wl.rosenbrock(x, jnp)
        if task == "W6.grad":
            return jax.grad(f), (A(data["x"]),)
        if task == "W6.hess":
            return jax.hessian(f), (A(data["x"]),)
        return (lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1]), (A(data["x"]), A(data["v"]))
    if task == "W7.d6":
        g = lambda x: wl.w7_f(x, jnp)
        for _ in range(data["order"]):
            g = jax.grad(g)
        return g, (data["x0"],)
    raise KeyError(task)


def jax_rows(task: str, data: dict) -> list:
    def eager():
        jax = _jax()
        fn, args = _jax_fn(task, data)
        return lambda: jax.block_until_ready(fn(*args))

    def jitted():
        jax = _jax()
        fn, args = _jax_fn(task, data)
        fj = jax.jit(fn)
        return lambda: jax.block_until_ready(fj(*args))

    rows = [Row("jax eager", "peer", eager), Row("jax jit", "peer", jitted)]
    if task == "W7.d6":
        def jet_fn():
            jax = _jax()
            from jax.experimental import jet
            order = data["order"]
            series = ((1.0,) + (0.0,) * (order - 1),)
            f = lambda x: jet.jet(lambda y: wl.w7_f(y, jax.numpy), (x,), series)[1][-1]
            return f, (data["x0"],)

        def jet_eager():
            jax = _jax()
            f, args = jet_fn()
            return lambda: jax.block_until_ready(f(*args))

        def jet_jit():
            jax = _jax()
            f, args = jet_fn()
            fj = jax.jit(f)
            return lambda: jax.block_until_ready(fj(*args))

        rows += [Row("jax jet", "peer", jet_eager), Row("jax jit(jet)", "peer", jet_jit)]
    if task == "W5.lap":
        def vmap_trace_hessian():
            # the idiomatic JAX route (issue 13's target): per point, the
            # trace of the dense 3x3 Hessian, vmapped over the points, jitted
            jax = _jax()
            jnp = jax.numpy
            u1 = lambda q, x: wl.mlp(q, x[None, :], jnp)[0, 0]
            lap = jax.jit(jax.vmap(lambda q, x: jnp.trace(jax.hessian(u1, argnums=1)(q, x)),
                                   in_axes=(None, 0)))
            q = tuple(jnp.asarray(w) for w in data["params"])
            x = jnp.asarray(data["pts"])
            return lambda: jax.block_until_ready(lap(q, x))
        rows.append(Row("jax jit vmap(trace(hessian))", "peer", vmap_trace_hessian))
    return rows


# ---------------------------------------------------------------- PyTorch

@cache
def _torch():
    import torch
    n = int(os.environ.get("BENCH_THREADS", "0"))
    if n > 0:
        torch.set_num_threads(n)
    return torch


def _T(a):
    torch = _torch()
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _torch_func_fn(task: str, data: dict):
    """torch.func formulations: (callable, args)."""
    torch = _torch()
    tf = torch.func
    if task == "W1.grad":
        return tf.grad(lambda x: wl.w1_f(x, torch)), (_T(data["x"]),)
    if task == "W2.grad":
        g = tf.grad(lambda a, b: wl.w2_f(a, b, torch), argnums=(0, 1))
        a, b = data["point"]
        return (lambda: g(torch.tensor(a, dtype=torch.float64),
                          torch.tensor(b, dtype=torch.float64))), ()
    if task in ("W3.fwd", "W3.jvp", "W3.vjp"):
        p = tuple(_T(w) for w in data["params"])
        x = _T(data["x"])
        if task == "W3.fwd":
            def fwd():
                with torch.no_grad():
                    return wl.mlp(p, x, torch)
            return fwd, ()
        if task == "W3.jvp":
            v = _T(data["v"])
            return (lambda: tf.jvp(lambda y: wl.mlp(p, y, torch), (x,), (v,))), ()
        g = tf.grad(lambda q: wl.w3_loss(q, x, torch))
        return (lambda: g(p)), ()
    if task in ("W4.grad", "W4.hess"):
        n = data["x"].shape[0] // 3
        i, j = np.triu_indices(n, 1)
        pairs = (torch.from_numpy(i), torch.from_numpy(j))
        energy = lambda x: wl.lj_energy(x, pairs, torch)
        op = tf.grad if task == "W4.grad" else tf.hessian
        return op(energy), (_T(data["x"]),)
    if task in ("W6.grad", "W6.hess", "W6.hvp"):
        f = lambda x: wl.rosenbrock(x, torch)
        x = _T(data["x"])
        if task == "W6.grad":
            return tf.grad(f), (x,)
        if task == "W6.hess":
            return tf.hessian(f), (x,)
        v = _T(data["v"])
        g = tf.grad(f)
        return (lambda: tf.jvp(g, (x,), (v,))[1]), ()
    return None


def _torch_tape_fn(task: str, data: dict):
    """Classic tape (torch.autograd.grad, double backward): a callable or None."""
    torch = _torch()
    ag = torch.autograd
    f64 = torch.float64
    if task == "W2.grad":
        a0, b0 = data["point"]

        def run():
            a = torch.tensor(a0, dtype=f64, requires_grad=True)
            b = torch.tensor(b0, dtype=f64, requires_grad=True)
            return ag.grad(wl.w2_f(a, b, torch), (a, b))
        return run
    if task == "W3.vjp":
        p = tuple(_T(w).requires_grad_(True) for w in data["params"])
        x = _T(data["x"])
        return lambda: ag.grad(wl.w3_loss(p, x, torch), p)
    if task == "W5.lap":
        p = tuple(_T(w) for w in data["params"])
        pts0 = _T(data["pts"])
        dim = pts0.shape[1]

        def lap():
            pts = pts0.clone().requires_grad_(True)
            u = wl.pinn_u(p, pts, torch)
            (g,) = ag.grad(u.sum(), pts, create_graph=True)
            out = 0.0
            for k in range(dim):
                (h,) = ag.grad(g[:, k].sum(), pts, retain_graph=k < dim - 1)
                out = out + h[:, k]
            return out
        return lap
    if task == "W6.hvp":
        x0, v = _T(data["x"]), _T(data["v"])

        def hvp():
            x = x0.clone().requires_grad_(True)
            (g,) = ag.grad(wl.rosenbrock(x, torch), x, create_graph=True)
            return ag.grad(g @ v, x)[0]
        return hvp
    if task == "W7.d6":
        x0, order = data["x0"], data["order"]

        def d6():
            x = torch.tensor(x0, dtype=f64, requires_grad=True)
            y = wl.w7_f(x, torch)
            for k in range(order):
                (y,) = ag.grad(y, x, create_graph=k < order - 1)
            return y
        return d6
    return None


def torch_rows(task: str, data: dict) -> list:
    rows = []
    func_tasks = ("W1.grad", "W2.grad", "W3.fwd", "W3.jvp", "W3.vjp", "W4.grad", "W4.hess",
                  "W6.grad", "W6.hess", "W6.hvp")
    tape_tasks = ("W2.grad", "W3.vjp", "W5.lap", "W6.hvp", "W7.d6")
    if task in func_tasks:
        def func_setup():
            fn, args = _torch_func_fn(task, data)
            return lambda: fn(*args)
        rows.append(Row("torch" if task == "W3.fwd" else "torch.func", "peer", func_setup))
    if task in tape_tasks:
        label = {"W5.lap": "torch double-bwd", "W6.hvp": "torch double-bwd",
                 "W7.d6": "torch nested grad"}.get(task, "torch autograd")
        rows.append(Row(label, "peer", lambda: _torch_tape_fn(task, data)))
    return rows


# ---------------------------------------------------------------- HIPS autograd

def _autograd_fn(task: str, data: dict):
    import autograd
    import autograd.numpy as anp
    if task == "W1.grad":
        g, x = autograd.grad(lambda x: wl.w1_f(x, anp)), data["x"]
        return lambda: g(x)
    if task == "W2.grad":
        g, (a, b) = autograd.grad(lambda a, b: wl.w2_f(a, b, anp), (0, 1)), data["point"]
        return lambda: g(a, b)
    if task == "W3.jvp":
        from autograd.differential_operators import make_jvp
        p, x, v = data["params"], data["x"], data["v"]
        return lambda: make_jvp(lambda y: wl.mlp(p, y, anp))(x)(v)
    if task == "W3.vjp":
        p, x = data["params"], data["x"]
        g = autograd.grad(lambda q: wl.w3_loss(q, x, anp))
        return lambda: g(p)
    if task in ("W4.grad", "W4.hess"):
        x = data["x"]
        pairs = np.triu_indices(x.shape[0] // 3, 1)
        energy = lambda y: wl.lj_energy(y, pairs, anp)
        g = (autograd.grad if task == "W4.grad" else autograd.hessian)(energy)
        return lambda: g(x)
    if task == "W5.lap":
        p, pts = data["params"], data["pts"]
        g = autograd.grad(lambda y: anp.sum(wl.pinn_u(p, y, anp)))
        hk = [autograd.grad(lambda y, k=k: anp.sum(g(y)[:, k])) for k in range(pts.shape[1])]
        return lambda: sum(h(pts)[:, k] for k, h in enumerate(hk))
    if task in ("W6.grad", "W6.hess", "W6.hvp"):
        f = lambda y: wl.rosenbrock(y, anp)
        x = data["x"]
        if task == "W6.grad":
            g = autograd.grad(f)
            return lambda: g(x)
        if task == "W6.hess":
            h = autograd.hessian(f)
            return lambda: h(x)
        hvp, v = autograd.hessian_tensor_product(f), data["v"]
        return lambda: hvp(x, v)
    if task == "W7.d6":
        g = lambda y: wl.w7_f(y, anp)
        for _ in range(data["order"]):
            g = autograd.grad(g)
        x0 = data["x0"]
        return lambda: g(x0)
    return None


def autograd_rows(task: str, data: dict) -> list:
    if task == "W3.fwd":
        return []
    return [Row("autograd", "peer", lambda: _autograd_fn(task, data))]
