"""``da.jit``: replays equal eager runs; every guard re-records when the
guarded thing changes; the caches stay bounded."""
from __future__ import annotations

import gc

import numpy as np
import pytest
import test_op_table as optable
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties import build, points, programs

import dualad as da
from dualad.core.tree import tree_flatten
from dualad.mixed import jit as jitmod


def _leaves(t):
    return [v.toarray() if hasattr(v, "toarray") else np.asarray(v) for v in tree_flatten(t)[0]]


def _same(got, want, tol=0.0):
    g, w = _leaves(got), _leaves(want)
    assert len(g) == len(w)
    for a, b in zip(g, w):
        assert a.shape == b.shape and a.dtype == b.dtype
        if tol == 0.0:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(b)))
                                                                       if b.size else 1.0))


def _check(jitted, eager, args, tol=0.0):
    """First call records, second (fresh copies) replays; both equal eager."""
    want = eager(*args)
    _same(jitted(*args), want, tol)
    copies = tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args)
    _same(jitted(*copies), want, tol)
    if jitted.stats["eager"] == 0:
        assert jitted.stats["replays"] >= 1


# ============================================================================
# the op table: grad, jvp and Hessian replays equal eager
# ============================================================================
def _scalar(fn):
    def s(*a):
        return sum(np.sum(leaf) for leaf in tree_flatten(fn(*a))[0])
    return s


CASES = [c for c in optable.CASES if "matrix" in c[1] or "vector" in c[1] or "scalar" in c[1]]
IDS = [f"{s.name}-{f}" for s, f in CASES]


@pytest.mark.parametrize("spec, family", CASES, ids=IDS)
def test_op_table_grad_and_jvp(spec, family):
    args = spec.args(family)
    pos = tuple(range(len(args)))
    s = _scalar(spec.fn)
    g = da.grad(s, grad_position=pos)
    _check(da.jit(g), g, args, tol=1e-14)
    tangents = tuple(np.ones_like(a) for a in args)
    j = lambda *a: da.jvp(spec.fn, a, tangents)
    _check(da.jit(j), j, args, tol=1e-14)


HESS_CASES = [c for c in CASES if c[1] in ("vector", "scalar")]


@pytest.mark.parametrize("spec, family", HESS_CASES,
                         ids=[f"{s.name}-{f}" for s, f in HESS_CASES])
def test_op_table_hessian(spec, family):
    args = spec.args(family)
    h = da.hessian(_scalar(spec.fn))
    _check(da.jit(h), h, args, tol=1e-14)


# ============================================================================
# hypothesis: random compositions
# ============================================================================
@settings(max_examples=30, deadline=None)
@given(programs, points, st.integers(0, 2**31 - 1))
def test_random_programs_replay(program, x, seed):
    f = build(program)
    s = lambda x: np.sum(f(x))
    v = np.random.default_rng(seed).standard_normal(x.shape)
    for fn in (da.grad(s), lambda x: da.jvp(f, (x,), (v,)), da.hessian(s),
               lambda x: da.hvp(s, (x,), (v,))):
        j = da.jit(fn)
        _check(j, fn, (x,), tol=1e-14)
        y = x * 0.9 + 0.05
        _same(j(y), fn(y), 1e-14)


# ============================================================================
# every transform
# ============================================================================
def f_ref(x):
    return np.sum(np.sin(x) * x ** 2 + np.exp(-x ** 2))


X = np.linspace(-1.0, 1.2, 6)
V = np.cos(np.arange(6.0))


@pytest.mark.parametrize("name, fn, args", [
    ("plain", f_ref, (X,)),
    ("grad", da.grad(f_ref), (X,)),
    ("value_and_grad", da.value_and_grad(f_ref), (X,)),
    ("vjp", lambda x: da.vjp(lambda y: np.sin(y) * y, x)[1](V), (X,)),
    ("jvp", lambda x: da.jvp(lambda y: np.sin(y) * y, (x,), (V,)), (X,)),
    ("hvp", lambda x: da.hvp(f_ref, (x,), (V,)), (X,)),
    ("jacfwd", da.jacfwd(lambda y: np.sin(y) * y[::-1]), (X,)),
    ("jacrev", da.jacrev(lambda y: np.sin(y) * y[::-1]), (X,)),
    ("hessian", da.hessian(f_ref), (X,)),
    ("hessian-fwd-rev", da.hessian(f_ref, mode="fwd-rev"), (X,)),
    ("hessian-rev-rev", da.hessian(f_ref, mode="rev-rev"), (X,)),
    ("hessian-fwd-fwd", da.hessian(f_ref, mode="fwd-fwd"), (X,)),
    ("hessian-hyperdual", da.hessian(f_ref, mode="hyperdual"), (X,)),
    ("hessian-structured", da.hessian(f_ref, mode="structured"), (X,)),
    ("hessian-sparse", da.hessian(f_ref, mode="sparse"), (X,)),
    ("hessian-csr", da.hessian(f_ref, csr=True), (X,)),
    ("derivative", lambda x: da.derivative(lambda t: np.exp(np.sin(t)), x, order=6), (0.5,)),
    ("two-args", da.grad(lambda a, b: np.sum(a * np.sin(b)), grad_position=(0, 1)), (X, V)),
])
def test_transforms(name, fn, args):
    j = da.jit(fn)
    _check(j, fn, args, tol=1e-14)
    assert j.stats["eager"] == 0 and j.stats["replays"] == 1, j.reasons
    moved = tuple(a * 1.1 + 0.01 for a in args)
    _same(j(*moved), fn(*moved), 1e-14)


