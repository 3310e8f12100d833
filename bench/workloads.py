"""Workload definitions W1-W7 of BENCH.md: data, the functions (written once,
over a NumPy-like namespace ``xp`` so that JAX, PyTorch and HIPS autograd run
the very same code), the dualad formulations, and hand-written NumPy
references ("floors") that every system is checked against.

Everything here is importable without JAX/PyTorch/autograd and is exercised
on tiny sizes by ``tests/test_bench_smoke.py``.
"""
from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------
# W1 elementwise gradient
# ---------------------------------------------------------------------------


def w1_data(n: int = 10**6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2.0, 2.0, n)


def w1_f(x, xp=np):
    return xp.sum(xp.sin(x) * x**2 + xp.exp(-x**2))


def w1_grad_dualad(x):
    import dualad as da
    return da.grad(w1_f)(x)


def w1_grad_ref(x):
    """Hand-written derivative (the floor)."""
    return np.cos(x) * x**2 + 2.0 * x * np.sin(x) - 2.0 * x * np.exp(-x**2)


# ---------------------------------------------------------------------------
# W2 scalar overhead
# ---------------------------------------------------------------------------

W2_POINT = (2.0, 5.0)


def w2_f(x1, x2, xp=np):
    return xp.log(x1) + x1 * x2 - xp.sin(x2)


def w2_grad_dualad(x1, x2):
    import dualad as da
    return da.grad(w2_f, grad_position=(0, 1))(x1, x2)


def w2_grad_two_jvps(x1, x2):
    """The same gradient by two forward passes (one per input)."""
    import dualad as da
    _, d1 = da.jvp(w2_f, (x1, x2), (1.0, 0.0))
    _, d2 = da.jvp(w2_f, (x1, x2), (0.0, 1.0))
    return d1, d2


def w2_grad_ref(x1, x2):
    return 1.0 / x1 + x2, x1 - math.cos(x2)


def w2_value_ref(x1, x2):
    return math.log(x1) + x1 * x2 - math.sin(x2)


# ---------------------------------------------------------------------------
# W3 tanh MLP (and the MLP used by W5)
# ---------------------------------------------------------------------------


