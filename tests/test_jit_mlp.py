"""``da.jit`` on tanh MLPs (W3's shape and others): replay equals eager for
jvp, vjp and grad, the matrix-product rewrites of
:mod:`dualad.mixed.rewrite` happen and keep the results, and changed
weights give the new answer (arguments: replayed; closures: re-recorded)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import dualad as da
from dualad.core.tree import tree_leaves
from dualad.mixed.compile import compile_program
from dualad.mixed.fuse_index import Region, fuse_region_ops
from dualad.mixed.replay import record
from dualad.mixed.rewrite import rewrite_products
from dualad.rules.contractions import matmul_p
from dualad.rules.shape import _transpose


def _params(sizes, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out.append(rng.normal(0.0, 1.0 / math.sqrt(fan_in), (fan_in, fan_out)).astype(dtype))
        out.append(rng.normal(0.0, 0.1, fan_out).astype(dtype))
    return tuple(out)


def mlp(params, x):
    h = x
    n = len(params) // 2
    for k in range(n):
        h = h @ params[2 * k] + params[2 * k + 1]
        if k < n - 1:
            h = np.tanh(h)
    return h


def loss(params, x):
    return np.sum(mlp(params, x))


def _close(got, want, rtol):
    for g, w in zip(tree_leaves(got), tree_leaves(want), strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        assert float(np.max(np.abs(g - w), initial=0.0)) <= rtol * scale, (g, w)


SHAPES = [((64, 256, 256, 1), 1024), ((5, 7, 3), 1), ((3, 17, 9, 2), 33),
          ((8, 40, 1), 700), ((13, 31, 31, 4), 129)]


@pytest.mark.parametrize("sizes,batch", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_jvp_vjp_grad_replay_equals_eager(sizes, batch, dtype):
    rtol = 1e-14 if dtype == np.float64 else 1e-6
    params = _params(sizes, dtype=dtype)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(batch, sizes[0])).astype(dtype)
    v = rng.normal(size=(batch, sizes[0])).astype(dtype)
    ct = rng.normal(size=(batch, sizes[-1])).astype(dtype)
    jv = da.jit(lambda p, a, b: da.jvp(lambda xx: mlp(p, xx), (a,), (b,)))
    gr = da.jit(lambda p, a: da.grad(lambda q: loss(q, a))(p))
    vj = da.jit(lambda p, a, c: da.vjp(lambda q: mlp(q, a), p)[1](c))
    for step in range(3):           # record, then replays
        params_s = tuple(w * (1.0 + 0.1 * step) for w in params)
        want_jv = da.jvp(lambda xx: mlp(params_s, xx), (x,), (v,))
        want_gr = da.grad(lambda q: loss(q, x))(params_s)
        want_vj = da.vjp(lambda q: mlp(q, x), params_s)[1](ct)
        _close(jv(params_s, x, v), want_jv, rtol)
        _close(gr(params_s, x), want_gr, rtol)
        _close(vj(params_s, x, ct), want_vj, rtol)
    assert jv.stats["replays"] == gr.stats["replays"] == vj.stats["replays"] == 2


def test_w3_gradient_matches_hand_backprop():
    params = _params((64, 256, 256, 1))
    x = np.random.default_rng(2).normal(size=(1024, 64))
    gr = da.jit(lambda p, a: da.grad(lambda q: loss(q, a))(p))
    gr(params, x)
    got = gr(params, x)
    # hand-written backpropagation
    acts, h = [x], x
    for k in range(3):
        h = h @ params[2 * k] + params[2 * k + 1]
        h = np.tanh(h) if k < 2 else h
        acts.append(h)
    g = np.ones_like(h)
    want = [None] * 6
    for k in reversed(range(3)):
        if k < 2:
            g = g * (1.0 - acts[k + 1] ** 2)
        want[2 * k], want[2 * k + 1] = acts[k].T @ g, g.sum(axis=0)
        g = g @ params[2 * k].T
    _close(got, tuple(want), 1e-13)
    assert gr.stats["replays"] == 1


def _grad_program(sizes, batch):
    params = _params(sizes)
    x = np.random.default_rng(3).normal(size=(batch, sizes[0]))
    _, rep = record(lambda *p: da.grad(lambda q: loss(q, x))(p), params)
    return rep


def test_rewrite_outer_product_and_broadcast_constant():
    rep = _grad_program((64, 256, 256, 1), 1024)
    ops = rewrite_products(rep.ops, rep.meta)
    # the seed cotangent (1024, 1) @ (1, 256): a broadcast multiply (+ 0.0)
    assert len(ops) == len(rep.ops) + 1
    assert sum(op[0] is np.multiply for op in ops) == sum(
        op[0] is np.multiply for op in rep.ops) + 1
    # the broadcast seed ones read by a product: a contiguous copy, same values
    old_consts = {id(a) for op in rep.ops for a in op[1] if a.__class__ is not int}
    copied = [a.value for op in ops if op[0] is matmul_p.impl for a in op[1]
              if a.__class__ is not int and id(a) not in old_consts]
    assert copied and all(c.flags.c_contiguous and np.all(c == 1.0) for c in copied)


def test_rewrite_leaves_other_products():
    _, rep = record(lambda a, b: a @ b, (np.ones((600, 2)), np.ones((2, 600))))
    assert rewrite_products(rep.ops, rep.meta)[0] is rep.ops[0]
    _, rep = record(lambda a, b: a @ b, (np.ones((600, 1), np.float32),
                                         np.ones((1, 600), np.float32)))
    assert rewrite_products(rep.ops, rep.meta)[0] is rep.ops[0]      # float64 only


def test_outer_product_rewrite_same_bits():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(700, 1)), rng.normal(size=(1, 300))
    a[::7] = 0.0                      # -0.0 products: matmul gives +0.0
    _, rep = record(lambda a, b: a @ b, (a, b))
    run = compile_program(rep, rewrite_products(rep.ops, rep.meta))
    got, want = run(a, b)[0], a @ b
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    f = da.jit(lambda a, b: np.tanh(a @ b + 0.5))
    f(a, b)
    _close(f(a, b), np.tanh(a @ b + 0.5), 1e-15)       # (the fused tanh: within 2 ulp)
    g = da.jit(da.grad(lambda a, b: np.sum(np.tanh(a @ b)), grad_position=(0, 1)))
    want = da.grad(lambda a, b: np.sum(np.tanh(a @ b)), grad_position=(0, 1))(a, b)
    g(a, b)
    _close(g(a, b), want, 1e-14)
    assert g.stats["replays"] == 1


def test_bias_tanh_region_and_transposes_stay_views():
    rep = _grad_program((64, 256, 256, 1), 1024)
    rewritten = rewrite_products(rep.ops, rep.meta)
    ops = fuse_region_ops(rewritten, rep.outputs, rep.meta)
    regions = [op for op in ops if type(op[0]) is Region]
    # each hidden layer's bias add + tanh is one region
    assert len(regions) >= 2 and all("np.tanh" in op[0].source for op in regions)
    # no region writes a transposed value that a product reads: those stay views
    transposed = {op[3][0] for op in ops if op[0] is _transpose}
    read = [a for op in rewritten if op[0] is matmul_p.impl for a in op[1]
            if a.__class__ is int and any(p[0] is _transpose and p[3][0] == a for p in rep.ops)]
    assert len(read) >= 2 and set(read) <= transposed


def test_changed_weights():
    params = _params((6, 11, 1))
    x = np.random.default_rng(5).normal(size=(40, 6))
    # weights as arguments: the same program, the new answer
    gr = da.jit(lambda p, a: da.grad(lambda q: loss(q, a))(p))
    gr(params, x)
    p2 = tuple(w + 0.25 for w in params)
    _close(gr(p2, x), da.grad(lambda q: loss(q, x))(p2), 1e-14)
    assert gr.stats["records"] == 1 and gr.stats["replays"] == 1
    # weights in a closure, changed in place: the guard re-records
    w = [np.array(p) for p in params]
    f = da.jit(lambda a: da.grad(lambda xx: loss(tuple(w), xx))(a))
    f(x)
    f(x)
    w[0] += 0.5
    want = da.grad(lambda xx: loss(tuple(w), xx))(x)
    _close(f(x), want, 1e-14)
    assert f.stats["records"] == 2
