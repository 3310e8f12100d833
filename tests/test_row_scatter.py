"""The compiled pair scatter (dualad/kernels/scatter.py) behind the gradient
of every row gather ``x[rows]``: the same bits as ``np.add.at``, NumPy's
index semantics, and the ``set_kernels`` switch honoured."""
import numpy as np
import pytest

import dualad as da
from dualad.kernels import scatter
from dualad.rules.indexing import _bincount_rows

RNG = np.random.default_rng(7)


def _add_at(rows, ct, shape):
    out = np.zeros(shape)
    np.add.at(out, rows, ct.reshape((rows.size,) + shape[1:]))
    return out


@pytest.mark.parametrize("k, shape", [(8128, (128, 3)), (5000, (40,)), (2000, (30, 2, 2)),
                                      (600, (600, 3))])
@pytest.mark.parametrize("mode", ["numba", "numpy"])
def test_same_bits_as_add_at(k, shape, mode):
    rows = RNG.integers(-shape[0], shape[0], k)
    ct = RNG.normal(size=(k,) + shape[1:])
    with da.kernels.use_kernels(mode):
        got = _bincount_rows(rows, ct, shape)
    np.testing.assert_array_equal(got, _add_at(rows, ct, shape))


def test_layouts_and_index_dtypes():
    ct = np.asfortranarray(RNG.normal(size=(3000, 3)))
    for rows in (RNG.integers(0, 50, 3000).astype(np.int32), RNG.integers(0, 50, 3000)):
        np.testing.assert_array_equal(scatter.scatter_rows(rows, ct, 50),
                                      _add_at(rows, ct, (50, 3)))


def test_out_of_range_row_raises():
    with pytest.raises(IndexError, match="out of bounds.*size 10"):
        scatter.scatter_rows(np.array([0, 10]), np.ones((2, 3)), 10)
    with pytest.raises(IndexError):
        scatter.scatter_rows(np.array([-11]), np.ones((1, 3)), 10)


def test_plain_python_loop_agrees():
    rows, ct = RNG.integers(-20, 20, 300), RNG.normal(size=(300, 2))
    out = np.zeros((20, 2))
    assert not scatter._scatter_rows(rows, ct, out)
    np.testing.assert_array_equal(out, scatter.scatter_rows(rows, ct, 20))


def test_pair_model_gradient_matches_the_hand_written_one():
    """The Lennard-Jones gradient through r[i] - r[j] over 8128 pairs (the
    scatter's main user) against the analytic pair forces."""
    from bench.workloads import lj_energy, lj_positions
    x = lj_positions(128)
    r = x.reshape(-1, 3)
    i, j = np.triu_indices(128, 1)
    d = r[i] - r[j]
    r2 = np.sum(d * d, axis=1)
    dv = (-48.0 * r2 ** -7 + 24.0 * r2 ** -4)[:, None] * d      # dV/dd_ij
    want = np.zeros_like(r)
    np.add.at(want, i, dv)
    np.add.at(want, j, -dv)
    got = da.grad(lj_energy)(x)
    np.testing.assert_allclose(got, want.reshape(-1), rtol=1e-12, atol=1e-12 * abs(want).max())
