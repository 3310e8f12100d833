"""Two eager fast paths must give NumPy's bits exactly: a sum over a short
axis (2-7 elements) as slice additions, and rows gathered by one integer
array as ``np.take``."""
import numpy as np
import pytest

import dualad as da
from dualad.rules.indexing import getitem_p
from dualad.rules.reductions import sum_p

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("shape, axis", [((500, 3), 1), ((500, 3), 0), ((3, 400), 0),
                                         ((40, 7, 9), 1), ((40, 9, 2), 2), ((7, 64), -2),
                                         ((300, 8), 1), ((2, 200), 0)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_short_axis_sum_bitwise_numpy(shape, axis, keepdims, dtype):
    x = (RNG.normal(size=shape) * 10.0 ** RNG.integers(-8, 8, size=shape)).astype(dtype)
    x.flat[::17] = -0.0
    x.flat[5] = np.nan
    x.flat[9] = np.inf
    ax = axis % len(shape)
    got = sum_p.impl(x, axis=(ax,), keepdims=keepdims)
    want = np.sum(x, axis=ax, keepdims=keepdims)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_short_axis_sum_of_negative_zeros():
    x = np.full((300, 3), -0.0)
    got = sum_p.impl(x, axis=(1,))
    assert np.signbit(got).all() == np.signbit(np.sum(x, axis=1)).all()


def test_pair_distance_grad_matches_jax_layout():
    # the whole LJ-style path: gather rows, square, short-axis sum, and back
    r = RNG.normal(size=(20, 3))
    i, j = np.triu_indices(20, 1)

    def f(x):
        d = x[i] - x[j]
        return np.sum(1.0 / np.sqrt(np.sum(d * d, axis=1)))

    g = da.grad(f)(r)
    d = r[i] - r[j]
    w = -(np.sum(d * d, axis=1) ** -1.5)[:, None] * d
    want = np.zeros_like(r)
    np.add.at(want, i, w)
    np.add.at(want, j, -w)
    np.testing.assert_allclose(g, want, rtol=1e-13)


@pytest.mark.parametrize("idx", [np.array([0, 3, -1, 2, 2]), np.array([], dtype=np.int64),
                                 np.arange(4, dtype=np.uint8), np.array([[1, 0], [-2, 3]])])
@pytest.mark.parametrize("rest", [(), (slice(None),), (slice(None), slice(None)), (slice(0, 3, 1),),
                                  (slice(1, None),), (0,)])
def test_row_gather_is_numpy_indexing(idx, rest):
    x = RNG.normal(size=(4, 3, 2))
    got = getitem_p.impl(x, key=(idx, *rest))
    want = x[(idx, *rest)]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_row_gather_out_of_bounds_raises_like_numpy():
    x = np.zeros((4, 3))
    with pytest.raises(IndexError, match="out of bounds"):
        getitem_p.impl(x, key=(np.array([5]),))


def test_two_index_arrays_stay_numpy_indexing():
    x = RNG.normal(size=(4, 3))
    key = (np.array([0, 3, 1]), np.array([2, 0, 1]))
    np.testing.assert_array_equal(getitem_p.impl(x, key=key), x[key])
