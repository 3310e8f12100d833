"""Complex numbers with JAX's conventions (dualad/rules/complex.py, fft.py, eig.py).

Every function is checked by finite differences along real *and* imaginary
directions (a real-valued function of ``z = x + iy`` is differentiated as a
function of ``(x, y)``); where JAX is installed, ``grad``/``jacfwd``/
``jacrev``/Hessians are compared with JAX's own values.
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.testing import check_grads

RNG = np.random.default_rng(11)
Z = np.array([1 + 2j, -0.5 + 0.3j, 0.7 - 1.1j])
W = RNG.standard_normal(3) + 1j * RNG.standard_normal(3)
M = RNG.standard_normal((3, 3)) + 1j * RNG.standard_normal((3, 3))


def _jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax, jax.numpy


# Real-valued functions of a complex vector, written once for NumPy and JAX
# (``m`` is the array module).
REAL_VALUED = {
    "abs**2": lambda m, z: m.sum(m.abs(z) ** 2),
    "norm": lambda m, z: m.linalg.norm(z),
    "real*imag": lambda m, z: m.sum(m.real(m.sin(z)) * m.imag(z)),
    "angle": lambda m, z: m.sum(m.angle(z) ** 2),
    "conj": lambda m, z: m.real(m.sum(m.conj(z) * m.exp(z) * W)),
    "attributes": lambda m, z: m.sum(z.real ** 2 + z.imag * 3 + (z * z.conj()).real),
    "var": lambda m, z: m.var(z),
    "vdot": lambda m, z: m.real(m.vdot(z, z * 2j + 1)),
    "inv": lambda m, z: m.abs(m.sum(m.linalg.inv(m.outer(z, z) + 3 * m.eye(3)))),
    "det": lambda m, z: m.abs(m.linalg.det(m.outer(z, z) + 3 * m.eye(3))),
    "solve": lambda m, z: m.abs(m.sum(m.linalg.solve(m.outer(z, z) + 3 * m.eye(3), z))),
    "matmul/einsum": lambda m, z: m.real(m.einsum("ij,j->", M, z * z) + z @ M @ z),
    "sqrt/log/pow": lambda m, z: m.sum(m.imag(m.sqrt(z) * m.log(z) + z ** 3 + z ** 0.5)),
    "astype": lambda m, z: m.sum(m.real(z).astype(np.float64) * m.imag(z)),
}


def _split(f):
    """``f(z)`` as a function of the real and imaginary parts."""
    return lambda x, y: f(np, x + 1j * y)


@pytest.mark.parametrize("name", list(REAL_VALUED))
def test_real_valued_finite_differences(name: str) -> None:
    check_grads(_split(REAL_VALUED[name]), (Z.real, Z.imag), order=2)


@pytest.mark.parametrize("name", list(REAL_VALUED))
def test_grad_is_df_dx_minus_i_df_dy(name: str) -> None:
    """JAX's convention without JAX: grad(f)(z) = df/dx - i df/dy."""
    f = REAL_VALUED[name]
    g = da.grad(lambda z: f(np, z))(Z)
    gx, gy = da.grad(_split(f), grad_position=(0, 1))(Z.real, Z.imag)
    np.testing.assert_allclose(g, gx - 1j * gy, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(REAL_VALUED))
def test_grad_matches_jax(name: str) -> None:
    jax, jnp = _jax()
    f = REAL_VALUED[name]
    np.testing.assert_allclose(da.grad(lambda z: f(np, z))(Z),
                               np.asarray(jax.jit(jax.grad(lambda z: f(jnp, z)))(Z)), rtol=1e-10)


@pytest.mark.parametrize("name", ["abs**2", "real*imag", "conj", "solve"])
def test_hessians_match_jax(name: str) -> None:
    jax, jnp = _jax()
    f = REAL_VALUED[name]
    v = np.concatenate([Z.real, Z.imag])
    want = np.asarray(jax.jit(jax.hessian(lambda v: f(jnp, v[:3] + 1j * v[3:])))(v))
    for mode in ("fwd-rev", "rev-rev", "fwd-fwd"):
        got = da.hessian(lambda v: f(np, v[:3] + 1j * v[3:]), mode=mode)(v)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=mode)