def mlp_params(sizes=(64, 256, 256, 1), seed: int = 0) -> tuple:
    """(W1, b1, W2, b2, ...) with Glorot-like scaling, seeded."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(rng.normal(0.0, 1.0 / math.sqrt(fan_in), (fan_in, fan_out)))
        params.append(rng.normal(0.0, 0.1, fan_out))
    return tuple(params)


def mlp(params, x, xp=np):
    """tanh on every hidden layer, linear output layer."""
    h = x
    n_layers = len(params) // 2
    for k in range(n_layers):
        w, b = params[2 * k], params[2 * k + 1]
        h = h @ w + b
        if k < n_layers - 1:
            h = xp.tanh(h)
    return h


def w3_data(sizes=(64, 256, 256, 1), batch: int = 1024, seed: int = 0):
    """(params, x, v): weights, a batch of inputs and a random input tangent."""
    params = mlp_params(sizes, seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(batch, sizes[0]))
    v = rng.normal(size=(batch, sizes[0]))
    return params, x, v


def w3_loss(params, x, xp=np):
    return xp.sum(mlp(params, x, xp))


def w3_jvp_dualad(params, x, v):
    import dualad as da
    return da.jvp(lambda xx: mlp(params, xx), (x,), (v,))


def w3_vjp_dualad(params, x):
    import dualad as da
    return da.grad(lambda p: w3_loss(p, x))(params)


def w3_jvp_ref(params, x, v):
    """Hand-written tangent propagation: returns (out, d out)."""
    h, t = x, v
    n_layers = len(params) // 2
    for k in range(n_layers):
        w, b = params[2 * k], params[2 * k + 1]
        h, t = h @ w + b, t @ w
        if k < n_layers - 1:
            h = np.tanh(h)
            t = (1.0 - h * h) * t
    return h, t


def w3_vjp_ref(params, x):
    """Hand-written backpropagation of sum(mlp(params, x))."""
    n_layers = len(params) // 2
    acts = [x]
    h = x
    for k in range(n_layers):
        h = h @ params[2 * k] + params[2 * k + 1]
        if k < n_layers - 1:
            h = np.tanh(h)
        acts.append(h)
    g = np.ones_like(h)
    grads = [None] * len(params)
    for k in reversed(range(n_layers)):
        if k < n_layers - 1:
            g = g * (1.0 - acts[k + 1] ** 2)
        grads[2 * k] = acts[k].T @ g
        grads[2 * k + 1] = g.sum(axis=0)
        g = g @ params[2 * k].T
    return tuple(grads)


# ---------------------------------------------------------------------------
# W4 Lennard-Jones cluster
# ---------------------------------------------------------------------------


def lj_positions(n_atoms: int, seed: int = 0, spacing: float = 1.12,
                 jitter: float = 0.05) -> np.ndarray:
    """Flat (3N,) coordinates: the first N sites of a cubic lattice of the given
    spacing, each displaced by a seeded Gaussian of std ``jitter``."""
    side = math.ceil(round(n_atoms ** (1.0 / 3.0), 9))
    g = np.arange(side)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)[:n_atoms]
    rng = np.random.default_rng(seed)
    r = spacing * grid + rng.normal(0.0, jitter, (n_atoms, 3))
    return r.reshape(-1)


def lj_energy(x, pairs=None, xp=np):
    """E = sum_{i<j} 4 (s**12 - s**6), s = 1/|r_i - r_j|, x flat (3N,)."""
    r = x.reshape(-1, 3)
    if pairs is None:
        pairs = np.triu_indices(r.shape[0], 1)
    i, j = pairs
    d = r[i] - r[j]
    s = 1.0 / xp.sqrt(xp.sum(d * d, axis=1))
    return xp.sum(4.0 * (s**12 - s**6))


def lj_grad_dualad(x):
    import dualad as da
    return da.grad(lj_energy)(x)


def lj_hessian_dualad(x, mode: str = "auto"):
    import dualad as da
    return da.hessian(lj_energy, mode=mode)(x)


def _lj_pair_terms(x):
    r = x.reshape(-1, 3)
    n = r.shape[0]
    i, j = np.triu_indices(n, 1)
    d = r[i] - r[j]
    r2 = np.einsum("pk,pk->p", d, d)
    inv = 1.0 / np.sqrt(r2)
    s6 = inv**6
    dv = 4.0 * (-12.0 * s6 * s6 + 6.0 * s6) * inv           # V'(r)
    d2v = 4.0 * (156.0 * s6 * s6 - 42.0 * s6) * inv * inv   # V''(r)
    return n, i, j, d, r2, inv, dv, d2v


def lj_grad_ref(x):
    """Hand-written NumPy gradient (pair forces scattered onto atoms)."""
    n, i, j, d, _, inv, dv, _ = _lj_pair_terms(x)
    f = (dv * inv)[:, None] * d
    g = np.zeros((n, 3))
    np.add.at(g, i, f)
    np.add.at(g, j, -f)
    return g.reshape(-1)


def lj_hessian_ref(x):
    """Hand-written NumPy Hessian from 3x3 pair blocks
    B = (V'' - V'/r) d d^T / r^2 + (V'/r) I, placed at (i,i), (j,j) with + and
    at (i,j), (j,i) with -."""
    n, i, j, d, r2, inv, dv, d2v = _lj_pair_terms(x)
    a = dv * inv
    b = (d2v - a) / r2
    blocks = b[:, None, None] * d[:, :, None] * d[:, None, :] + a[:, None, None] * np.eye(3)
    h = np.zeros((n, 3, n, 3))
    h[i, :, j, :] = -blocks
    h[j, :, i, :] = -blocks
    diag = np.zeros((n, 3, 3))
    np.add.at(diag, i, blocks)
    np.add.at(diag, j, blocks)
    k = np.arange(n)
    h[k, :, k, :] = diag
    return h.reshape(3 * n, 3 * n)


def lj_hessian_defects(h) -> tuple[float, float]:
    """(asymmetry, translation residual), both relative to max|H|: a correct
    Hessian is symmetric and annihilates a rigid translation of all atoms."""
    h = np.asarray(h)
    scale = max(float(np.max(np.abs(h))), 1e-300)
    asym = float(np.max(np.abs(h - h.T))) / scale
    n = h.shape[0] // 3
    res = 0.0
    for axis in range(3):
        t = np.zeros((n, 3))
        t[:, axis] = 1.0
        res = max(res, float(np.max(np.abs(h @ t.reshape(-1)))) / (scale * n))
    return asym, res


# ---------------------------------------------------------------------------
# W5 PINN Laplacian
# ---------------------------------------------------------------------------


def w5_data(sizes=(3, 64, 64, 1), n_points: int = 4096, seed: int = 0):
    params = mlp_params(sizes, seed)
    pts = np.random.default_rng(seed + 1).uniform(-1.0, 1.0, (n_points, sizes[0]))
    return params, pts


def pinn_u(params, pts, xp=np):
    """u(x, y, z) at every point: shape (M,)."""
    return mlp(params, pts, xp)[:, 0]


def _unit_tangents(pts):
    ts = []
    for k in range(pts.shape[1]):
        t = np.zeros_like(pts)
        t[:, k] = 1.0
        ts.append(t)
    return ts


def laplacian_fwd_rev(params, pts):
    """sum_k jvp(grad(sum u), e_k)[:, k]: points are independent, so the
    gradient of the summed u holds every point's own gradient."""
    import dualad as da
    g = da.grad(lambda p: np.sum(pinn_u(params, p)))
    lap = 0.0
    for k, t in enumerate(_unit_tangents(pts)):
        lap = lap + da.jvp(g, (pts,), (t,))[1][:, k]
    return lap


