"""A physics-informed neural network for the 2-D Poisson problem, in NumPy + dualad.

    -Laplace(u) = f  on the unit square,   u = 0 on its boundary,
    f(x, y) = 2 pi^2 sin(pi x) sin(pi y),  exact u = sin(pi x) sin(pi y).

The network u_theta(x, y) is a small tanh MLP. Its Laplacian at every
collocation point comes from ONE forward-Laplacian pass
(``da.laplacian(u, batch_axis=0)``: each row of the (N, 2) point array is a
point), and the gradient of the loss w.r.t. the weights from ``da.grad``
around it. The optimiser is Adam in a few lines.

    python examples/pinn_poisson.py --steps 2000 --out pinn_poisson.png

matplotlib is optional: without it the figure is skipped.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

import dualad as da


def init_params(sizes, rng):
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(0.0, math.sqrt(1.0 / a), (a, b)), np.zeros(b)]
    return tuple(params)


def net(params, pts):
    """u_theta at each row of pts, shape (N,)."""
    h = pts
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k + 2 < len(params):
            h = np.tanh(h)
    return h[:, 0]


def exact(pts):
    return np.sin(np.pi * pts[:, 0]) * np.sin(np.pi * pts[:, 1])


def source(pts):
    return 2.0 * np.pi ** 2 * exact(pts)


def sample(n_inside: int, n_edge: int, rng):
    inside = rng.uniform(0.0, 1.0, (n_inside, 2))
    t = rng.uniform(0.0, 1.0, n_edge)
    side = rng.integers(0, 4, n_edge)
    edge = np.stack([np.where(side < 2, t, side - 2.0), np.where(side < 2, side * 1.0, t)], 1)
    return inside, edge


def loss_fn(params, inside, edge, f_inside):
    lap = da.laplacian(lambda p: net(params, p), batch_axis=0)(inside)
    residual = -lap - f_inside
    return np.mean(residual ** 2) + 10.0 * np.mean(net(params, edge) ** 2)


def adam(params, grads, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    m, v, t = state
    t += 1
    m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
    v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
    scale = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    new = tuple(p - scale * mi / (np.sqrt(vi) + eps) for p, mi, vi in zip(params, m, v))
    return new, (m, v, t)


def train(steps: int = 2000, hidden: int = 32, n_inside: int = 512, n_edge: int = 128,
          lr: float = 5e-3, seed: int = 0, log_every: int = 100, verbose: bool = True):
    """Train and return (params, list of (step, loss))."""
    rng = np.random.default_rng(seed)
    params = init_params((2, hidden, hidden, 1), rng)
    inside, edge = sample(n_inside, n_edge, rng)
    f_inside = source(inside)
    value_and_grad = da.value_and_grad(loss_fn)
    state = ([np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params], 0)
    history = []
    for step in range(steps + 1):
        loss, grads = value_and_grad(params, inside, edge, f_inside)
        if step % log_every == 0 or step == steps:
            history.append((step, float(loss)))
            if verbose:
                print(f"step {step:5d}  loss {float(loss):.4e}", flush=True)
        if step < steps:
            params, state = adam(params, grads, state, lr)
    return params, history


def relative_l2(params, n: int = 64) -> float:
    g = (np.arange(n) + 0.5) / n
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    return float(np.linalg.norm(net(params, pts) - exact(pts)) / np.linalg.norm(exact(pts)))


def plot(params, out: str, n: int = 64) -> bool:
    """Save the learned and exact solutions side by side; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the figure", file=sys.stderr)
        return False
    g = np.linspace(0.0, 1.0, n)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    fields = {"PINN u": net(params, pts), "exact u": exact(pts)}
    fields["error"] = fields["PINN u"] - fields["exact u"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (title, z) in zip(axes, fields.items()):
        im = ax.imshow(z.reshape(n, n).T, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--points", type=int, default=512, help="interior collocation points")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--out", default="pinn_poisson.png", help="figure path ('' for none)")
    args = ap.parse_args(argv)
    params, history = train(args.steps, args.hidden, args.points, max(args.points // 4, 8),
                            args.lr, args.seed, args.log_every)
    print(f"relative L2 error against the exact solution: {relative_l2(params):.3e}")
    if args.out and plot(params, args.out):
        print(f"figure saved to {args.out}")
    return history


if __name__ == "__main__":
    main()
