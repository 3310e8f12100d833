"""In-place updates of traced arrays (dualad/rules/inplace.py): ``x[i] = v``,
``x[i] += v``, ``x[mask] *= v``, ``ufunc.at``, traced buffers from
``zeros_like``/``like=``, ``bincount(weights=)``: every gradient and Hessian
equals the one of the same function written without in-place updates."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da

RNG = np.random.default_rng(11)
HESSIAN_MODES = ["auto", "fwd-rev", "rev-rev", "fwd-fwd", "hyperdual", "sparse", "structured"]


# ============================================================================
# a pair potential in two styles: accumulate into buffers vs np.sum
# ============================================================================
def _pairs(n: int):
    i, j = np.triu_indices(n, 1)
    return i, j


def energy_sum(x):
    pos = np.reshape(x, (-1, 2))
    i, j = _pairs(len(pos))
    d = pos[i] - pos[j]
    r2 = np.sum(d * d, axis=1)
    onsite = np.sum(np.cos(pos[:, 0]) * pos[:, 1] ** 2)
    return np.sum(1.0 / r2 + 0.1 * r2) + onsite


def energy_buffer(x):
    pos = np.reshape(x, (-1, 2))
    n = len(pos)
    i, j = _pairs(n)
    e_atom = np.zeros_like(pos[:, 0])          # per-atom energies, accumulated
    for a in range(n):
        e_atom[a] += np.cos(pos[a, 0]) * pos[a, 1] ** 2
    d = pos[i] - pos[j]
    r2 = np.sum(d * d, axis=1)
    e_pair = 1.0 / r2 + 0.1 * r2
    np.add.at(e_atom, i, 0.5 * e_pair)         # half of each pair to each atom
    np.add.at(e_atom, j, 0.5 * e_pair)
    total = np.zeros(1, like=x)
    total[0] = np.sum(e_atom)
    return total[0]


X = RNG.standard_normal(8) * 2.0


def test_buffer_energy_value_and_gradient() -> None:
    np.testing.assert_allclose(energy_buffer(X), energy_sum(X), rtol=1e-12)
    np.testing.assert_allclose(da.grad(energy_buffer)(X), da.grad(energy_sum)(X),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(da.jacfwd(energy_buffer)(X), da.grad(energy_sum)(X),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", HESSIAN_MODES)
def test_buffer_energy_hessian_every_mode(mode: str) -> None:
    want = da.hessian(energy_sum, mode="fwd-rev")(X)
    got = da.hessian(energy_buffer, mode=mode)(X)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_buffer_energy_sparse_hessian() -> None:
    want = da.hessian(energy_sum)(X)
    got = da.hessian(energy_buffer, sparse=True)(X)
    np.testing.assert_allclose(got.toarray(), want, rtol=1e-10, atol=1e-10)


# ============================================================================
# each update kind against its functional twin, fwd and rev, to order 2
# ============================================================================
V = RNG.standard_normal(6)
IDX = np.array([0, 2, 2, 5, 0])
MASK = V > 0


def _setitem(x):
    y = x * 1.0
    y[1] = x[0] ** 2
    y[2:4] = np.sin(x[2:4])
    return y


def _setitem_twin(x):
    return np.concatenate([x[:1], x[:1] ** 2, np.sin(x[2:4]), x[4:]])


def _fancy_repeat(x):                      # a repeated index: last write wins
    y = x * 1.0
    y[[1, 3, 1]] = x[:3] ** 2
    return y


def _fancy_repeat_twin(x):
    return np.stack([x[0], x[2] ** 2, x[2], x[1] ** 2, x[4], x[5]])


def _augmented(x):
    y = x * 1.0
    y[1] += x[0] * x[2]
    y[MASK] *= 3.0
    y[-1] -= 1.0
    y /= 2.0
    return y


def _augmented_twin(x):
    y = x + np.where(np.arange(6) == 1, x[0] * x[2], 0.0)
    y = np.where(MASK, 3.0 * y, y)
    return (y - np.where(np.arange(6) == 5, 1.0, 0.0)) / 2.0


def _add_at(x):
    y = np.zeros_like(x)
    np.add.at(y, IDX, x[:5] ** 2)
    np.subtract.at(y, [1], x[5])
    return y


def _add_at_twin(x):
    c = x[:5] ** 2
    return np.stack([c[0] + c[4], -x[5], c[1] + c[2], 0.0 * x[0], 0.0 * x[0], c[3]])


def _multiply_at(x):
    y = x + 1.0
    np.multiply.at(y, IDX, x[:5])
    np.maximum.at(y, [4], x[0])
    np.minimum.at(y, [3], x[1])
    return y


def _multiply_at_twin(x):
    y = x + 1.0
    return np.stack([y[0] * x[0] * x[4], y[1], y[2] * x[1] * x[2], np.minimum(y[3], x[1]),
                     np.maximum(y[4], x[0]), y[5] * x[3]])


def _bincount(x):
    return np.bincount(IDX, weights=x[:5] ** 2, minlength=7)


PAIRS = [(_setitem, _setitem_twin), (_fancy_repeat, _fancy_repeat_twin),
         (_augmented, _augmented_twin), (_add_at, _add_at_twin),
         (_multiply_at, _multiply_at_twin)]
IDS = ["setitem", "fancy-repeat", "augmented", "add.at", "multiply/max/min.at"]


@pytest.mark.parametrize("f, twin", PAIRS, ids=IDS)
def test_update_matches_functional_twin(f, twin) -> None:
    w = RNG.standard_normal(6)
    np.testing.assert_allclose(f(V), twin(V), rtol=1e-12)
    np.testing.assert_allclose(da.jacfwd(f)(V), da.jacfwd(twin)(V), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(da.jacrev(f)(V), da.jacrev(twin)(V), rtol=1e-12, atol=1e-12)
    for mode in ("fwd-rev", "rev-rev", "hyperdual", "structured"):
        np.testing.assert_allclose(da.hessian(lambda x: f(x) @ w, mode=mode)(V),
                                   da.hessian(lambda x: twin(x) @ w, mode="fwd-rev")(V),
                                   rtol=1e-10, atol=1e-10, err_msg=mode)


def test_bincount_weights() -> None:
    want = np.zeros((7, 6))
    want[IDX, np.arange(5)] = 2 * V[:5]
    np.testing.assert_allclose(_bincount(V), np.bincount(IDX, weights=V[:5] ** 2, minlength=7))
    np.testing.assert_allclose(da.jacrev(_bincount)(V), want, rtol=1e-12)
    np.testing.assert_allclose(da.jacfwd(_bincount)(V), want, rtol=1e-12)


def test_saved_values_are_never_mutated() -> None:
    """An update after a use: the earlier use keeps the old value."""
    def f(x):
        y = x * 1.0
        s = np.sum(y ** 2)         # saves y
        y[0] = 10.0 * x[1]
        y += 1.0
        return s + np.sum(y ** 3)

    def twin(x):
        y = np.concatenate([10.0 * x[1:2], x[1:]]) + 1.0
        return np.sum(x ** 2) + np.sum(y ** 3)

    for mode in ("fwd-rev", "rev-rev", "fwd-fwd", "hyperdual", "structured"):
        np.testing.assert_allclose(da.hessian(f, mode=mode)(V), da.hessian(twin)(V),
                                   rtol=1e-10, err_msg=mode)


def test_nested_transforms() -> None:
    def inner(x, y):
        b = np.zeros_like(x)
        b[0] = x[0] * y
        b[1] += y ** 2
        return np.sum(b ** 2)

    def outer(y):
        return da.grad(inner)(np.array([1.5, 2.0]), y)[0]   # d/dx0 = 2 x0 y^2
    np.testing.assert_allclose(da.grad(outer)(0.7), 4 * 1.5 * 0.7)


def test_aliasing_and_copies() -> None:
    def f(x):
        a = x * 1.0
        alias = a                   # same object: sees the write, as in NumPy
        c = a.copy()                # a copy does not
        d = np.array(a)             # nor does np.array (copy=True)
        e = np.copy(a)              # nor np.copy
        a[0] = 0.0
        return alias[0] + c[0] + d[0] + e[0]
    np.testing.assert_allclose(da.grad(f)(V), np.r_[3.0, np.zeros(5)])


def test_like_buffers() -> None:
    def f(x):
        b = np.full_like(x, 2.0)
        o = np.ones_like(x)
        e = np.empty_like(x)
        z = np.zeros((2, 3), like=x)
        ey = np.eye(2, like=x)
        ey[0, 1] = x[2]
        assert type(np.arange(3, like=x)) is np.ndarray          # ints: plain
        b[1] = np.sum(ey) - 2.0
        b[0] = x[0] ** 3
        e[:] = 0.0
        z[1, 2] = x[1]
        return np.sum(b) + np.sum(o) + np.sum(e) + np.sum(z)
    g = da.grad(f)(V)
    np.testing.assert_allclose(g, np.r_[3 * V[0] ** 2, 1.0, 1.0, np.zeros(3)])


def test_int_buffer_stays_plain() -> None:
    def f(x):
        counts = np.zeros_like(x, dtype=np.int64)
        assert type(counts) is np.ndarray
        return np.sum(x)
    da.grad(f)(V)


def test_add_at_into_plain_buffer_names_the_way_out() -> None:
    def f(x):
        buf = np.zeros(6)
        np.add.at(buf, IDX, x[:5])
        return np.sum(buf)
    with pytest.raises(TypeError, match="zeros_like"):
        da.grad(f)(V)


def test_outside_transforms_numpy_is_untouched() -> None:
    a = np.zeros(3)
    a[0] = 1.0
    np.add.at(a, [1, 1], 2.0)
    np.testing.assert_array_equal(a, [1.0, 4.0, 0.0])


def test_create_graph_sees_values_before_an_update() -> None:
    """Tape tensors keep what each op used, even if the tensor is updated later."""
    x = da.tensor(np.array([2.0, 3.0]), requires_grad=True)
    y = x * 1.0
    z = (y * y).sum()
    y[0] = 5.0
    (g,) = da.autograd.grad(z, x, create_graph=True)
    (h,) = da.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g.primal, [4.0, 6.0])
    np.testing.assert_allclose(h.primal, [2.0, 2.0])


def test_updating_the_input_itself() -> None:
    """The transform's own input tracer takes the update (as a NumPy input would)."""
    def f(x):
        x[0] = x[1] * x[2]
        x[2:] += x[:-2] ** 2
        return np.sum(x ** 2)

    def twin(x):
        x0 = x[1] * x[2]
        y = np.concatenate([x0[None], x[1:]])
        return np.sum(np.concatenate([y[:2], y[2:] + y[:-2] ** 2]) ** 2)

    np.testing.assert_allclose(da.grad(f)(V), da.grad(twin)(V), rtol=1e-12)
    for mode in HESSIAN_MODES:
        np.testing.assert_allclose(da.hessian(f, mode=mode)(V), da.hessian(twin)(V),
                                   rtol=1e-10, atol=1e-10, err_msg=mode)