def laplacian_fwd_fwd(params, pts):
    """sum_k of the second directional derivative along e_k, forward over forward."""
    import dualad as da

    def u(p):
        return pinn_u(params, p)

    lap = 0.0
    for t in _unit_tangents(pts):
        lap = lap + da.jvp(lambda p, t=t: da.jvp(u, (p,), (t,))[1], (pts,), (t,))[1]
    return lap


def laplacian_hvp(params, pts):
    """sum_k (H e_k)[:, k] with da.hvp of the summed u."""
    import dualad as da

    def total(p):
        return np.sum(pinn_u(params, p))

    lap = 0.0
    for k, t in enumerate(_unit_tangents(pts)):
        _, hv = da.hvp(total, (pts,), (t,))
        lap = lap + hv[:, k]
    return lap


def laplacian_hyperdual(params, pts):
    """sum_k e12 of u(HyperDual(x, e_k, e_k, 0)): exact second derivative in one pass."""
    import dualad as da
    lap = 0.0
    for t in _unit_tangents(pts):
        out = pinn_u(params, da.HyperDual(pts, t, t, np.zeros_like(pts)))
        lap = lap + np.asarray(out.e12)
    return lap


def laplacian_dual_batch_grad(params, pts):
    """Forward over reverse in ONE pass: the gradient function of the summed u
    applied to a Dual carrying the 3 coordinate directions as a batch of
    tangents; the Laplacian is the trace of the (3, M, 3) tangent."""
    import dualad as da
    g = da.grad(lambda p: np.sum(pinn_u(params, p)))
    out = g(da.forward.Dual(pts, np.stack(_unit_tangents(pts))))
    return np.einsum("kmk->m", np.asarray(out.tangent))


def laplacian_forward(params, pts):
    """da.laplacian: one forward-Laplacian pass, each row of pts a point."""
    import dualad as da
    return da.laplacian(lambda p: pinn_u(params, p), batch_axis=0)(pts)


_JIT_LAP: list = []


def laplacian_jit(params, pts):
    """da.jit(da.laplacian): the forward-Laplacian pass recorded once (the
    weights and the points as arguments, as JAX's jit gets them), replayed."""
    import dualad as da
    if not _JIT_LAP:
        _JIT_LAP.append(da.jit(lambda q, p: da.laplacian(lambda x: pinn_u(q, x),
                                                         batch_axis=0)(p)))
    return _JIT_LAP[0](params, pts)


