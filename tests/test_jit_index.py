"""Fused regions across basic indexing (dualad.mixed.fuse_index) under da.jit:
slices, their transposes (scatter_add of a basic key), broadcasting; and the
compiled environment guards (dualad.mixed.envguard.guard_function)."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.mixed.envguard import environment_guards, guard_function
from dualad.mixed.replay import record

pytest.importorskip("numba")

from dualad.mixed.fuse_index import Region, fuse_region_ops  # noqa: E402

N = 700          # above fuse.MIN_SIZE
_ONES = np.ones(2)


def _close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    assert np.all(np.abs(got - want) <= 1e-14 * scale), np.max(np.abs(got - want))


def _regions(fn, *args) -> int:
    _, rep = record(fn, args)
    return sum(isinstance(op[0], Region)
               for op in fuse_region_ops(rep.ops, rep.outputs, rep.meta))


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def strided(x):          # negative and non-unit steps, an int index
    a, b = x[::-1], x[1::3]
    return np.sum(a[: b.size] * np.sin(b) * x[2] + x[::-2][: b.size] ** 2)


def shifted_2d(x):       # 2-D slices with broadcasting of a row
    y = x.reshape(20, -1)
    return np.sum((y[1:, :-1] - y[:-1, 1:]) ** 2 * y[0, 1:] + y[:-1, :-1] * 3.0)


def with_none(x):        # None (a new axis) in the key
    return np.sum(x[None, 2:] * x[None, :-2] + x[:-2][:, None].T * 2.0)


def empty_slice(x):      # an empty slice joins a non-empty one
    return np.sum(x[1:] * x[:-1]) + np.sum(x[5:5] * 2.0 - x[3:3])


@pytest.mark.parametrize("f", [rosen, strided, shifted_2d, with_none, empty_slice])
def test_fused_grad_equals_eager(f):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, 20 * 35)
    g = da.jit(da.grad(f))
    want = da.grad(f)(x)
    _close(g(x), want)
    _close(g(x), want)                         # the replay
    assert g.stats["replays"] == 1 and not g.reasons
    x2 = rng.uniform(-1.5, 1.5, x.size)
    _close(g(x2), da.grad(f)(x2))


@pytest.mark.parametrize("f", [rosen, strided, shifted_2d])
def test_grad_is_one_region(f):
    x = np.linspace(-1.0, 1.0, 20 * 35)
    assert _regions(da.grad(f), x) >= 1


def test_hvp_fused_equals_eager():
    rng = np.random.default_rng(1)
    x, v = rng.normal(size=N), rng.normal(size=N)
    h = da.jit(lambda x, v: da.hvp(rosen, (x,), (v,))[1])
    want = da.hvp(rosen, (x,), (v,))[1]
    for _ in range(2):
        _close(h(x, v), want)
    assert _regions(lambda x, v: da.hvp(rosen, (x,), (v,))[1], x, v) == 1


def test_non_contiguous_input():
    base = np.random.default_rng(2).uniform(-1.0, 1.0, 2 * N)
    x = base[::2]                              # a strided view
    g = da.jit(da.grad(rosen))
    _close(g(np.ascontiguousarray(x)), da.grad(rosen)(x))
    _close(g(x), da.grad(rosen)(x))            # same signature, other strides
    _close(g(base[1::2]), da.grad(rosen)(base[1::2]))


def test_zero_d_values_in_a_region():
    def f(x):
        s = x[3] * x[4]                        # 0-d values broadcast into the loop
        return np.sum((x[1:] - s) * x[:-1] + s)
    x = np.linspace(0.5, 1.5, N)
    g = da.jit(da.grad(f))
    for _ in range(2):
        _close(g(x), da.grad(f)(x))


def test_region_guard_fails_then_right_answer():
    """A finiteness guard counted inside the kernel: an overflowing input
    makes the replay refuse, and the result is the eager one."""
    g = da.jit(da.grad(rosen))
    x = np.linspace(-1.0, 1.0, N)
    g(x)
    g(x)
    y = x.copy()
    y[10] = 1e300                              # 100 * (..)**2 overflows
    want = da.grad(rosen)(y)
    with np.errstate(all="ignore"):
        got = g(y)
    assert not np.all(np.isfinite(want))
    np.testing.assert_array_equal(got, want)
    _close(g(x), da.grad(rosen)(x))            # and back


def test_region_source_is_branch_free_inside():
    """The loop over the gradient is split where a scatter's range changes."""
    x = np.linspace(-1.0, 1.0, N)
    _, rep = record(da.grad(rosen), (x,))
    (region,) = [op[0] for op in fuse_region_ops(rep.ops, rep.outputs, rep.meta)
                 if isinstance(op[0], Region)]
    assert f"range(1, {N - 1})" in region.source
    body = region.source.split(f"range(1, {N - 1})")[1].split("for ")[0]
    assert " if " not in body and "\n        if" not in body