def test_scalar_inputs_are_traced_ints_static(capsys):
    def f(x, n):
        print("run")
        return x ** n

    j = da.jit(da.grad(f))
    assert float(j(2.0, 3)) == 12.0
    assert float(j(3.0, 3)) == 27.0             # replayed: a float is traced
    assert capsys.readouterr().out.count("run") == 1
    assert float(j(2.0, 2)) == 4.0              # a new int re-records
    assert capsys.readouterr().out.count("run") == 1


# ============================================================================
# guards: change the guarded thing, get the new right answer
# ============================================================================
def test_guard_closure_array_contents():
    c = np.ones(3)
    j = da.jit(da.grad(lambda x: np.sum(c * x ** 2)))
    x = np.arange(3.0)
    _same(j(x), 2 * x)
    c[1] = 5.0                                  # in place: content digest
    _same(j(x), 2 * c * x)
    assert j.stats["records"] == 2


def test_guard_closure_cell_rebound():
    scale = 2.0

    def f(x):
        return np.sum(scale * x ** 2)

    j = da.jit(da.grad(f))
    x = np.ones(2)
    _same(j(x), 4 * x)
    scale = 3.0                                 # noqa: F841  (read by f through its cell)
    _same(j(x), 6 * x)


G_SCALE = 1.0
G_FN = np.sin


def _uses_globals(x):
    return np.sum(G_SCALE * G_FN(x))


def test_guard_globals_value_and_identity():
    global G_SCALE, G_FN
    j = da.jit(da.grad(_uses_globals))
    x = np.linspace(0, 1, 4)
    try:
        _same(j(x), np.cos(x))
        G_SCALE = 2.0
        _same(j(x), 2 * np.cos(x))
        G_FN = np.cos
        _same(j(x), -2 * np.sin(x))
        assert j.stats["records"] == 3
    finally:
        G_SCALE, G_FN = 1.0, np.sin


def test_guard_dict_of_functions():
    table = {"f": np.sin}
    j = da.jit(da.grad(lambda x: np.sum(table["f"](x))))
    x = np.linspace(0, 1, 3)
    _same(j(x), np.cos(x))
    table["f"] = np.cos                         # the dict is mutated in place
    _same(j(x), -np.sin(x))


def test_guard_called_function_globals_and_self():
    class Model:
        def __init__(self):
            self.w = np.ones(2)

        def __call__(self, x):
            return np.sum(self.w * np.sin(x))

    m = Model()
    j = da.jit(da.grad(lambda x: _helper(m, x)))
    x = np.zeros(2)
    _same(j(x), m.w)
    m.w = np.array([2.0, 3.0])                  # attribute rebound
    _same(j(x), m.w)
    m.w[0] = 7.0                                # attribute mutated in place
    _same(j(x), m.w)


def _helper(m, x):
    return m(x)


def test_guard_branch_outcome():
    def f(x):
        if x[0] > 0:                            # one boolean read: a guard on it
            return np.sum(x ** 2)
        return np.sum(x ** 3)

    g = da.grad(f)
    j = da.jit(g)
    for v in ([1.0, 2.0], [-1.0, 2.0], [3.0, 1.0], [-2.0, 5.0]):
        _same(j(np.array(v)), g(np.array(v)))
    assert j.stats["records"] == 2 and j.stats["replays"] == 2


def test_where_condition_is_recorded_not_read():
    relu = lambda x: np.sum(np.where(x > 0, x, 0.01 * x) ** 2)
    v = np.cos(np.arange(40.0))
    for fn in (da.grad(relu), lambda x: da.hvp(relu, (x,), (v,))):
        j = da.jit(fn)
        for lo in (-1.0, -3.0, 0.5):
            x = np.linspace(lo, lo + 2.5, 40)
            _same(j(x), fn(x))
        assert j.stats["records"] == 1 and j.stats["replays"] == 2


def test_large_value_read_runs_eagerly():
    def f(x):
        return np.sum(x[np.nonzero(x > 0)] ** 2)   # the indices of 40 values

    g = da.grad(f)
    j = da.jit(g)
    for lo in (-1.0, 0.5):
        x = np.linspace(lo, lo + 2.5, 40)
        _same(j(x), g(x))
    assert j.reasons and j.stats["replays"] == 0


def test_value_guards_that_keep_failing_go_eager():
    def f(x):
        return x * 2.0 if float(np.sum(x)) > 0 else x   # a scalar read each call

    j = da.jit(lambda x: f(x))
    for k in range(jitmod.MAX_MISSES + 4):
        x = np.full(3, float(k + 1))
        _same(j(x), f(x))
    assert j.stats["eager"] >= 1


