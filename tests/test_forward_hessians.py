"""Forward-mode Hessians (fwd-over-fwd and hyper-dual) against finite
differences, reverse mode and each other."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.forward.hessians import hessian_fwd_fwd, hessian_hyperdual, pair_chunk

W = np.array([[0.3, -0.2, 0.5], [0.1, 0.4, -0.3]])


def f_vec(x):
    return np.sum(np.sin(x) * x ** 2 + np.exp(-x ** 2)) + np.log(1.0 + np.sum(x * x))


def f_mat(m):
    # reshape, transpose, broadcast_to, where, division, power, tanh
    t = np.transpose(m) * W.T
    b = np.broadcast_to(np.sum(m, axis=0), (2, 3))
    r = np.where(W > 0, np.tanh(m * b), m / (2.0 + m * m))
    return (t.reshape(6) ** 2).sum() + r.sum() + np.sqrt(1.0 + (m * m).sum()) ** 3


def f_coupled(x):
    y = x.reshape(3, 2)
    return np.sum(np.logaddexp(y, np.transpose(y).reshape(3, 2) * 0.5)) * np.cos(x).sum()


CASES = [("vec", f_vec, np.array([0.3, -1.2, 0.8, 2.0, -0.4])),
         ("mat", f_mat, np.array([[0.5, -0.3, 1.1], [0.2, 0.9, -0.7]])),
         ("coupled", f_coupled, np.linspace(-1.0, 1.5, 6))]


def fd_hessian(f, x, eps=1e-4):
    """Central differences of the reverse-mode gradient."""
    g = da.grad(f)
    n = x.size
    H = np.zeros((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = eps
        e = e.reshape(x.shape)
        H[:, i] = ((g(x + e) - g(x - e)) / (2 * eps)).ravel()
    return H.reshape(x.shape + x.shape)


def close(a, b, rtol):
    scale = max(1.0, float(np.max(np.abs(b))))
    return float(np.max(np.abs(a - b))) <= rtol * scale


@pytest.mark.parametrize("name, f, x", CASES, ids=[c[0] for c in CASES])
def test_both_modes_match_each_other_and_finite_differences(name, f, x):
    h_ff = hessian_fwd_fwd(f, x)
    h_hd = hessian_hyperdual(f, x)
    assert h_ff.shape == h_hd.shape == x.shape + x.shape
    assert close(h_hd, h_ff, 1e-10)
    assert close(h_hd, da.jacrev(da.grad(f))(x), 1e-10)
    assert close(h_hd, fd_hessian(f, x), 1e-6)


@pytest.mark.parametrize("chunk", [1, 2, 3, 4])
def test_chunked_blocks_and_mirroring(chunk):
    f, x = CASES[2][1], CASES[2][2]
    full = hessian_hyperdual(f, x)
    got = hessian_hyperdual(f, x, chunk=chunk)
    assert close(got, full, 1e-12)
    # Lower blocks are mirrors of upper ones: exactly symmetric.
    np.testing.assert_array_equal(got, got.T)


def test_chunk_count_uses_symmetry():
    calls = []

    def f(x):
        calls.append(1)
        return np.sum(x ** 4)

    H = hessian_hyperdual(f, np.arange(1.0, 6.0), chunk=2)
    assert len(calls) == 6            # 3 chunks -> 3 * 4 / 2 blocks with I <= J
    np.testing.assert_allclose(H, np.diag(12.0 * np.arange(1.0, 6.0) ** 2))


def test_pair_chunk():
    assert pair_chunk(10) == 10          # small: one pass
    assert pair_chunk(100) == 50         # within the 64-direction threshold, evenly
    assert pair_chunk(384) == 64
    # The memory cap bounds k * k * n: 1e6 entries give k <= 5.
    assert pair_chunk(10**6) ** 2 * 10**6 * 8 * 16 <= 512 * 2**20 * 1.01


def test_non_scalar_output_is_an_error_naming_the_shape():
    x = np.ones(3)
    for h in (hessian_fwd_fwd, hessian_hyperdual):
        with pytest.raises(ValueError, match=r"\(3,\)"):
            h(lambda v: v * 2.0, x)


def test_size_one_output_and_scalar_input():
    for h in (hessian_fwd_fwd, hessian_hyperdual):
        got = h(lambda v: np.reshape(np.sum(v ** 3), (1,)), np.array([1.0, 2.0]))
        np.testing.assert_allclose(got, np.diag([6.0, 12.0]))
        s = h(lambda v: np.exp(3.0 * v), np.array(0.5))
        assert s.shape == () and abs(float(s) - 9.0 * np.exp(1.5)) < 1e-12


def test_constant_function_and_float32():
    for h in (hessian_fwd_fwd, hessian_hyperdual):
        np.testing.assert_array_equal(h(lambda v: 2.0, np.ones(3)), np.zeros((3, 3)))
        x32 = np.array([0.5, 1.5], dtype=np.float32)
        H = h(lambda v: np.sum(np.sin(v) * v), x32)
        assert H.dtype == np.float32
        want = np.diag(2 * np.cos([0.5, 1.5]) - np.array([0.5, 1.5]) * np.sin([0.5, 1.5]))
        np.testing.assert_allclose(H, want, rtol=1e-5, atol=1e-6)


def test_hessian_inside_grad():
    # d/dx trace(H(x)) for sum(x**4): trace = sum(12 x^2), gradient 24 x.
    x = np.array([1.0, 2.0, -0.5])
    for chunk in (None, 1, 2):
        g = da.grad(lambda v: np.sum(hessian_hyperdual(lambda u: np.sum(u ** 4), v, chunk=chunk)
                                     * np.eye(3)))(x)
        np.testing.assert_allclose(g, 24.0 * x, rtol=1e-13)
    g = da.grad(lambda v: np.sum(hessian_fwd_fwd(lambda u: np.sum(u ** 4), v) * np.eye(3)))(x)
    np.testing.assert_allclose(g, 24.0 * x, rtol=1e-13)


def test_public_hessian_modes_route_here():
    f, x = CASES[0][1], CASES[0][2]
    ref = hessian_hyperdual(f, x)
    for mode in ("fwd-fwd", "hyperdual"):
        assert close(da.hessian(f, mode=mode)(x), ref, 1e-10)
