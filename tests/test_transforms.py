"""hvp, hessian (every mode) and jacobian: agreement, symmetry, errors."""
import numpy as np
import pytest

import dualad as da
from dualad.mixed.transforms import _choose_jacobian_mode, _choose_mode

MODES = ("fwd-rev", "rev-rev", "fwd-fwd", "hyperdual", "auto")


def f_couple(x):
    return (np.sin(x) * x).sum() * (x * x).sum()


def f_outer(x):
    # A (2, 3) input; the outer product couples every pair of entries.
    v = x.reshape(-1)
    return np.log(1.0 + (v.reshape(-1, 1) * v.reshape(1, -1)) ** 2).sum()


def f_where(x):
    return np.where(x > 0, x ** 3, np.sin(x)).mean() + x.mean() ** 2 + np.exp(x * 0.5).sum()


def f_bcast(x):
    b = np.broadcast_to(x.reshape(1, -1), (3, x.size))
    return (np.tanh(b.T * np.arange(1.0, 4.0)) * np.cosh(x).reshape(-1, 1)).sum()


CASES = [
    (f_couple, np.array([0.3, -0.7, 1.1, 2.0])),
    (f_outer, np.array([[0.1, -0.4, 0.7], [1.2, -0.3, 0.5]])),
    (f_where, np.array([0.5, -1.5, 2.0, -0.1, 0.9])),
    (f_bcast, np.array([0.2, -0.6, 0.4])),
]


def close(a, b, rel=1e-10):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    scale = max(1.0, float(np.abs(b).max()))
    assert float(np.abs(a - b).max()) <= rel * scale, (a, b)


def central_hessian(f, x, eps=1e-4):
    n = x.size
    H = np.zeros((n, n))
    g = lambda v: da.grad(f)(v.reshape(x.shape)).reshape(-1)
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        H[:, j] = (g(x.reshape(-1) + e) - g(x.reshape(-1) - e)) / (2 * eps)
    return H.reshape(x.shape + x.shape)