# -- compiled environment guards -------------------------------------------------
def test_guard_function_closure_kinds():
    state = {"k": 2.0}
    argnums = (0,)
    scale = 3

    def make():
        return lambda x, y=_ONES: x * scale + y * state["k"] + len(argnums)

    fn = make()
    check = guard_function(fn)
    assert check() and all(g() for g in environment_guards(fn))
    state["k"] = 2.5                            # a dict entry (followed by identity + items)
    assert not check()
    state["k"] = 2.0
    assert check()
    fn.__defaults__ = (np.zeros(2),)            # a default rebound
    assert not check()


def test_guard_function_tuple_and_scalar_types():
    """Plain scalars and small tuples are compared inline, by type and value
    (as their digest does): an equal value of another type is a miss."""
    def make(t, s):
        return lambda x: x * s + t[0]
    f = make((0,), 1.0)
    cells = dict(zip(f.__code__.co_freevars, f.__closure__))
    g = guard_function(f)
    assert g()
    cells["s"].cell_contents = 1                # == 1.0, but an int
    assert not g()
    cells["s"].cell_contents = 1.0
    cells["t"].cell_contents = (0,)             # a new tuple, same content
    assert g()
    cells["t"].cell_contents = (False,)         # == (0,), other element type
    assert not g()
    cells["t"].cell_contents = (0, 1)
    assert not g()


def test_jit_rereads_changed_closure_scalar():
    def make(k):
        return lambda x: np.sum(x[1:] * x[:-1] * k)
    k = 2.0
    f = make(k)
    g = da.jit(da.grad(f))
    x = np.linspace(0.0, 1.0, N)
    _close(g(x), da.grad(f)(x))
    f.__closure__[0].cell_contents = 5.0        # rebinding the closure cell
    _close(g(x), da.grad(f)(x))
    assert g.stats["records"] == 2


def test_empty_cell_guard():
    def outer():
        def f(x):
            return x * later              # noqa: F821  (bound below)
        check = guard_function(f)
        later = 2.0
        return check
    assert outer()() is False                   # the cell was empty when guarded


# -- gathers, accumulating scatters, shape ops, small sums ---------------------------
def lj(x):
    r = x.reshape(-1, 3)
    i, j = np.triu_indices(r.shape[0], 1)
    d = r[i] - r[j]
    s = 1.0 / np.sqrt(np.sum(d * d, axis=1))
    return np.sum(4.0 * (s**12 - s**6))


def _lattice(n):
    g = np.arange(4)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)[:n]
    return (1.12 * grid + np.random.default_rng(3).normal(0.0, 0.05, (n, 3))).reshape(-1)


def _scratch_regions(fn, *args):
    _, rep = record(fn, args)
    return [op[0] for op in fuse_region_ops(rep.ops, rep.outputs, rep.meta)
            if isinstance(op[0], Region)]


def _replays_eagers_answer_in_a_region(transform, f, x):
    """``da.jit(transform(f))`` gives eager's answer on the recording call
    and the replay, and its program fuses into a region with scratch loops;
    the jitted function, for more checks."""
    jitted = da.jit(transform(f))
    want = transform(f)(x)
    for _ in range(2):
        _close(jitted(x), want)
    assert _scratch_regions(transform(f), x)
    return jitted


def test_lj_grad_one_region_with_accumulating_scatter():
    x = _lattice(40)                            # 780 pairs
    g = da.jit(da.grad(lj))
    want = da.grad(lj)(x)
    for _ in range(2):
        np.testing.assert_array_equal(g(x), want)        # same sums, same order
    (region,) = _scratch_regions(da.grad(lj), x)
    assert region.scratch and "+=" in region.source
    y = x + 0.01
    np.testing.assert_array_equal(g(y), da.grad(lj)(y))


def test_lj_hessian_fused_equals_eager():
    _replays_eagers_answer_in_a_region(da.hessian, lj, _lattice(20))


def test_gather_negative_indices_and_repeats():
    idx = np.array([-1, 0, 5, -3, 5] * 150)

    def f(x):
        return np.sum(np.sin(x[idx]) * x[idx[::-1]] * 2.0 + x[idx] ** 2)
    _replays_eagers_answer_in_a_region(da.grad, f, np.linspace(-1.0, 1.0, 40))


def test_reshape_transpose_broadcast_small_sum():
    def f(x):
        y = x.reshape(30, 3, 10)
        z = np.transpose(y, (2, 0, 1))                   # (10, 30, 3)
        n = np.sqrt(np.sum(z * z, axis=2))               # a 3-element sum
        w = np.broadcast_to(n[:, :, None], (10, 30, 3)) * z
        return np.sum(w.reshape(-1)[1:] * 2.0 - w.reshape(-1)[:-1])
    x = np.random.default_rng(4).uniform(0.5, 1.5, 900)
    g = _replays_eagers_answer_in_a_region(da.grad, f, x)
    assert g.stats["replays"] == 1 and not g.reasons