def test_worked_example() -> None:
    """|z|^2 at 3+4j: df/dx = 6, df/dy = 8, grad = 6 - 8j (JAX's value, the
    conjugate of the steepest-ascent direction 2z)."""
    g = da.grad(lambda z: np.abs(z) ** 2)(np.complex128(3 + 4j))
    assert complex(g) == 6 - 8j


def test_issue_examples() -> None:
    # .real on a traced array; grad w.r.t. a real input is real
    g = da.grad(lambda a: np.sum(np.sin((a + 1j).real)))(np.array([1.0, 2.0]))
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, np.cos([1.0, 2.0]))
    # jvp of abs at a complex point: a real tangent, Re(conj(z) t) / |z|
    y, t = da.jvp(np.abs, (np.complex128(3 + 4j),), (np.complex128(1 + 2j),))
    assert float(y) == 5.0 and np.isrealobj(t)
    assert float(t) == pytest.approx((3 * 1 + 4 * 2) / 5)
    # grad of norm at [1+1j]: z / |z| conjugated
    g = da.grad(np.linalg.norm)(np.array([1 + 1j]))
    np.testing.assert_allclose(g, [(1 - 1j) / np.sqrt(2)])


# ============================================================================
# holomorphic=True
# ============================================================================
HOLO = lambda z: np.sin(z) * z ** 2 + np.exp(1j * z)      # noqa: E731


def test_complex_output_needs_holomorphic() -> None:
    for transform in (da.grad, da.jacrev):
        with pytest.raises(TypeError, match="holomorphic=True"):
            transform(HOLO)(Z)
    with pytest.raises(TypeError, match="holomorphic=True"):
        da.jacfwd(HOLO)(Z)                      # complex input, as JAX's jacfwd
    with pytest.raises(TypeError, match="requires complex inputs"):
        da.grad(np.sin, holomorphic=True)(1.0)


def test_holomorphic_derivatives() -> None:
    d = np.cos(Z) * Z ** 2 + 2 * Z * np.sin(Z) + 1j * np.exp(1j * Z)
    np.testing.assert_allclose(da.grad(lambda z: np.sum(HOLO(z)), holomorphic=True)(Z), d)
    for jac in (da.jacfwd, da.jacrev, da.jacobian):
        np.testing.assert_allclose(jac(HOLO, holomorphic=True)(Z), np.diag(d), atol=1e-14)
    v, g = da.value_and_grad(lambda z: np.sum(HOLO(z)), holomorphic=True)(Z)
    np.testing.assert_allclose(v, np.sum(HOLO(Z)))


def test_holomorphic_matches_jax() -> None:
    jax, jnp = _jax()
    f = lambda m, z: m.sum(m.sin(z) * z ** 2 + m.exp(1j * z))     # noqa: E731
    np.testing.assert_allclose(da.grad(lambda z: f(np, z), holomorphic=True)(Z),
                               jax.jit(jax.grad(lambda z: f(jnp, z), holomorphic=True))(Z))
    g = lambda m, z: m.linalg.inv(m.outer(z, z) + 3 * m.eye(3)) @ z   # noqa: E731
    np.testing.assert_allclose(da.jacrev(lambda z: g(np, z), holomorphic=True)(Z),
                               jax.jit(jax.jacrev(lambda z: g(jnp, z), holomorphic=True))(Z))


# ============================================================================
# refusals: no silent complex result
# ============================================================================
@pytest.mark.parametrize("body, name", [
    (lambda z: np.sum(np.maximum(z, 0.5)).real, "maximum"),
    (lambda z: np.real(np.max(z)), "reduce_max"),
    (lambda z: np.sum(np.linalg.eigh(np.outer(z, z.conj()))[0]).real, "eigh"),
    (lambda z: np.sum(np.linalg.svd(np.outer(z, z), compute_uv=False)), "norm_svals|svd"),
    (lambda z: np.linalg.norm(np.outer(z, z), 2), "complex matrix|svd|norm_svals"),
])
def test_real_only_rules_refuse_complex(body, name) -> None:
    with pytest.raises(TypeError, match=name):
        da.grad(body)(Z)


def test_rfft_of_complex_refused() -> None:
    with pytest.raises(TypeError, match="rfft"):
        da.grad(lambda z: np.sum(np.abs(np.fft.rfft(z))))(Z)


