"""vmap against Python loops: every op-table row (all shape families), its
gradient under vmap, nestings with grad/jvp/hessian, in_axes/out_axes."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.batching.rules import FALLBACK, uses_fallback
from dualad.core.registry import registry
from dualad.core.tree import tree_flatten
from tests.test_op_table import CASES, IDS

B = 3
SCALES = (1.0, 1.03, 1.06)     # stays inside every row's smooth domain


def _batch(spec, family):
    args = spec.args(family)
    return [tuple(a * s for a in args) for s in SCALES]


def _stack(outs):
    leaves = [tree_flatten(o)[0] for o in outs]
    return [np.stack([np.asarray(l[i]) for l in leaves]) for i in range(len(leaves[0]))]


def _close(got, want):
    got = tree_flatten(got)[0]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert not hasattr(g, "_level")
        assert np.shape(g) == np.shape(w), (np.shape(g), np.shape(w))
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spec, family", CASES, ids=IDS)
def test_vmap_row_equals_loop(spec, family):
    per = _batch(spec, family)
    stacked = [np.stack(a) for a in zip(*per)]
    _close(da.vmap(spec.fn)(*stacked), _stack([spec.fn(*a) for a in per]))
    # only the first argument mapped, the others broadcast; batch axis last
    if len(stacked) > 1:
        rest = per[0][1:]
        got = da.vmap(spec.fn, in_axes=(-1,) + (None,) * len(rest))(
            np.moveaxis(stacked[0], 0, -1), *rest)
        _close(got, _stack([spec.fn(a[0], *rest) for a in per]))


def _total(fn):
    def f(*args):
        return sum(np.sum(leaf) for leaf in tree_flatten(fn(*args))[0])
    return f


@pytest.mark.parametrize("spec, family", CASES, ids=IDS)
def test_vmap_grad_row_equals_loop(spec, family):
    per = _batch(spec, family)
    stacked = [np.stack(a) for a in zip(*per)]
    g = da.grad(_total(spec.fn))
    _close(da.vmap(g)(*stacked), _stack([g(*a) for a in per]))
    # and the other order: the gradient of a batched sum
    got = da.grad(lambda *xs: da.vmap(_total(spec.fn))(*xs).sum(),
                  grad_position=tuple(range(len(stacked))))(*stacked)
    _close(got if len(stacked) > 1 else (got,),
           [np.stack(t) for t in zip(*[tree_flatten(
               da.grad(_total(spec.fn), grad_position=tuple(range(len(a))))(*a))[0]
               for a in per])])


def test_fallback_primitives_listed():
    """Which registry primitives are batched by the per-example loop: the
    deliberate list ``FALLBACK`` (today empty: every built-in primitive has a
    rule) and the primitives of user ``custom_jvp``/``custom_vjp`` functions."""
    looped = {n for n, p in registry.items() if uses_fallback(p)}
    assert FALLBACK == frozenset()
    assert all(n.startswith(("custom_jvp:", "custom_vjp:")) for n in looped), sorted(looped)


# ============================================================================
# nestings with the other transforms, both orders
# ============================================================================
W1, W2 = np.linspace(-1, 1, 12).reshape(3, 4), np.linspace(0.5, -0.5, 4)


def _mlp(x):
    return np.tanh(np.tanh(x @ W1) @ W2) + np.sum(x ** 3) / 3


XS = np.random.default_rng(0).normal(size=(5, 3))


def _loop(fn, xs=XS):
    return np.stack([fn(x) for x in xs])


@pytest.mark.parametrize("name, transform", [
    ("grad", da.grad), ("hessian", da.hessian), ("jacfwd", da.jacfwd),
    ("jacrev", da.jacrev), ("hessian fwd-fwd", lambda f: da.hessian(f, mode="fwd-fwd")),
    ("hessian rev-rev", lambda f: da.hessian(f, mode="rev-rev")),
    ("hessian hyperdual", lambda f: da.hessian(f, mode="hyperdual")),
    ("grad of grad-sum", lambda f: da.grad(lambda x: da.grad(f)(x).sum())),
])
def test_vmap_of_transform_equals_loop(name, transform):
    np.testing.assert_allclose(da.vmap(transform(_mlp))(XS), _loop(transform(_mlp)),
                               rtol=1e-12, atol=1e-12)


def test_transforms_of_vmap():
    total = lambda xs: da.vmap(_mlp)(xs).sum()
    np.testing.assert_allclose(da.grad(total)(XS), _loop(da.grad(_mlp)), rtol=1e-12)
    v = np.random.default_rng(1).normal(size=XS.shape)
    out, t = da.jvp(da.vmap(_mlp), (XS,), (v,))
    np.testing.assert_allclose(out, _loop(_mlp))
    np.testing.assert_allclose(t, [da.grad(_mlp)(x) @ vi for x, vi in zip(XS, v)], rtol=1e-12)
    # the Hessian of a sum of independent examples is block diagonal
    h = da.hessian(total)(XS[:2])
    np.testing.assert_allclose(h[0, :, 0], da.hessian(_mlp)(XS[0]), rtol=1e-12)
    np.testing.assert_allclose(h[0, :, 1], 0.0, atol=1e-14)
    _, pull = da.vjp(da.vmap(_mlp), XS)
    np.testing.assert_allclose(pull(np.ones(5))[0], _loop(da.grad(_mlp)), rtol=1e-12)
    np.testing.assert_allclose(da.jacrev(da.vmap(_mlp))(XS)[np.arange(5), np.arange(5)],
                               _loop(da.grad(_mlp)), rtol=1e-12)


def test_nested_vmap():
    xs = np.random.default_rng(2).normal(size=(4, 5, 3))
    got = da.vmap(da.vmap(_mlp))(xs)
    np.testing.assert_allclose(got, [[_mlp(x) for x in row] for row in xs], rtol=1e-13)
    got = da.vmap(da.vmap(da.grad(_mlp)), in_axes=1, out_axes=1)(xs)
    want = np.stack([[da.grad(_mlp)(x) for x in row] for row in xs])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # grad outside two vmaps, and a vmap between two grads
    g = da.grad(lambda xs: da.vmap(da.vmap(_mlp))(xs).sum())(xs)
    np.testing.assert_allclose(g, want, rtol=1e-12)
    h = da.vmap(da.grad(lambda x: da.vmap(da.grad(_mlp))(x[None]).sum()))(XS)
    np.testing.assert_allclose(h, _loop(lambda x: da.hessian(_mlp)(x).sum(0)), rtol=1e-12)


def test_vmap_branches_masks_and_indices():
    f = lambda x: np.where(x > 0, x, 0.1 * x).sum() + x[np.argmax(x)] + np.sort(x)[0]
    np.testing.assert_allclose(da.vmap(f)(XS), _loop(f), rtol=1e-14)
    np.testing.assert_allclose(da.vmap(da.grad(f))(XS), _loop(da.grad(f)), rtol=1e-14)
    with pytest.raises(TypeError, match="np.where"):
        da.vmap(lambda x: x if x.sum() > 0 else -x)(XS)


def test_vmap_custom_rules_and_stop_gradient():
    @da.custom_jvp
    def softplus(x):
        return np.log1p(np.exp(x))

    @softplus.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t / (1 + np.exp(-x))

    f = lambda x: softplus(x).sum() + da.stop_gradient(x * x).sum()
    np.testing.assert_allclose(da.vmap(f)(XS), _loop(f), rtol=1e-14)
    np.testing.assert_allclose(da.vmap(da.grad(f))(XS), _loop(da.grad(f)), rtol=1e-14)


# ============================================================================
# in_axes / out_axes / axis_size and errors
# ============================================================================
def test_in_axes_variants():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    f = lambda x, y: x[:, None] * y
    np.testing.assert_allclose(da.vmap(f, in_axes=(1, None))(a, b[:, 0]),
                               [f(a[:, i], b[:, 0]) for i in range(3)])
    np.testing.assert_allclose(da.vmap(f, in_axes=(-1, 0))(a, b),
                               [f(a[:, i], b[i]) for i in range(3)])
    np.testing.assert_allclose(da.vmap(f, in_axes=[1, 0], out_axes=-1)(a, b),
                               np.stack([f(a[:, i], b[i]) for i in range(3)], axis=-1))
    # pytrees: a dict argument with per-key axes, a tuple argument as a prefix
    g = lambda d, t: d["w"] * t[0] + d["b"] * t[1]
    d = {"w": np.ones((3, 2)), "b": np.arange(2.0)}
    t = (np.arange(6.0).reshape(3, 2), 2.0)
    got = da.vmap(g, in_axes=({"w": 0, "b": None}, (0, None)))(d, t)
    np.testing.assert_allclose(got, [g({"w": d["w"][i], "b": d["b"]}, (t[0][i], 2.0))
                                     for i in range(3)])
    # outputs as pytrees with per-leaf out_axes, an unbatched output broadcast
    h = lambda x: {"s": x.sum(), "x": x, "c": np.ones(2)}
    out = da.vmap(h, out_axes={"s": 0, "x": 1, "c": None})(a)
    assert out["x"].shape == (3, 2) and out["s"].shape == (2,) and out["c"].shape == (2,)
    out = da.vmap(lambda x: np.ones(2))(a)
    assert out.shape == (2, 2)
    # axis_size with nothing mapped; keyword arguments are mapped over axis 0
    assert da.vmap(lambda c: c * np.ones(2), in_axes=None, axis_size=4)(1.0).shape == (4, 2)
    np.testing.assert_allclose(da.vmap(lambda x, y=None: x + y)(a, y=a), 2 * a)


def test_vmap_errors():
    with pytest.raises(ValueError, match="inconsistent sizes"):
        da.vmap(lambda x, y: x + y)(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="at least one non-None"):
        da.vmap(lambda x: x, in_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="out of bounds"):
        da.vmap(lambda x: x, in_axes=2)(np.ones((3, 2)))
    with pytest.raises(ValueError, match="2 entries"):
        da.vmap(lambda x: x, in_axes=(0, 0))(np.ones(3))
    with pytest.raises(ValueError, match="out_axes is None"):
        da.vmap(lambda x: x, out_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="prefix"):
        da.vmap(lambda t: t[0], in_axes=((0, 0, 0),))((np.ones(3), np.ones(3)))
    with pytest.raises(ValueError, match="inconsistent sizes"):
        da.vmap(lambda x: x, axis_size=5)(np.ones(3))


def test_every_builtin_primitive_has_a_batching_entry():
    """Each primitive dualad registers (in a fresh interpreter: no custom ones)
    has a batching rule or is named in FALLBACK; none is silently looped."""
    from tests.test_op_table import _builtin_primitive_names
    da.stop_gradient, da.custom_jvp      # noqa: B018  (import their modules here too)
    missing = [n for n in _builtin_primitive_names()
               if uses_fallback(registry[n]) and n not in FALLBACK]
    assert not missing, f"primitives without a batching rule: {missing}"


def test_vmap_custom_vjp_whose_fwd_calls_itself():
    @da.custom_vjp
    def f(x):
        return np.sin(x) * 2

    f.defvjp(lambda x: (f(x), np.cos(x)), lambda c, g: (2 * c * g,))
    g = da.grad(lambda x: f(x).sum())
    np.testing.assert_allclose(da.vmap(g)(XS), 2 * np.cos(XS), rtol=1e-14)
    total = lambda xs: da.vmap(lambda x: f(x).sum())(xs).sum()
    np.testing.assert_allclose(da.grad(total)(XS), 2 * np.cos(XS), rtol=1e-14)
    np.testing.assert_allclose(da.vmap(da.hessian(lambda x: f(x).sum()))(XS),
                               [np.diag(-2 * np.sin(x)) for x in XS], rtol=1e-13)


@pytest.mark.parametrize("fn", [
    lambda y: np.argmax(y), lambda y: np.argmin(y, axis=0), lambda y: np.argmax(y, axis=-1),
    lambda y: np.argsort(y), lambda y: np.argsort(y, axis=0), lambda y: np.all(y > 0, axis=1),
    lambda y: np.any(y > 0), lambda y: np.argmax(y, axis=1, keepdims=True),
    lambda y: np.argmax(y, keepdims=True),
], ids=["argmax", "argmin0", "argmax-1", "argsort", "argsort0", "all1", "any", "keep1", "keepN"])
def test_vmap_axis_functions(fn):
    ys = np.random.default_rng(3).normal(size=(6, 4, 5))
    np.testing.assert_array_equal(da.vmap(fn)(ys), np.stack([fn(y) for y in ys]))


def test_vmap_batched_gathers_and_lookups():
    ys = np.random.default_rng(4).normal(size=(6, 4, 5))
    g = lambda y: (np.sort(y, axis=0)[1:3].sum() + y[np.argmax(y[:, 0]), 1]
                   + np.take_along_axis(y, np.argsort(y, axis=1), 1)[:, 0].sum())
    np.testing.assert_allclose(da.vmap(da.grad(g))(ys), [da.grad(g)(y) for y in ys], rtol=1e-13)
    np.testing.assert_allclose(da.grad(lambda y: da.vmap(g)(y).sum())(ys),
                               [da.grad(g)(y) for y in ys], rtol=1e-13)
    # a lookup in a table that is not mapped, differentiated w.r.t. the table
    table = np.arange(10.0) * 2
    lookup = lambda t, i: np.take_along_axis(t, i[None], 0)[0]
    idx = np.array([1, 3, 3])
    np.testing.assert_allclose(da.vmap(lookup, in_axes=(None, 0))(table, idx), [2.0, 6.0, 6.0])
    got = da.grad(lambda t: da.vmap(lookup, in_axes=(None, 0))(t, idx).sum())(table)
    np.testing.assert_allclose(got, np.bincount(idx, minlength=10))
    with pytest.raises(TypeError, match="take_along_axis"):
        da.vmap(lambda i: table[i])(idx)


def test_vmap_compositions_keep_the_batch():
    """Compositions that read primal values (masks, indices) keep the batch
    axis: interp with plain knots and values, angle of a real value,
    piecewise whose pieces differ per example, an FFT and eig per example."""
    xs = np.array([[-0.5, 0.25, 1.0], [0.1, 0.9, -1.1], [0.6, -0.2, 0.3]])
    xp, fp = np.array([-1.0, 0.0, 1.0]), np.array([2.0, 0.0, 1.0])
    np.testing.assert_allclose(da.vmap(lambda x: np.interp(x, xp, fp))(xs),
                               [np.interp(x, xp, fp) for x in xs], rtol=1e-14)
    np.testing.assert_allclose(da.vmap(np.angle)(xs), np.angle(xs))
    pw = lambda x: np.piecewise(x, [x < 0, x > 0.5], [np.sin, lambda v: v * v, 0.5])
    np.testing.assert_allclose(da.vmap(pw)(xs), [pw(x) for x in xs], rtol=1e-14)
    g = da.grad(lambda x: np.sum(pw(x)))
    np.testing.assert_allclose(da.vmap(g)(xs), [g(x) for x in xs], rtol=1e-14)
    spec = lambda x: np.abs(np.fft.rfft(x)) ** 2
    np.testing.assert_allclose(da.vmap(spec)(xs), [spec(x) for x in xs], rtol=1e-12)
    a = np.stack([np.array([[2.0, 1.0], [0.5, 3.0]]) * s for s in SCALES])
    ev = lambda m: np.sort(np.real(np.linalg.eigvals(m)))
    np.testing.assert_allclose(da.vmap(ev)(a), [ev(m) for m in a], rtol=1e-12)