def test_guard_shape_and_dtype():
    j = da.jit(da.grad(lambda x: np.sum(np.sin(x))))
    for x in (np.zeros(3), np.zeros(4), np.zeros((2, 2)), np.zeros(3, dtype=np.float32)):
        got = j(x)
        assert got.shape == x.shape and got.dtype == x.dtype
        np.testing.assert_array_equal(got, np.ones_like(x))
    assert j.stats["records"] == 4


def test_guard_finiteness_path():
    # x * log(x) at 0: the 0*inf guard takes another path; the replay's
    # finiteness guard notices and the right (finite) answer comes back.
    g = da.grad(lambda x: np.sum(np.sqrt(x) * x))
    j = da.jit(g)
    _same(j(np.array([1.0, 4.0])), g(np.array([1.0, 4.0])))
    _same(j(np.array([0.0, 4.0])), g(np.array([0.0, 4.0])))
    _same(j(np.array([1.0, 9.0])), g(np.array([1.0, 9.0])))


def test_pytree_arguments_and_outputs():
    def f(p, x):
        return {"y": np.tanh(p["w"] * x) + p["b"], "s": (np.sum(x),)}

    j = da.jit(f)
    p = {"w": np.ones(3), "b": 0.5}
    x = np.arange(3.0)
    _same(j(p, x), f(p, x))
    p2 = {"w": np.full(3, 2.0), "b": 1.5}
    _same(j(p2, x), f(p2, x))
    assert j.stats["replays"] == 1


def test_returned_constant_is_fresh():
    j = da.jit(lambda x: (np.sin(x), np.zeros(2)))
    a = j(np.ones(2))[1]
    b = j(np.ones(2))[1]
    b[0] = 5.0
    assert j(np.ones(2))[1][0] == 0.0 and a[0] == 0.0


def test_side_effects_run_on_record_only(capsys):
    j = da.jit(lambda x: (print("side effect"), np.sin(x))[1])
    j(np.ones(2))
    j(np.ones(2))
    assert capsys.readouterr().out.count("side effect") == 1


def test_mutated_closure_list_rerecords():
    # A list the function reads (or appends to) is guarded by content: a
    # change re-records (never a stale replay).
    seen = [1.0]
    j = da.jit(lambda x: np.sin(x) * seen[-1])
    np.testing.assert_array_equal(j(np.ones(2)), np.sin(np.ones(2)))
    seen.append(2.0)
    np.testing.assert_array_equal(j(np.ones(2)), 2.0 * np.sin(np.ones(2)))


def test_jit_inside_grad_runs_the_function():
    inner = da.jit(lambda x: np.sin(x) * x)
    g = da.grad(lambda x: np.sum(inner(x)))
    x = np.linspace(0, 1, 3)
    np.testing.assert_allclose(g(x), np.cos(x) * x + np.sin(x), rtol=1e-15)


# ============================================================================
# fused kernels
# ============================================================================
def test_fused_kernels_match_numpy():
    from dualad.mixed import fuse
    f = lambda x: np.sum(np.sin(x) * x ** 2 + np.cos(x) * (x * 3.0 - 1.0) ** 3)
    x = np.linspace(-2, 2, 2000)
    for fn in (da.grad(f), lambda x: da.hvp(f, (x,), (np.cos(x),)), f):
        j = da.jit(fn)
        j(x)
        src = j.cache.get(next(iter(j.cache.keys()))).programs[0].source
        assert "_ok" in src or fn is f            # a fused kernel with its guard flag
        _same(j(x * 0.5), fn(x * 0.5), 1e-14)
        unfused = da.jit(fn, fuse=False)
        _same(j(x * 0.7), unfused(x * 0.7), 1e-14)
    assert fuse.fused_kernels() >= 1


def test_fused_guard_flag_takes_the_eager_path():
    # sqrt(x) * x: a partial is infinite at 0; the fused kernel's flag fails
    # and the right value comes from the interpreted path.
    g = da.grad(lambda x: np.sum(np.sin(np.sqrt(x) * x + x * x) * 2.0))
    j = da.jit(g)
    x = np.linspace(1.0, 2.0, 1000)
    _same(j(x), g(x), 1e-14)
    y = x.copy()
    y[3] = 0.0
    _same(j(y), g(y), 1e-14)


# ============================================================================
# bounded caches
# ============================================================================
def test_cache_bounded_10000_signatures():
    # 10,000 signatures (a new static int each call): the cache keeps 16, and
    # the live objects (programs, guards, compiled code) stop growing.
    j = da.jit(da.grad(lambda x, k: np.sum(x * x) * k), maxsize=16)
    x = np.ones(3)
    for k in range(10000):
        if k == 1000:
            gc.collect()
            base = len(gc.get_objects())
        np.testing.assert_array_equal(j(x, k), 2.0 * k * x)
    gc.collect()
    assert len(j.cache) == 16
    assert j.stats["records"] == 10000
    assert len(gc.get_objects()) - base < 2000


def test_default_sizes_documented():
    assert jitmod.MAX_SIGNATURES == 64 and jitmod.MAX_VARIANTS == 4
    assert "MAX_SIGNATURES" in jitmod.__doc__
