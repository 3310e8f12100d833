"""The vectorisable sin/cos/exp of dualad.kernels.vecmath against NumPy
(dense grids, the hard arguments next to multiples of pi/2, special values,
the edges of their exact ranges), and the fused ``da.jit`` kernels that use
them: equal to eager within 1e-14, the C-library rerun outside the range,
the same bits for any thread count, and a clean fallback without Numba."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import dualad as da  # noqa: E402
from dualad.kernels import vecmath as vm  # noqa: E402
from dualad.mixed import fuse  # noqa: E402


@numba.njit(error_model="numpy")
def _apply(x, s, c, e):
    bs = be = 0
    for i in range(x.size):
        s[i] = vm.sin(x[i])
        c[i] = vm.cos(x[i])
        e[i] = vm.exp(x[i])
        bs += vm.sincos_bad(x[i])
        be += vm.exp_bad(x[i])
    return bs, be


def _run(x):
    x = np.ascontiguousarray(x, dtype=np.float64)
    s, c, e = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    bs, be = _apply(x, s, c, e)
    return s, c, e, bs, be


def _ulps(got, want):
    """|got - want| in units of the spacing at want (0 where both equal,
    both NaN included)."""
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(got - want) / np.spacing(np.abs(want))
    return np.where(same, 0.0, d)


def _pio2_neighbours():
    """The doubles next to k pi/2 for k up to 2**20 (where the reduction
    cancels most), with two neighbours each side."""
    k = np.arange(-(2 ** 20) + 1, 2 ** 20, 37, dtype=np.float64)
    x = k * (np.pi / 2)
    x = x[np.abs(x) <= vm.SINCOS_MAX]
    return np.concatenate([np.nextafter(x, np.inf * s) if s else x
                           for s in (0, 1, -1)] +
                          [np.nextafter(np.nextafter(x, np.inf), np.inf)])


GRIDS = {
    "dense": np.linspace(-10.0, 10.0, 400_001),
    "medium": np.random.default_rng(1).uniform(-1e4, 1e4, 200_000),
    "large": np.random.default_rng(2).uniform(-vm.SINCOS_MAX, vm.SINCOS_MAX, 200_000),
    "small": np.random.default_rng(3).uniform(-1e-3, 1e-3, 100_000),
    "tiny": np.random.default_rng(4).uniform(-1e-7, 1e-7, 10_000),
    "pio2": _pio2_neighbours(),
}


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_sin_cos_within_an_ulp_of_numpy(name):
    x = GRIDS[name]
    s, c, _, bs, _ = _run(x)
    assert bs == 0
    assert _ulps(s, np.sin(x)).max() <= 1.0
    assert _ulps(c, np.cos(x)).max() <= 1.0


def test_exp_within_an_ulp_of_numpy():
    rng = np.random.default_rng(5)
    x = np.concatenate([np.linspace(-708.0, 708.0, 400_001),
                        rng.uniform(-1.0, 1.0, 100_000), rng.uniform(-1e-9, 1e-9, 1000),
                        np.arange(-1021, 1022) * np.log(2.0)])
    _, _, e, _, be = _run(x)
    assert be == 0
    assert _ulps(e, np.exp(x)).max() <= 1.0


def test_exp_subnormal_overflow_and_infinite_results():
    """Below -708 the result is subnormal (it loses bits; compared in units
    of the smallest subnormal), down to 0 past -745.13; above 709.78 it
    overflows. All exact here: no C-library rerun for exp any more."""
    x = np.concatenate([np.linspace(-746.5, -707.0, 200_001),
                        np.linspace(709.0, 710.5, 20_001),
                        [-745.1332191019411, -745.1332191019412, -744.44007192138122,
                         709.782712893384, 709.7827128933841, -1e308, 1e308,
                         np.inf, -np.inf, -np.nan]])
    _, _, e, _, be = _run(x)
    assert be == 0
    with np.errstate(over="ignore", under="ignore"):
        want = np.exp(x)
    tiny = want < 2.2250738585072014e-308
    assert np.abs(e[tiny] - want[tiny]).max() <= 5e-324          # one subnormal step
    assert _ulps(e[~tiny], want[~tiny]).max() <= 1.0
    np.testing.assert_array_equal(np.isinf(e), np.isinf(want))
    np.testing.assert_array_equal(e[-5:-1], [0.0, np.inf, np.inf, 0.0])
    assert np.isnan(e[-1])


def test_special_values():
    x = np.array([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, -1e-300,
                  np.nan, -np.nan])
    s, c, e, bs, be = _run(x)
    np.testing.assert_array_equal(s, np.sin(x))
    np.testing.assert_array_equal(np.signbit(s), np.signbit(np.sin(x)))     # sin(-0.0) = -0.0
    np.testing.assert_array_equal(c, np.cos(x))
    np.testing.assert_array_equal(e, np.exp(x))
    assert bs == be == 0                # NaN needs no rerun: it propagates


def test_out_of_range_arguments_are_flagged():
    # every argument where the fast formulas are not exact is counted (the
    # fused kernel then reruns with the C library); those just inside are not
    big = np.array([np.inf, -np.inf, 1e300, -1e300, np.nextafter(vm.SINCOS_MAX, np.inf),
                    1.7976931348623157e308])
    assert _run(big)[3] == big.size
    edge = np.array([vm.SINCOS_MAX, -vm.SINCOS_MAX])
    s, c, _, bs, _ = _run(edge)
    assert bs == 0
    assert _ulps(s, np.sin(edge)).max() <= 1.0 and _ulps(c, np.cos(edge)).max() <= 1.0
    ex = np.array([709.0, -709.0, 745.0, -746.0, np.inf, -np.inf, 1e10])
    assert _run(ex)[4] == 0                       # exp: exact everywhere


# ============================================================================
# fused da.jit kernels
# ============================================================================
def w1(x):
    return np.sum(np.sin(x) * x ** 2 + np.exp(-x ** 2))


def _fused_program(j):
    prog = j.cache.get(next(iter(j.cache.keys()))).programs[0]
    return [v for v in prog.__globals__.values() if isinstance(v, fuse._Fused)]


def test_w1_gradient_is_one_vector_kernel():
    x = np.random.default_rng(0).uniform(-2.0, 2.0, 5000)
    g = da.grad(w1)
    j = da.jit(g)
    want = g(x)
    got = j(x)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14 * np.abs(want).max())
    kernels = _fused_program(j)
    assert len(kernels) == 1                                     # forward and reverse
    src = kernels[0].sources[True]
    for fn in ("_vm.sin(", "_vm.cos(", "_vm.exp("):
        assert src.count(fn) == 1
    assert "np.sin(" in kernels[0].sources[False]                # the exact variant
    np.testing.assert_allclose(j(x * 0.3), g(x * 0.3), rtol=1e-14,
                               atol=1e-14 * np.abs(want).max())


@pytest.mark.parametrize("bad", [1e7, np.inf, -np.inf, np.nan, 30.0])
def test_out_of_range_inputs_rerun_with_the_c_library(bad):
    # 1e7: sin/cos out of range; 30: exp(-900) underflows (subnormal/zero);
    # inf and nan: special values. The answer is what eager (NumPy) gives.
    x = np.linspace(-2.0, 2.0, 3000)
    g = da.grad(w1)
    j = da.jit(g)
    j(x)
    y = x.copy()
    y[17] = bad
    with np.errstate(all="ignore"):
        want = g(y)
        got = j(y)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    scale = np.abs(want[finite]).max()
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-14, atol=1e-14 * scale)


def test_results_do_not_depend_on_the_thread_count():
    # sizes with remainders, so the per-thread chunks and the vector loops'
    # scalar tails fall on different elements
    g = da.grad(lambda x: np.sum(np.sin(x) * np.cos(x * 3.0) + np.exp(-x * x) * x))
    for n in (2 ** 18 + 13, 2 ** 19 + 3):
        x = np.random.default_rng(n).uniform(-3.0, 3.0, n)
        j = da.jit(g)
        j(x)                                    # records (the eager values)
        base = j(x)
        (kern,) = _fused_program(j)
        assert kern.parallel                    # large enough for threads
        inputs = [x if a.__class__ is int else a.value for a in kern.spec.args]
        serial = [np.empty(n) for _ in range(kern.n_out)]
        assert kern.kernel(True, False)(*inputs, *serial) == 1
        for threads in sorted({1, 2, numba.config.NUMBA_NUM_THREADS}):
            if threads > numba.config.NUMBA_NUM_THREADS:
                continue
            numba.set_num_threads(threads)
            try:
                par = [np.empty(n) for _ in range(kern.n_out)]
                assert kern.kernel(True, True)(*inputs, *par) == 1
                again = j(x)
            finally:
                numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            for a, b in zip(par, serial):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(again, base)
        want = g(x)
        np.testing.assert_allclose(base, want, rtol=1e-14, atol=1e-14 * np.abs(want).max())


def _subprocess(code: str, **env) -> str:
    """Run ``code`` in a fresh interpreter (with extra environment variables);
    its stdout."""
    import os
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, **env},
                         cwd=str(Path(__file__).resolve().parent.parent))
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_parallel_only_where_the_work_pays():
    # a cheap arithmetic loop stays serial at sizes where sin/cos/exp go parallel
    cheap = da.jit(lambda x: (x + 1.0) * x - x)
    rich = da.jit(da.grad(w1))
    x = np.linspace(-1.0, 1.0, 2 ** 18)
    for j in (cheap, rich):
        j(x)
    assert [k.parallel for k in _fused_program(cheap)] == [False]
    assert [k.parallel for k in _fused_program(rich)] == [True]


def test_parallel_kernels_from_many_threads_workqueue():
    # Numba's workqueue layer aborts the process when entered by two threads
    # at once: the second caller runs the serial loop; every answer is right
    out = _subprocess("""
        import numpy as np, numba
        from concurrent.futures import ThreadPoolExecutor
        import dualad as da
        from dualad.mixed import fuse
        f = lambda x: np.sum(np.sin(x) * x ** 2 + np.exp(-x ** 2))
        j = da.jit(da.grad(f))
        x = np.random.default_rng(7).uniform(-2.0, 2.0, 2 ** 19 + 1)
        j(x)
        want = j(x)
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda _: j(x), range(32)))
        assert all(np.array_equal(o, want) for o in outs)
        (kern,) = [v for v in j.cache.get(next(iter(j.cache.keys()))).programs[0]
                   .__globals__.values() if isinstance(v, fuse._Fused)]
        assert kern.parallel
        print("OK", numba.threading_layer())
    """, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    assert "OK workqueue" in out


def test_jit_without_numba_runs_unfused():
    out = _subprocess("""
        import sys
        sys.modules["numba"] = None          # import numba raises ImportError
        import numpy as np
        import dualad as da
        f = lambda x: np.sum(np.sin(x) * x ** 2 + np.exp(-x ** 2))
        x = np.linspace(-2.0, 2.0, 4000)
        j = da.jit(da.grad(f))
        j(x)
        got = j(x)
        want = np.cos(x) * x**2 + 2 * x * np.sin(x) - 2 * x * np.exp(-x**2)
        assert np.allclose(got, want, rtol=1e-13, atol=1e-13), abs(got - want).max()
        assert j.stats["replays"] == 1, j.stats
        print("OK", list(j.reasons))
    """)
    assert "OK" in out and "not fused" in out


# ============================================================================
# eager per-operation kernels (dualad.kernels.cpu)
# ============================================================================
@pytest.mark.parametrize("bad", [None, 1e7, np.inf, np.nan])
def test_eager_sin_cos_kernels(bad):
    from dualad.kernels import cpu
    from dualad.rules.ufuncs import cos_p, sin_p
    x = np.linspace(-7.0, 7.0, 70_001)
    if bad is not None:
        x[5] = bad
    for prim, value, partial in ((sin_p, np.sin, np.cos), (cos_p, np.cos,
                                                           lambda t: -np.sin(t))):
        with np.errstate(invalid="ignore"):
            y, d = cpu.value_and_partial(prim, x)
            assert _ulps(y, value(x)).max() <= 1.0
            assert _ulps(d, partial(x)).max() <= 1.0
    # float32 keeps the C-library loop
    y, _ = cpu.value_and_partial(sin_p, x[:1000].astype(np.float32))
    assert y.dtype == np.float32


def _random_program(rng, depth: int = 5):
    """A random elementwise expression of x with sin/cos/exp and arithmetic
    (as a function and its source, for the failure message)."""
    unary = [("np.sin({})", np.sin), ("np.cos({})", np.cos), ("np.exp(-({})**2)", None),
             ("(-{})", None), ("({})**2", None), ("({}) * 0.5", None)]
    binary = ["({} + {})", "({} * {})", "({} - {})"]
    expr = "x"
    for _ in range(depth):
        if rng.random() < 0.6:
            expr = unary[rng.integers(len(unary))][0].format(expr)
        else:
            other = unary[rng.integers(3)][0].format("x")
            expr = binary[rng.integers(len(binary))].format(expr, other)
    src = f"lambda x: np.sum({expr})"
    return eval(src, {"np": np}), src


@pytest.mark.parametrize("seed", range(6))     # each compiles a new kernel (~1 s)
def test_random_fused_programs_match_eager(seed):
    # grad and hvp of random sin/cos/exp programs under da.jit equal eager to
    # 1e-14 (of the largest magnitude), also when some arguments leave the
    # vector math's range (the C-library rerun) and for a new set of values
    rng = np.random.default_rng(seed)
    f, src = _random_program(rng)
    x = rng.uniform(-3.0, 3.0, 700)
    v = rng.standard_normal(700)
    for fn in (da.grad(f), lambda x: da.hvp(f, (x,), (v,))[1]):
        j = da.jit(fn)
        j(x)
        for at in (x, x * 1.7 - 0.3, np.where(np.arange(700) % 97 == 5, 3e6, x)):
            with np.errstate(all="ignore"):
                want = fn(at)
                got = j(at)
            fin = np.isfinite(want)
            np.testing.assert_array_equal(np.isfinite(got), fin, err_msg=src)
            scale = np.abs(want[fin]).max() if fin.any() else 0.0
            np.testing.assert_allclose(got[fin], want[fin], rtol=0, atol=1e-14 * scale,
                                       err_msg=src)
        assert j.stats["replays"] >= 1, (src, list(j.reasons))
        assert any("_vm." in k.sources[True] for k in _fused_program(j)), src