# ============================================================================
# Hessian modes agree, are symmetric, match differences
# ============================================================================
@pytest.mark.parametrize("f,x", CASES, ids=["couple", "outer", "where", "bcast"])
def test_hessian_modes_agree(f, x):
    ref = da.hessian(f, mode="rev-rev")(x)
    assert ref.shape == x.shape + x.shape
    for mode in MODES:
        H = da.hessian(f, mode=mode)(x)
        close(H, ref)
        flat = H.reshape(x.size, x.size)
        np.testing.assert_array_equal(flat, flat.T)          # exactly symmetric
    np.testing.assert_allclose(ref, central_hessian(f, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_hessian_chunks(chunk):
    f, x = CASES[0]
    ref = da.hessian(f, mode="rev-rev")(x)
    close(da.hessian(f, mode="fwd-rev", chunk=chunk)(x), ref)
    close(da.hessian(f, mode="hyperdual", chunk=chunk)(x), ref)


def test_hessian_analytic():
    x = np.array([1.0, 2.0, -0.5])
    H = da.hessian(lambda x: (x ** 3).sum() + x.sum() ** 2)(x)
    np.testing.assert_allclose(H, np.diag(6 * x) + 2.0)


def test_hessian_scalar_and_float_input():
    for mode in MODES:
        assert float(da.hessian(lambda x: np.sin(x) * x, mode=mode)(0.5)) == pytest.approx(
            2 * np.cos(0.5) - 0.5 * np.sin(0.5), rel=1e-12)


def test_hessian_other_args_held_fixed():
    f = lambda a, x: (a * x * x).sum()
    a = np.array([1.0, 3.0])
    for mode in MODES:
        np.testing.assert_allclose(da.hessian(f, argnums=1, mode=mode)(a, np.ones(2)),
                                   np.diag(2 * a))


def test_hessian_tuple_argnums_blocks():
    def f(x, y):
        return (np.sin(x).reshape(-1, 1) * y.reshape(1, -1) ** 2).sum() + (x * x).sum() * y.sum()

    x, y = np.array([0.3, -0.2]), np.array([1.0, 2.0, 0.5])
    ref = da.hessian(f, argnums=(0, 1), mode="rev-rev")(x, y)
    assert isinstance(ref, tuple) and all(isinstance(r, tuple) for r in ref)
    assert ref[0][1].shape == (2, 3) and ref[1][0].shape == (3, 2)
    np.testing.assert_array_equal(ref[0][1], ref[1][0].T)
    for mode in MODES:
        H = da.hessian(f, argnums=(0, 1), mode=mode)(x, y)
        for i in range(2):
            for j in range(2):
                close(H[i][j], ref[i][j])
    # The blocks are those of the Hessian of the stacked input.
    full = da.hessian(lambda z: f(z[:2], z[2:]), mode="fwd-rev")(np.concatenate([x, y]))
    close(ref[0][1], full[:2, 2:])
    close(ref[1][1], full[2:, 2:])


def test_hessian_inside_grad():
    # d/dx sum(H(x)) for f = sum(x^4)/12: H = diag(x^2), so the gradient is 2x.
    f = lambda x: (x ** 4).sum() / 12.0
    x = np.array([0.5, -1.0, 2.0])
    for mode in ("fwd-rev", "rev-rev"):
        g = da.grad(lambda x: da.hessian(f, mode=mode)(x).sum())(x)
        np.testing.assert_allclose(g, 2 * x)


# ============================================================================
# hvp
# ============================================================================
@pytest.mark.parametrize("f,x", CASES, ids=["couple", "outer", "where", "bcast"])
def test_hvp_matches_hessian(f, x):
    v = np.linspace(-1.0, 1.0, x.size).reshape(x.shape)
    g, hv = da.hvp(f, (x,), (v,))
    assert isinstance(g, np.ndarray) and isinstance(hv, np.ndarray)
    close(g, da.grad(f)(x))
    H = da.hessian(f)(x).reshape(x.size, x.size)
    close(hv, (H @ v.reshape(-1)).reshape(x.shape))


def test_hvp_several_primals():
    f = lambda x, y: (x * x * y).sum()
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    (gx, gy), (hx, hy) = da.hvp(f, (x, y), (np.array([1.0, 0.0]), np.array([0.0, 1.0])))
    np.testing.assert_allclose(gx, 2 * x * y)
    np.testing.assert_allclose(gy, x * x)
    # H v = [[2y, 2x], [2x, 0]] @ v (diagonal blocks)
    np.testing.assert_allclose(hx, [2 * 3.0, 2 * 2.0])
    np.testing.assert_allclose(hy, [2 * 1.0, 0.0])


def test_hvp_errors():
    with pytest.raises(TypeError, match="tuples"):
        da.hvp(lambda x: x.sum(), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        da.hvp(lambda x: x * 2.0, (np.ones(2),), (np.ones(2),))
    with pytest.raises(ValueError, match="shape"):
        da.hvp(lambda x: x.sum(), (np.ones(2),), (np.ones(3),))
    with pytest.raises(TypeError, match="argument 0"):
        da.hvp(lambda x: x.sum(), (np.ones(2, dtype=int),), (np.ones(2),))


# ============================================================================
# hessian errors
# ============================================================================
def test_hessian_unknown_mode_lists_valid():
    with pytest.raises(ValueError) as e:
        da.hessian(f_couple, mode="reverse")
    for m in MODES:
        assert repr(m) in str(e.value)


def test_hessian_non_scalar_output():
    for mode in MODES:
        with pytest.raises(ValueError, match=r"shape \(3,\)"):
            da.hessian(lambda x: x * x, mode=mode)(np.ones(3))


def test_hessian_int_input_names_argument():
    with pytest.raises(TypeError, match="argument 1"):
        da.hessian(lambda a, b: (a * b).sum(), argnums=1)(np.ones(2), np.array([1, 2]))


def test_choose_mode_default():
    assert _choose_mode(f_couple, (np.ones(3),), (0,)) == "fwd-rev"


# ============================================================================
# jacobian
# ============================================================================
def test_jacobian_modes_agree():
    f = lambda x: np.sin(x.reshape(-1, 1) * x.reshape(1, -1)).sum(axis=0)
    x = np.array([0.3, -0.5, 1.2])
    ref = da.jacfwd(f)(x)
    for mode in ("fwd", "rev", "auto"):
        close(da.jacobian(f, mode=mode)(x), ref)
    Ja, Jb = da.jacobian(lambda a, b: a * b, argnums=(0, 1))(x, 2 * x)
    np.testing.assert_allclose(Ja, np.diag(2 * x))
    np.testing.assert_allclose(Jb, np.diag(x))


def test_jacobian_auto_choice():
    wide = lambda x: x.sum().reshape(1)
    tall = lambda x: np.broadcast_to(x, (5, 2))
    assert _choose_jacobian_mode(wide, (np.ones(6),), (0,)) == "rev"
    assert _choose_jacobian_mode(tall, (np.ones(2),), (0,)) == "fwd"
    np.testing.assert_allclose(da.jacobian(wide)(np.ones(6)), np.ones((1, 6)))


def test_jacobian_unknown_mode():
    with pytest.raises(ValueError, match="'fwd', 'rev'"):
        da.jacobian(np.sin, mode="forward")
