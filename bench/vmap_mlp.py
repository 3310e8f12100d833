import time, numpy as np, dualad as da
rng = np.random.default_rng(0)
W1, b1 = rng.normal(size=(3, 64)) / 3**.5, rng.normal(size=64) * .1
W2, b2 = rng.normal(size=(64, 64)) / 8, rng.normal(size=64) * .1
W3 = rng.normal(size=64) / 8
def u(x):
    h = np.tanh(x @ W1 + b1)
    h = np.tanh(h @ W2 + b2)
    return h @ W3
X = rng.normal(size=(4096, 3))
g = da.grad(u)
def best(f, n=3):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t)
    return min(ts), r
tv, rv = best(lambda: da.vmap(g)(X))
tl, rl = best(lambda: np.stack([g(x) for x in X]), 1)
ts, rs = best(lambda: da.grad(lambda X: da.vmap(u)(X).sum())(X))
tb, rb = best(lambda: da.grad(lambda X: u(X).sum())(X))
print(f"vmap(grad(u)) 4096 pts: {tv*1e3:.1f} ms; loop of grad: {tl*1e3:.0f} ms; ratio {tl/tv:.0f}x")
print(f"grad(sum(vmap(u))): {ts*1e3:.1f} ms; batch-sum trick grad(sum(u(X))): {tb*1e3:.1f} ms")
assert np.allclose(rv, rl) and np.allclose(rs, rl) and np.allclose(rb, rl)
th, rh = best(lambda: da.vmap(da.hessian(u))(X))
print(f"vmap(hessian(u)) 4096 pts: {th*1e3:.1f} ms, shape {rh.shape}")
th1, rh1 = best(lambda: [da.hessian(u)(x) for x in X[:256]], 1)
print(f"loop of hessian, 256 pts: {th1*1e3:.0f} ms (x16 = {th1*16e3:.0f} ms for 4096)")
assert np.allclose(rh[:256], rh1)
try:
    import jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    def uj(x):
        h = jnp.tanh(x @ W1 + b1); h = jnp.tanh(h @ W2 + b2); return h @ W3
    fj = jax.jit(jax.vmap(jax.grad(uj)))
    fj(X).block_until_ready()
    tj, rj = best(lambda: fj(X).block_until_ready())
    print(f"JAX jit(vmap(grad)): {tj*1e3:.2f} ms")
    fj2 = jax.vmap(jax.grad(uj))
    tj2, _ = best(lambda: fj2(X).block_until_ready())
    print(f"JAX vmap(grad) no jit: {tj2*1e3:.2f} ms")
except ImportError:
    pass