def test_gather_non_contiguous_input():
    x = _lattice(40)
    big = np.empty(2 * x.size)
    big[::2] = x
    g = da.jit(da.grad(lj))
    g(x)
    np.testing.assert_array_equal(g(big[::2]), da.grad(lj)(x))


def test_guard_in_scratch_loop_fails_cleanly():
    """Two atoms on top of each other: the pair term is inf; the guard
    counted in the scratch loop refuses and the eager answer comes back."""
    x = _lattice(40)
    g = da.jit(da.grad(lj))
    g(x)
    y = x.copy()
    y[3:6] = y[0:3]
    with np.errstate(all="ignore"):
        want = da.grad(lj)(y)
        got = g(y)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(g(x), da.grad(lj)(x))


def test_where_in_a_region():
    def f(x):
        y = x[1:] * x[:-1]
        return np.sum(np.where(y > 0.1, y ** 2, -y) + np.where(x[1:] < 0.0, 2.0 * x[1:], 0.5))
    x = np.random.default_rng(5).uniform(-1.0, 1.0, N)
    g = da.jit(da.grad(f))
    for _ in range(2):
        _close(g(x), da.grad(f)(x))
    y = -x                                      # other branches taken: the mask is an input
    _close(g(y), da.grad(f)(y))
    assert _scratch_regions(da.grad(f), x)


def _random_slice(rng, n):
    step = int(rng.choice([-3, -2, -1, 1, 2, 3]))
    a, b = sorted(int(v) for v in rng.integers(-n, n + 1, 2))
    return slice(a, b, step) if step > 0 else slice(b, a, step)


@pytest.mark.parametrize("seed", range(6))
def test_random_2d_slices(seed):
    """Random steps (also general ones: the scatter's divisibility test),
    negative starts, both axes, gathered against eager at two points."""
    rng = np.random.default_rng(seed)
    k1 = (_random_slice(rng, 24), _random_slice(rng, 30))
    k2 = (_random_slice(rng, 24), _random_slice(rng, 30))

    def f(x):
        y = x.reshape(24, 30)
        a, b = y[k1], y[k2]
        m = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        return (np.sum(a[: m[0], : m[1]] * np.cos(b[: m[0], : m[1]]) * 3.0 - a[: m[0], : m[1]])
                + np.sum(y[k1] ** 2 * 0.5))

    g = da.jit(da.grad(f))
    for x in (rng.uniform(-1.0, 1.0, 720), rng.uniform(-2.0, 2.0, 720)):
        want = da.grad(f)(x)
        _close(g(x), want)
        _close(g(x), want)


# -- scalar programs held as Python floats (compile.py) ------------------------------
def test_scalar_program_values_and_types():
    def f(x):
        s = np.sin(x)
        return s * s * 3.0 - np.cos(x) / 2.0 + s

    j = da.jit(f)
    for x in (0.5, 0.5, 1.5, np.float64(0.25)):
        got, want = j(x), f(x)
        assert got == want and type(got) is type(want)
    assert j.stats["replays"] >= 2
    assert "float(" in next(iter(j.cache._data.values())).programs[0].source


def test_scalar_division_by_zero_falls_back():
    def f(x):
        s = np.sin(x)
        return (s * 2.0) / (s - s) + np.cos(x)

    j = da.jit(f)
    with np.errstate(all="ignore"):
        for _ in range(3):
            got, want = j(0.5), f(0.5)
            assert np.isnan(got) == np.isnan(want) and (np.isnan(want) or got == want)


def test_value_guard_on_a_scalar_slot():
    """A traced scalar read by Python (``float(...)``) is a value guard: it
    must compare equal on replay (the slot keeps its NumPy type)."""
    def f(x):
        k = float(da.stop_gradient(np.sin(x) * 2.0))     # read: guarded by value
        return np.cos(x) * k + np.sin(x) * np.sin(x)

    j = da.jit(f)
    assert j(0.5) == f(0.5) and j(0.5) == f(0.5)
    assert j.stats["replays"] == 1
    assert j(0.7) == f(0.7)                   # another value: re-recorded, right


def test_python_float_inputs_divide_by_zero():
    """Python float arguments enter the compiled arithmetic as they are:
    ``1.0 / x`` at 0.0 would raise where NumPy gives inf; the replay then
    refuses and the eager answer comes back."""
    g = da.jit(lambda a, b: a * b + 1.0 / a)
    assert g(2.0, 3.0) == g(2.0, 3.0) == 6.5
    with np.errstate(all="ignore"):
        assert g(0.0, 3.0) == np.inf
    assert g(4.0, 1.0) == 4.25
