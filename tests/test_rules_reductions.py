"""Reductions: prod, cumsum, cumprod, max/min (ties split evenly), var, std,
norms, ufunc.reduce, average, nan-reductions; forward and reverse to order 2."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.forward.api import jacfwd
from dualad.reverse.api import jacrev
from dualad.testing import check_grads

LA = np.linalg
SHAPES = {"scalar": (), "vector": (5,), "matrix": (3, 4), "tensor3": (2, 3, 4)}


def _x(shape, seed=0, lo=0.5, hi=1.5):
    """Magnitudes in [lo, hi] with random signs (smooth for every op here)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], size=shape)


def _distinct(shape, seed=0):
    """Entries at least 0.3 apart: no ties for max/min."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    return ((rng.permutation(n) - n / 2) * 0.5 + rng.uniform(-0.1, 0.1, n)).reshape(shape)


def _check(f, *args):
    """Traced primal equals NumPy's, then derivatives to order 2 both modes."""
    want = f(*args)
    got, _ = da.jvp(f, args, tuple(np.ones_like(a) for a in args))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    check_grads(f, args, order=2, modes=("fwd", "rev"))


# ============================================================================
# prod, cumsum, cumprod
# ============================================================================
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_prod_all(shape):
    _check(np.prod, _x(shape))


@pytest.mark.parametrize("kw", [dict(axis=0), dict(axis=-1), dict(axis=(0, 2)),
                                dict(axis=1, keepdims=True), dict(axis=None, keepdims=True)])
def test_prod_axes(kw):
    _check(lambda x: np.prod(x, **kw), _x((2, 3, 4)))


def test_prod_method_and_reduce():
    x = _x((3, 4))
    _check(lambda x: x.prod(axis=1), x)
    _check(lambda x: np.multiply.reduce(x), x)
    _check(lambda x: np.multiply.reduce(x, axis=None), x)


def test_prod_with_zeros_is_exact():
    x = np.array([2.0, 0.0, 3.0, 5.0])
    want = np.array([0.0, 30.0, 0.0, 0.0])
    np.testing.assert_array_equal(da.grad(np.prod)(x), want)
    _, t = da.jvp(np.prod, (x,), (np.array([1.0, 1.0, 1.0, 1.0]),))
    assert float(t) == 30.0
    # Two zeros: the gradient vanishes but the mixed second derivative does not.
    y = np.array([0.0, 0.0, 3.0])
    np.testing.assert_array_equal(da.grad(np.prod)(y), np.zeros(3))
    h = jacfwd(da.grad(np.prod))(y)
    np.testing.assert_array_equal(h, [[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(jacrev(da.grad(np.prod))(y), h)
    check_grads(lambda x: np.prod(x, axis=1), (np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 1.5]]),))


@pytest.mark.parametrize("kw", [dict(), dict(axis=0), dict(axis=1), dict(axis=-1)])
def test_cumsum(kw):
    _check(lambda x: np.cumsum(x, **kw), _x((3, 4)))
    _check(lambda x: x.cumsum(**kw), _x((3, 4), seed=1))


def test_cumsum_tensor_and_accumulate():
    _check(lambda x: np.cumsum(x, axis=1), _x((2, 3, 4)))
    _check(lambda x: np.add.accumulate(x, axis=1), _x((2, 3, 4)))
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(jacrev(np.cumsum)(x), np.tril(np.ones((3, 3))))


@pytest.mark.parametrize("kw", [dict(), dict(axis=0), dict(axis=1), dict(axis=-1)])
def test_cumprod(kw):
    _check(lambda x: np.cumprod(x, **kw), _x((3, 5)))


def test_cumprod_tensor_and_accumulate():
    _check(lambda x: np.cumprod(x, axis=2), _x((2, 3, 5)))
    _check(lambda x: np.multiply.accumulate(x, axis=0), _x((3, 2)))


def test_cumprod_with_zeros_is_exact():
    x = np.array([2.0, 0.0, 3.0, 4.0])
    # d cumprod_i / d x_k = prod_{j <= i, j != k} x_j for k <= i.
    want = np.array([[1.0, 0.0, 0.0, 0.0],
                     [0.0, 2.0, 0.0, 0.0],
                     [0.0, 6.0, 0.0, 0.0],
                     [0.0, 24.0, 0.0, 0.0]])
    np.testing.assert_array_equal(jacfwd(np.cumprod)(x), want)
    np.testing.assert_array_equal(jacrev(np.cumprod)(x), want)
    check_grads(np.cumprod, (x,))


# ============================================================================
# max / min
# ============================================================================
@pytest.mark.parametrize("fn", [np.max, np.min, np.amax, np.amin],
                         ids=["max", "min", "amax", "amin"])
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_extrema_all(fn, shape):
    _check(fn, _distinct(shape))


@pytest.mark.parametrize("kw", [dict(axis=0), dict(axis=-1), dict(axis=(0, 2)),
                                dict(axis=1, keepdims=True)])
