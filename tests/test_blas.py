"""Medium matmuls on one OpenBLAS thread (dualad/kernels/blas.py): the same
bits as NumPy's call on one thread, within rounding of its threaded call (a
threaded GEMM blocks its sums differently), the thread setting restored,
nothing changed for other operand types."""
import numpy as np
import pytest

from dualad.kernels import blas
from dualad.rules.contractions import matmul_p

RNG = np.random.default_rng(0)
SHAPES = [((300, 64), (64, 80)), ((3, 500, 64), (64, 64)), ((700, 50), (50,)),
          ((4, 2), (2, 3)), ((2, 256, 128), (2, 128, 256))]


@pytest.mark.parametrize("sa, sb", SHAPES)
def test_same_bits_as_numpy(sa, sb, monkeypatch):
    monkeypatch.setattr(blas, "SERIAL_FLOPS", 1 << 28)
    a, b = RNG.normal(size=sa), RNG.normal(size=sb)
    got = blas.serial_matmul(np.matmul)(a, b)
    want = np.matmul(a, b)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14 * np.abs(want).max())
    np.testing.assert_array_equal(matmul_p.impl(a, b), got)
    lib = blas._openblas()
    if lib is not None:
        threads = lib[1]()
        lib[0](1)
        try:
            np.testing.assert_array_equal(got, np.matmul(a, b))
        finally:
            lib[0](threads)


def test_thread_setting_restored():
    before = blas.blas_threads()
    a = RNG.normal(size=(512, 256))
    blas.serial_matmul(np.matmul)(a, a.T)
    assert blas.blas_threads() == before


def test_other_operands_pass_through():
    f = blas.serial_matmul(lambda a, b: ("called", type(a).__name__))
    assert f([[1.0]], [[2.0]]) == ("called", "list")


def test_installed_on_the_matmul_primitive():
    assert hasattr(matmul_p.impl, "__wrapped__")


def test_pooled_outputs_never_overwrite_a_live_result():
    a, b = RNG.normal(size=(600, 64)), RNG.normal(size=(64, 64))
    kept = [matmul_p.impl(a * k, b) for k in range(1, 8)]      # all alive
    for k, r in enumerate(kept, start=1):
        np.testing.assert_allclose(r, np.matmul(a * k, b), rtol=1e-13)
    view = matmul_p.impl(a, b)[::2]                             # a view keeps its base
    again = matmul_p.impl(2 * a, b)
    np.testing.assert_allclose(view, np.matmul(a, b)[::2], rtol=1e-13)
    np.testing.assert_allclose(again, np.matmul(2 * a, b), rtol=1e-13)
    first = matmul_p.impl(a, b)
    ptr = first.ctypes.data
    del first
    assert matmul_p.impl(a, b).ctypes.data == ptr              # a dead result is reused


def test_pool_reuse_and_bounds():
    from dualad.kernels import pool
    x = pool.empty((300, 300), np.float64)
    p = x.ctypes.data
    y = pool.empty((300, 300), np.float64)
    assert y.ctypes.data != p
    del x
    assert pool.empty((300, 300), np.float64).ctypes.data == p
    small = pool.empty((3,), np.float64)
    assert small.shape == (3,)


def test_serial_only_when_asked(monkeypatch):
    """Default (SERIAL_FLOPS 0): the library's threads, untouched; opted in:
    one thread around medium products, the setting restored."""
    calls = []
    fake = (lambda n: calls.append(n), lambda: 4)
    monkeypatch.setattr(blas, "_openblas", lambda: fake)
    a = RNG.normal(size=(400, 64))
    for flops, want in ((0, []), (1 << 28, [1, 4])):
        monkeypatch.setattr(blas, "SERIAL_FLOPS", flops)
        calls.clear()
        np.testing.assert_allclose(blas.serial_matmul(np.matmul)(a, a.T), a @ a.T, rtol=1e-13)
        assert calls == want


@pytest.mark.parametrize("sa, sb", [((3, 4096, 64), (64, 64)), ((3, 4096, 64), (64, 1)),
                                    ((2, 3, 5000, 7), (7, 5)), ((5, 30000, 8), (8, 1))])
def test_a_stack_times_one_matrix_is_one_gemm(sa, sb):
    """(..., M, K) @ (K, N) of at least 2**20 flops runs as one
    (prod(...) M, K) @ (K, N) product (smaller ones keep NumPy's loop): the
    same bits as NumPy's own loop over the stack, written into a pooled buffer
    that the pool can hand out again once the result is dropped."""
    a, b = RNG.normal(size=sa), RNG.normal(size=sb)
    got = matmul_p.impl(a, b)
    assert got.shape == np.matmul(a, b).shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.matmul(a.reshape(-1, sa[-1]), b).reshape(got.shape))
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-13, atol=1e-13)
    kept = matmul_p.impl(2 * a, b)                   # `got` alive: a different buffer
    np.testing.assert_array_equal(got, np.matmul(a.reshape(-1, sa[-1]), b).reshape(got.shape))
    assert kept.ctypes.data != got.ctypes.data
    if got.nbytes >= (1 << 18):
        ptr = got.ctypes.data
        del got
        assert matmul_p.impl(a, b).ctypes.data == ptr             # reused once dead


def test_a_non_contiguous_stack_keeps_numpys_loop():
    a, b = RNG.normal(size=(64, 300, 3)).transpose(2, 1, 0), RNG.normal(size=(64, 8))
    np.testing.assert_array_equal(matmul_p.impl(a, b), np.matmul(a, b))