def laplacian_vmap_hessian(params, pts):
    """trace of da.vmap(da.hessian) over the points: the dense 3x3 Hessian of
    each point in one batched pass (forward over reverse), then np.trace."""
    import dualad as da
    u1 = lambda x: pinn_u(params, x[None, :])[0]   # noqa: E731
    return np.trace(da.vmap(da.hessian(u1))(pts), axis1=1, axis2=2)


def laplacian_ref(params, pts):
    """Hand-written NumPy forward Laplacian: propagate value, Jacobian (M, 3, w)
    and Laplacian (M, w) through the layers in one pass."""
    n_layers = len(params) // 2
    h = pts
    jac = None     # d h / d pts, (M, 3, w); identity at the input
    lap = None     # sum_k d2 h / d pts_k^2, (M, w); zero at the input
    for k in range(n_layers):
        w, b = params[2 * k], params[2 * k + 1]
        z = h @ w + b
        if jac is None:
            jz = np.broadcast_to(w, (pts.shape[0],) + w.shape)
            lz = np.zeros_like(z)
        else:
            jz = jac @ w
            lz = lap @ w
        if k == n_layers - 1:
            return lz[:, 0]
        h = np.tanh(z)
        d1 = 1.0 - h * h
        d2 = -2.0 * h * d1
        jac = d1[:, None, :] * jz
        lap = d1 * lz + d2 * np.einsum("mkw,mkw->mw", jz, jz)
    raise ValueError("need at least one layer")


# ---------------------------------------------------------------------------
# W6 Rosenbrock
# ---------------------------------------------------------------------------


def w6_data(n: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.5, 1.5, n), rng.normal(size=n)


def rosenbrock(x, xp=np):
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_grad_dualad(x):
    import dualad as da
    return da.grad(rosenbrock)(x)


def rosen_hessian_dualad(x, mode: str = "auto"):
    import dualad as da
    return da.hessian(rosenbrock, mode=mode)(x)


def rosen_hessian_csr_dualad(x):
    """The sparse result (scipy CSR), densified only for the check."""
    import dualad as da
    return da.hessian(rosenbrock, csr=True)(x)


def rosen_hvp_dualad(x, v):
    import dualad as da
    return da.hvp(rosenbrock, (x,), (v,))[1]


def rosen_grad_ref(x):
    a, b = x[:-1], x[1:]
    r = b - a * a
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * r - 2.0 * (1.0 - a)
    g[1:] += 200.0 * r
    return g


def _rosen_bands(x):
    a, b = x[:-1], x[1:]
    diag = np.zeros_like(x)
    diag[:-1] = 1200.0 * a * a - 400.0 * b + 2.0
    diag[1:] += 200.0
    return diag, -400.0 * a


def rosen_hessian_ref(x):
    diag, off = _rosen_bands(x)
    n = x.shape[0]
    h = np.zeros((n, n))
    k = np.arange(n)
    h[k, k] = diag
    h[k[:-1], k[1:]] = off
    h[k[1:], k[:-1]] = off
    return h


def rosen_hvp_ref(x, v):
    diag, off = _rosen_bands(x)
    hv = diag * v
    hv[:-1] += off * v[1:]
    hv[1:] += off * v[:-1]
    return hv


# ---------------------------------------------------------------------------
# W7 high-order derivative
# ---------------------------------------------------------------------------

W7_POINT = 0.5
W7_ORDER = 6


def w7_f(x, xp=np):
    return xp.exp(xp.sin(x))


def w7_dualad(x=W7_POINT, order: int = W7_ORDER):
    import dualad as da
    return da.derivative(w7_f, x, order=order)


def w7_taylor_ref(x: float = W7_POINT, order: int = W7_ORDER) -> float:
    """Hand-written Taylor recurrence in pure Python: the Taylor coefficients of
    sin(x + t) are known; those of exp(s(t)) follow from e' = s' e."""
    s = [math.sin(x) if k % 4 == 0 else math.cos(x) if k % 4 == 1 else
         -math.sin(x) if k % 4 == 2 else -math.cos(x) for k in range(order + 1)]
    s = [c / math.factorial(k) for k, c in enumerate(s)]
    e = [math.exp(s[0])]
    for k in range(1, order + 1):
        e.append(sum(j * s[j] * e[k - j] for j in range(1, k + 1)) / k)
    return e[order] * math.factorial(order)