# ============================================================================
# FFT against JAX
# ============================================================================
FFTS = {
    "fft": lambda m, x, y: m.real(m.fft.fft(x + 1j * y) * (W[0] + 1j)).sum(),
    "fft n=8": lambda m, x, y: m.abs(m.fft.fft(x, n=8)).sum(),
    "ifft forward": lambda m, x, y: m.imag(m.fft.ifft(x * y + 1j * x, norm="forward")).sum(),
    "fft2": lambda m, x, y: (m.abs(m.fft.fft2(x + 1j * y)) ** 2).sum(),
    "ifft2 s": lambda m, x, y: m.real(m.fft.ifft2(x, s=(3, 7))).sum() + m.imag(
        m.fft.ifft2(y * x)).sum(),
    "fftn axes": lambda m, x, y: m.real(m.fft.fftn(x ** 2 + 1j * y, axes=(0,)) * W[0]).sum(),
    "rfft": lambda m, x, y: m.real(m.fft.rfft(x * y) * (1 - 1j)).sum(),
    "rfft odd n": lambda m, x, y: m.abs(m.fft.rfft(x, n=5, axis=0)).sum(),
    "irfft": lambda m, x, y: (m.fft.irfft(x + 1j * y) * m.arange(10.0)).sum(),
    "irfft odd ortho": lambda m, x, y: (m.fft.irfft(x + 1j * y, n=7, norm="ortho") ** 2).sum(),
    "rfft2": lambda m, x, y: (m.abs(m.fft.rfft2(x * y)) ** 2).sum(),
    "irfftn": lambda m, x, y: (m.fft.irfftn(x + 1j * y, s=(4, 9), axes=(0, 1)) ** 2).sum(),
    "shift": lambda m, x, y: (m.fft.fftshift(x) * m.fft.ifftshift(y, axes=1)).sum(),
}
FX, FY = RNG.standard_normal((4, 6)), RNG.standard_normal((4, 6))


@pytest.mark.parametrize("name", list(FFTS))
def test_fft_finite_differences(name: str) -> None:
    f = FFTS[name]
    check_grads(lambda x, y: f(np, x, y), (FX, FY), order=2)


@pytest.mark.parametrize("name", list(FFTS))
def test_fft_matches_jax(name: str) -> None:
    jax, jnp = _jax()
    f = FFTS[name]
    got = da.grad(lambda x, y: f(np, x, y), grad_position=(0, 1))(FX, FY)
    want = jax.jit(jax.grad(lambda x, y: f(jnp, x, y), argnums=(0, 1)))(FX, FY)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-10, atol=1e-12)


def test_fft_of_complex_input_grad_matches_jax() -> None:
    jax, jnp = _jax()
    f = lambda m, z: m.sum(m.abs(m.fft.fft(z * z)) ** 2 * m.arange(3.0))   # noqa: E731
    np.testing.assert_allclose(da.grad(lambda z: f(np, z))(Z), jax.grad(lambda z: f(jnp, z))(Z))


# ============================================================================
# eig: eigenvalues against JAX, eigenvectors by finite differences
# ============================================================================
def _eig_views(a, c):
    w, v = np.linalg.eig(a)
    return np.sum(np.real(w * c[0])) + np.sum(np.real(v * c) + np.imag(v) ** 2)


@pytest.mark.parametrize("kind", ["real spectrum", "complex pairs", "complex matrix"])
def test_eig_finite_differences(kind: str) -> None:
    c = RNG.standard_normal((3, 3)) + 1j * RNG.standard_normal((3, 3))
    if kind == "complex matrix":
        check_grads(lambda x, y: _eig_views(x + 1j * y, c), (M.real, M.imag), order=2)
        return
    a = (np.diag([1.0, 2.0, 3.5]) + 0.2 * RNG.standard_normal((3, 3))
         if kind == "real spectrum" else np.array([[0.0, 1.0, 0.3], [-1.0, 0.2, 0.0],
                                                    [0.1, 0.4, 2.0]]))
    check_grads(lambda a: _eig_views(a, c), (a,), order=2)


def test_eigvals_matches_jax() -> None:
    jax, jnp = _jax()
    f = lambda m, a: m.real(m.sum(m.linalg.eigvals(a) ** 2 * W))     # noqa: E731
    np.testing.assert_allclose(da.grad(lambda a: f(np, a))(M),
                               np.asarray(jax.grad(lambda a: f(jnp, a))(M)), rtol=1e-10)
