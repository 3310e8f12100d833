"""vmap(grad) and vmap(hessian) of a tanh MLP 3-64-64-1 over 4096 points,
against a Python loop, the batch-sum trick and (if installed) JAX.

Run from the repository root: ``PYTHONPATH=. python bench/vmap_mlp.py``.
"""
from __future__ import annotations

import time

import numpy as np

import dualad as da

rng = np.random.default_rng(0)
W1, B1 = rng.normal(size=(3, 64)) / 3 ** 0.5, rng.normal(size=64) * 0.1
W2, B2 = rng.normal(size=(64, 64)) / 8, rng.normal(size=64) * 0.1
W3 = rng.normal(size=64) / 8
X = rng.normal(size=(4096, 3))


def u(x, xp=np):
    h = xp.tanh(x @ W1 + B1)
    h = xp.tanh(h @ W2 + B2)
    return h @ W3


def best(f, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = f()
        times.append(time.perf_counter() - t)
    return min(times), r


def main():
    g = da.grad(u)
    tv, rv = best(lambda: da.vmap(g)(X))
    tl, rl = best(lambda: np.stack([g(x) for x in X]), 1)
    ts, rs = best(lambda: da.grad(lambda xs: da.vmap(u)(xs).sum())(X))
    tb, rb = best(lambda: da.grad(lambda xs: u(xs).sum())(X))
    assert np.allclose(rv, rl) and np.allclose(rs, rl) and np.allclose(rb, rl)
    print(f"vmap(grad(u)), 4096 points: {tv * 1e3:.1f} ms; loop of grad: {tl * 1e3:.0f} ms "
          f"({tl / tv:.0f}x)")
    print(f"grad(sum(vmap(u))): {ts * 1e3:.1f} ms; batch-sum trick: {tb * 1e3:.1f} ms")
    th, rh = best(lambda: da.vmap(da.hessian(u))(X))
    tl2, rl2 = best(lambda: [da.hessian(u)(x) for x in X[:256]], 1)
    assert np.allclose(rh[:256], rl2)
    print(f"vmap(hessian(u)), 4096 points: {th * 1e3:.1f} ms; loop, 256 points: "
          f"{tl2 * 1e3:.0f} ms (x16 = {tl2 * 16e3:.0f} ms)")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)
    fj = jax.vmap(jax.grad(lambda x: u(x, jnp)))
    jf = jax.jit(fj)
    jf(X).block_until_ready()
    tj, _ = best(lambda: jf(X).block_until_ready())
    tn, _ = best(lambda: fj(X).block_until_ready())
    print(f"JAX jit(vmap(grad)): {tj * 1e3:.2f} ms; vmap(grad) without jit: {tn * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