@pytest.mark.parametrize("fn", [np.max, np.min])
def test_extrema_axes(fn, kw):
    _check(lambda x: fn(x, **kw), _distinct((2, 3, 4)))


def test_extrema_methods_reduce_ptp():
    x = _distinct((3, 4))
    _check(lambda x: x.max(axis=0), x)
    _check(lambda x: x.min(1), x)
    _check(lambda x: np.maximum.reduce(x), x)
    _check(lambda x: np.minimum.reduce(x, axis=1), x)
    _check(lambda x: np.ptp(x, axis=1), x)
    _check(lambda x: np.max(x, initial=0.0), x)


def test_max_ties_split_evenly():
    x = np.array([1.0, 3.0, -2.0, 3.0])
    np.testing.assert_array_equal(da.grad(np.max)(x), [0.0, 0.5, 0.0, 0.5])
    np.testing.assert_array_equal(da.grad(np.min)(-x), [0.0, 0.5, 0.0, 0.5])
    _, t = da.jvp(np.max, (x,), (np.array([1.0, 2.0, 3.0, 4.0]),))
    assert float(t) == 3.0      # (2 + 4) / 2
    m = np.array([[1.0, 1.0, 1.0], [0.0, 2.0, -1.0]])
    want = np.array([[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(da.grad(lambda m: np.max(m, axis=1).sum())(m), want)
    np.testing.assert_allclose(jacfwd(lambda m: np.max(m, axis=1))(m),
                               jacrev(lambda m: np.max(m, axis=1))(m))
    # Piecewise linear: the Hessian is exactly zero.
    np.testing.assert_array_equal(jacfwd(da.grad(np.max))(x), np.zeros((4, 4)))


def test_nan_reductions():
    x = np.array([[1.0, np.nan, 3.0], [2.0, 0.5, np.nan]])
    np.testing.assert_array_equal(da.grad(np.nansum)(x), [[1, 0, 1], [1, 1, 0]])
    np.testing.assert_allclose(da.grad(lambda x: np.nanmean(x, axis=1).sum())(x),
                               [[0.5, 0, 0.5], [0.5, 0.5, 0]])
    np.testing.assert_array_equal(da.grad(np.nanmax)(x), [[0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(da.grad(lambda x: np.nanprod(x, axis=1).sum())(x),
                                  [[3.0, 0, 1.0], [0.5, 2.0, 0]])
    np.testing.assert_array_equal(da.grad(lambda x: np.nanmin(x))(x), [[0, 0, 0], [0, 1, 0]])


# ============================================================================
# var, std, average
# ============================================================================
@pytest.mark.parametrize("kw", [dict(), dict(axis=0), dict(axis=1, ddof=1),
                                dict(axis=-1, keepdims=True), dict(axis=(0, 1), ddof=2)])
@pytest.mark.parametrize("fn", [np.var, np.std])
def test_var_std(fn, kw):
    _check(lambda x: fn(x, **kw), _x((3, 4)))


def test_var_std_methods():
    _check(lambda x: x.var(axis=-1, keepdims=True), _x((2, 3, 4)))
    _check(lambda x: x.std(ddof=1), _x((5,)))


def test_average():
    x, w = _x((3, 4)), np.array([0.5, 1.0, 2.0, 0.25])
    _check(lambda x: np.average(x), x)
    _check(lambda x: np.average(x, axis=1, weights=w), x)
    _check(lambda x: np.average(x, axis=0, weights=np.abs(x) + 1.0), x)
    _check(lambda w: np.average(x, axis=1, weights=w), w + 1.0)
    avg, scl = np.average(x, axis=1, weights=w, returned=True)
    got_avg, got_scl = da.jvp(lambda x: np.average(x, axis=1, weights=w, returned=True),
                              (x,), (np.ones_like(x),))[0]
    np.testing.assert_allclose(got_avg, avg)
    np.testing.assert_allclose(got_scl, scl)


# ============================================================================
# norms
# ============================================================================
@pytest.mark.parametrize("ord_", [None, 2, 1, np.inf, -np.inf, 3, 0.5, 1.5])
def test_vector_norms(ord_):
    _check(lambda x: LA.norm(x, ord_), _distinct((5,)) + 0.05)


@pytest.mark.parametrize("ord_", [None, 2, 1, np.inf, 3])
@pytest.mark.parametrize("kw", [dict(axis=1), dict(axis=0, keepdims=True), dict(axis=-1)])
def test_vector_norms_axis(ord_, kw):
    _check(lambda x: LA.norm(x, ord_, **kw), _distinct((2, 3, 4)) + 0.05)


@pytest.mark.parametrize("ord_", [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf])
def test_matrix_norms(ord_):
    _check(lambda x: LA.norm(x, ord_), _distinct((3, 4)))


@pytest.mark.parametrize("ord_", ["fro", "nuc", 1, 2, -np.inf])
@pytest.mark.parametrize("kw", [dict(axis=(0, 2)), dict(axis=(2, 1), keepdims=True),
                                dict(axis=(-1, 0))])
def test_matrix_norms_axes(ord_, kw):
    _check(lambda x: LA.norm(x, ord_, **kw), _distinct((2, 3, 4)))


def test_norm_flattened_and_numpy2_variants():
    _check(lambda x: LA.norm(x), _x((2, 3, 4)))
    _check(lambda x: LA.norm(x, keepdims=True), _x((2, 3, 4)))
    if hasattr(LA, "vector_norm"):
        _check(lambda x: LA.vector_norm(x), _x((2, 3)))
        _check(lambda x: LA.vector_norm(x, axis=(0, 2), ord=1), _x((2, 3, 4)))
        _check(lambda x: LA.matrix_norm(x, ord="nuc"), _distinct((2, 3, 4)))


def test_zero_vector_norm_has_zero_derivative():
    z = np.zeros(4)
    v = np.array([1.0, -2.0, 0.5, 3.0])
    y, t = da.jvp(LA.norm, (z,), (v,))
    assert float(y) == 0.0 and float(t) == 0.0
    np.testing.assert_array_equal(da.grad(LA.norm)(z), np.zeros(4))
    h = jacfwd(da.grad(LA.norm))(z)
    assert np.all(np.isfinite(h))
    np.testing.assert_array_equal(h, np.zeros((4, 4)))
    np.testing.assert_array_equal(jacfwd(jacfwd(LA.norm))(z), np.zeros((4, 4)))
    # One zero row in a batch: that row's derivative is 0, the others exact.
    m = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    _, t = da.jvp(lambda m: LA.norm(m, axis=1), (m,), (np.ones_like(m),))
    np.testing.assert_allclose(t, [0.0, 7.0 / 5.0])
    np.testing.assert_allclose(jacrev(lambda m: LA.norm(m, axis=1))(m),
                               jacfwd(lambda m: LA.norm(m, axis=1))(m))
    # Frobenius and p-norms share the safe formulation.
    for ord_ in ("fro", None):
        assert np.all(da.grad(lambda m: LA.norm(m, ord_))(np.zeros((2, 2))) == 0)
    assert np.all(da.grad(lambda x: LA.norm(x, 3))(z) == 0)
    _, t = da.jvp(lambda x: LA.norm(x, 3), (z,), (v,))
    assert float(t) == 0.0


# ============================================================================
# reduce/accumulate through ufunc methods, sum and mean, batched Jacobians
# ============================================================================
def test_add_reduce_sum_mean():
    x = _x((2, 3, 4))
    _check(lambda x: np.add.reduce(x), x)
    _check(lambda x: np.add.reduce(x, axis=(0, 2)), x)
    _check(lambda x: np.sum(x, axis=-1, keepdims=True), x)
    _check(lambda x: np.mean(x, axis=(0, 1)), x)


@pytest.mark.parametrize("fn", [
    lambda x: np.prod(x, axis=0) * np.max(x, axis=1).sum(),
    lambda x: np.cumprod(np.sin(x), axis=1),
    lambda x: LA.norm(x, axis=0) + np.std(x, axis=0),
    lambda x: np.var(x * x, axis=1, ddof=1),
    lambda x: LA.norm(x, "nuc") * np.cumsum(x, axis=0),
], ids=["prod*max", "cumprod", "norm+std", "var", "nuc*cumsum"])
def test_jacfwd_matches_jacrev(fn):
    x = _distinct((3, 4)) * 0.5
    jf, jr = jacfwd(fn)(x), jacrev(fn)(x)
    assert jf.shape == np.shape(fn(x)) + x.shape
    np.testing.assert_allclose(jf, jr, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn", [
    lambda x: np.prod(x, axis=1), lambda x: np.cumprod(x, axis=0), lambda x: np.max(x, axis=0),
    lambda x: np.var(x, axis=1), lambda x: np.std(x), lambda x: LA.norm(x, axis=1),
    lambda x: LA.norm(x, "nuc"), lambda x: LA.norm(x, 2), lambda x: np.cumsum(x),
    lambda x: np.average(x, axis=0, weights=np.arange(1.0, 4.0, dtype=np.float32)),
], ids=["prod", "cumprod", "max", "var", "std", "norm", "nuc", "spectral", "cumsum", "average"])
def test_float32_stays_float32(fn):
    x = (_distinct((3, 4)) * 0.3).astype(np.float32)
    y, t = da.jvp(fn, (x,), (np.ones_like(x),))
    assert y.dtype == np.float32 and t.dtype == np.float32
    np.testing.assert_allclose(y, fn(x), rtol=1e-5, atol=1e-6)
    g = da.grad(lambda x: fn(x).sum())(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, da.grad(lambda x: fn(x).sum())(x.astype(np.float64)),
                               rtol=1e-3, atol=1e-4)
