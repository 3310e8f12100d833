"""Regression tests for issue 10: no silent wrong derivatives (bad outputs,
piecewise-linear mod, one-element statistics, x**0 at 0, eigh/cholesky
triangles, singular det/slogdet, plain-buffer writes, argument checks)."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da

X = np.array([1.0, 2.0])
HESS_MODES = ("auto", "fwd-rev", "rev-rev", "fwd-fwd", "hyperdual", "sparse", "structured")


# ============================================================================
# 1. a function must return floating arrays
# ============================================================================
BAD_OUTPUTS = {
    "None": lambda x: None,
    "str": lambda x: "loss",
    "generator": lambda x: (v for v in range(2)),
    "dict of str": lambda x: {"a": "b"},
    "bool": lambda x: bool(np.sum(x) > 0),
    "int": lambda x: 3,
    "int array": lambda x: np.argmax(x),
    "tuple with None": lambda x: (np.sum(x), None),
}
TRANSFORMS = {
    "grad": lambda f: da.grad(f)(X),
    "value_and_grad": lambda f: da.value_and_grad(f)(X),
    "vjp": lambda f: da.vjp(f, X),
    "jvp": lambda f: da.jvp(f, (X,), (X,)),
    "jacfwd": lambda f: da.jacfwd(f)(X),
    "jacrev": lambda f: da.jacrev(f)(X),
    "jacobian": lambda f: da.jacobian(f)(X),
    "jacobian sparse": lambda f: da.jacobian(f, mode="sparse")(X),
    "hvp": lambda f: da.hvp(f, (X,), (X,)),
    "derivative": lambda f: da.derivative(f, 1.0),
    "derivative order 0": lambda f: da.derivative(f, 1.0, order=0),
    **{f"hessian {m}": (lambda m: lambda f: da.hessian(f, mode=m)(X))(m) for m in HESS_MODES},
}


@pytest.mark.parametrize("out", BAD_OUTPUTS)
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_non_float_output_raises_type_error(out, transform):
    with pytest.raises(TypeError, match="must return floating arrays"):
        TRANSFORMS[transform](BAD_OUTPUTS[out])


def test_non_float_output_message_names_what_was_returned():
    def loss(x):
        np.sum(x ** 2)                  # forgot return
    with pytest.raises(TypeError, match="returned None"):
        da.grad(loss)(X)
    with pytest.raises(TypeError, match="dict containing a value of type str"):
        da.grad(BAD_OUTPUTS["dict of str"])(X)


def test_constant_float_output_still_gives_zero():
    assert np.array_equal(da.grad(lambda x: 1.0)(X), [0.0, 0.0])
    assert np.array_equal(da.jacfwd(lambda x: np.ones(3))(X), np.zeros((3, 2)))


# ============================================================================
# 2. mod / remainder / fmod are piecewise linear; floor_divide is constant
# ============================================================================
MODS = {"mod": np.mod, "remainder": np.remainder, "%": lambda x, y: x % y, "fmod": np.fmod}


@pytest.mark.parametrize("name", MODS)
@pytest.mark.parametrize("x, y", [(5.5, 2.0), (-5.5, 2.0), (5.5, -2.0), (-5.3, -1.5)])
def test_mod_derivatives_every_mode(name, x, y):
    f = MODS[name]
    q = np.trunc(x / y) if name == "fmod" else np.floor(x / y)
    want = np.array([1.0, -q])
    g = lambda v: f(v[0], v[1])
    v = np.array([x, y])
    np.testing.assert_allclose(da.grad(g)(v), want)
    np.testing.assert_allclose(da.jacfwd(g)(v), want)
    np.testing.assert_allclose(da.hessian(lambda v: g(v) * v[1], mode="rev-rev")(v),
                               [[0.0, 1.0], [1.0, -2.0 * q]])
    np.testing.assert_allclose(da.derivative(lambda t: f(t, y), x), 1.0)
    np.testing.assert_allclose(da.derivative(lambda t: f(x, t), y), -q)


def test_rmod_with_traced_divisor():
    assert float(da.grad(lambda y: 2.5 % y)(0.75)) == -3.0
    assert float(da.jacfwd(lambda y: 2.5 % y)(0.75)) == -3.0


def test_floor_divide_stays_zero():
    v = np.array([5.5, 2.0])
    for f in (lambda v: np.floor_divide(v[0], v[1]), lambda v: v[0] // v[1]):
        assert np.array_equal(da.grad(f)(v), [0.0, 0.0])
        assert np.array_equal(da.jacfwd(f)(v), [0.0, 0.0])


# ============================================================================
# 3. std / var over one element: the constant 0, in every mode
# ============================================================================
ONE_ELEMENT = {
    "std": np.std, "var": np.var, "std axis": lambda x: np.std(x, axis=-1).sum(),
    "std * x": lambda x: (np.std(x) * x).sum(), "sqrt(var)": lambda x: np.sqrt(np.var(x)),
}


@pytest.mark.parametrize("name", ONE_ELEMENT)
def test_std_var_of_one_element_is_constant_in_every_mode(name):
    f = ONE_ELEMENT[name]
    x = np.array([3.5])
    assert float(da.grad(f)(x)[0]) == 0.0
    assert float(np.sum(da.jacfwd(f)(x))) == 0.0
    assert float(np.sum(da.jacrev(f)(x))) == 0.0
    for k in (1, 2, 3):
        assert float(da.derivative(lambda t: f(np.reshape(t, (1,))), 3.5, order=k)) == 0.0
    for mode in HESS_MODES:
        assert np.array_equal(da.hessian(f, mode=mode)(x), [[0.0]]), mode
    if name in ("std", "var"):
        assert float(da.grad(f)(3.5)) == 0.0


# ============================================================================
# 4. x ** 0 at x = 0: the constant 1
# ============================================================================
POW0 = {"x**0.0": lambda x: x ** 0.0, "power(x, 0.0)": lambda x: np.power(x, 0.0),
        "power(x, 0)": lambda x: np.power(x, 0), "float_power": lambda x: np.float_power(x, 0.0),
        "x**0 * sin": lambda x: x ** 0.0 * np.sin(x)}


@pytest.mark.parametrize("name", POW0)
def test_power_zero_at_zero_every_mode_and_order(name):
    f = POW0[name]
    z = np.zeros(2)
    want1 = np.cos(z) if name == "x**0 * sin" else z
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(da.grad(lambda x: f(x).sum())(z), want1)
        np.testing.assert_array_equal(np.diag(da.jacfwd(f)(z)), want1)
        np.testing.assert_array_equal(np.diag(da.jacrev(f)(z)), want1)
        for mode in HESS_MODES:
            np.testing.assert_array_equal(da.hessian(lambda x: f(x).sum(), mode=mode)(z),
                                          np.zeros((2, 2)))
        for k in (1, 2, 3, 4):
            want = [1.0, 0.0, -1.0, 0.0][k - 1] if name == "x**0 * sin" else 0.0
            assert float(da.derivative(f, 0.0, order=k)) == want
        h = da.HyperDual(0.0, 1.0, 1.0, 0.0)
        r = f(h)        # a constant comes back as a plain value (no derivative parts)
        e1, e12 = (r.e1, r.e12) if hasattr(r, "e12") else (0.0, 0.0)
        assert float(e12) == 0.0 and float(e1) == (1.0 if name == "x**0 * sin" else 0.0)


# ============================================================================
# 5. eigh / eigvalsh / cholesky read one triangle, as NumPy does
# ============================================================================
TRIANGLE_FNS = {
    "eigh L": lambda a: (np.sum(np.linalg.eigh(a)[0] ** 3)
                         + np.sum(np.linalg.eigh(a)[1][:, 0] ** 2 * np.arange(3.0))),
    "eigh U": lambda a: (np.sum(np.linalg.eigh(a, UPLO="U")[0] ** 3)
                         + np.sum(np.linalg.eigh(a, "U")[1][:, 0] ** 2 * np.arange(3.0))),
    "eigvalsh L": lambda a: np.sum(np.linalg.eigvalsh(a) ** 3),
    "eigvalsh U": lambda a: np.sum(np.linalg.eigvalsh(a, UPLO="U") ** 3),
    "cholesky": lambda a: np.sum(np.linalg.cholesky(a) ** 3),
    "cholesky upper": lambda a: np.sum(np.linalg.cholesky(a, upper=True) ** 3 * np.arange(3.0)),
}


def _central(f, a, t, h=1e-6):
    return (f(a + h * t) - f(a - h * t)) / (2 * h)


@pytest.mark.parametrize("name", TRIANGLE_FNS)
def test_triangle_factorisations_match_numpy_along_nonsymmetric_directions(name):
    rng = np.random.default_rng(1)
    f = TRIANGLE_FNS[name]
    a = np.diag([1.0, 2.5, 4.0]) + 0.3 * rng.standard_normal((3, 3))   # not symmetric
    if "cholesky" in name:
        a = a + 5.0 * np.eye(3)
    t = rng.standard_normal((3, 3))                                    # not symmetric
    want = _central(f, a, t)                                           # NumPy's own function
    np.testing.assert_allclose(np.sum(da.grad(f)(a) * t), want, rtol=1e-7)
    np.testing.assert_allclose(da.jvp(f, (a,), (t,))[1], want, rtol=1e-7)
    want2 = _central(lambda b: np.sum(da.grad(f)(b) * t), a, t)
    for mode in ("rev-rev", "fwd-fwd", "fwd-rev"):
        h = da.hessian(f, mode=mode)(a).reshape(9, 9)
        np.testing.assert_allclose(t.ravel() @ h @ t.ravel(), want2, rtol=1e-6)
    # the other triangle is ignored, as by NumPy
    other = np.triu(t, 1) if ("U" not in name and "upper" not in name) else np.tril(t, -1)
    assert abs(float(da.jvp(f, (a,), (other,))[1])) < 1e-12


# ============================================================================
# 7. det at a singular matrix: the adjugate; slogdet there: a clear error
# ============================================================================
def _adjugate(a):
    n = a.shape[0]
    c = np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1))
                   for j in range(n)] for i in range(n)]).reshape(n, n)
    return c


SINGULAR = {
    "ones 2x2": np.ones((2, 2)),
    "ones 3x3 (rank 1)": np.ones((3, 3)),
    "1..9 (rank 2)": np.arange(1.0, 10.0).reshape(3, 3),
    "zeros": np.zeros((3, 3)),
    "rank 2, det not exactly 0": (np.outer([1.0, 2, 3], [1.0, 0, 2])
                                  + np.outer([0.0, 1, 1], [3.0, 1, 0])),
}


def _adjugate_jacobian_fd(a, h=1e-4):
    n = a.shape[0]
    rows = []
    for k in range(n * n):
        e = np.zeros(n * n)
        e[k] = h
        e = e.reshape(n, n)
        rows.append(((_adjugate(a + e) - _adjugate(a - e)) / (2 * h)).ravel())
    return np.array(rows).reshape(n, n, n, n)


@pytest.mark.parametrize("name", SINGULAR)
def test_det_at_singular_matrix_is_the_adjugate_in_every_mode(name):
    a = SINGULAR[name]
    want = _adjugate(a)
    np.testing.assert_allclose(da.grad(np.linalg.det)(a), want, atol=1e-12)
    np.testing.assert_allclose(da.jacfwd(np.linalg.det)(a), want, atol=1e-12)
    np.testing.assert_allclose(da.jacrev(np.linalg.det)(a), want, atol=1e-12)
    h_want = _adjugate_jacobian_fd(a)            # det is cubic: FD of the adjugate is exact-ish
    for mode in ("rev-rev", "fwd-rev", "fwd-fwd", "hyperdual", "sparse"):
        np.testing.assert_allclose(da.hessian(np.linalg.det, mode=mode)(a), h_want,
                                   atol=1e-7, err_msg=mode)
    # det(A + t I) is a polynomial in t: its Taylor coefficients are exact
    n = a.shape[0]
    poly = np.poly1d(np.linalg.eigvals(-a).real, r=True)       # det(tI - (-A)) = det(A + tI)
    for k in (1, 2, 3):
        got = float(da.derivative(lambda t: np.linalg.det(a + t * np.eye(n)), 0.0, order=k))
        np.testing.assert_allclose(got, poly.deriv(k)(0.0), atol=1e-8)


def test_det_on_a_stack_with_one_singular_matrix():
    a = np.stack([np.ones((3, 3)), 2.0 * np.eye(3)])
    f = lambda a_: np.sum(np.linalg.det(a_) ** 2 + np.linalg.det(a_))
    g = da.grad(f)(a)
    np.testing.assert_allclose(g[0], _adjugate(a[0]), atol=1e-12)
    np.testing.assert_allclose(g[1], (2 * 8.0 + 1.0) * _adjugate(a[1]))
    np.testing.assert_allclose(da.jacfwd(f)(a), g, atol=1e-12)
    np.testing.assert_allclose(da.hessian(f, mode="rev-rev")(a), da.hessian(f, mode="fwd-fwd")(a),
                               atol=1e-10)


def test_slogdet_at_singular_matrix_raises_clearly():
    a = np.ones((2, 2))
    sign, logdet = np.linalg.slogdet(a)
    assert sign == 0.0 and logdet == -np.inf
    for run in (lambda: da.grad(lambda a_: np.linalg.slogdet(a_)[1])(a),
                lambda: da.jvp(lambda a_: np.linalg.slogdet(a_)[1], (a,), (a,)),
                lambda: da.hessian(lambda a_: np.linalg.slogdet(a_)[1])(a)):
        with pytest.raises(np.linalg.LinAlgError, match="singular.*differentiate np.linalg.det"):
            run()
    # the value alone (no derivative requested) is NumPy's
    y, _ = da.vjp(lambda a_: np.linalg.slogdet(a_)[1], a)
    assert y == -np.inf


# ============================================================================
# 11. a traced value written into a plain NumPy buffer: dualad's own error
# ============================================================================
def _scalar_write(x):
    z = np.zeros(2)
    z[0] = x[0]
    return z.sum()


def _row_write(x):
    z = np.zeros((2, 2))
    z[0] = x
    return z.sum()


@pytest.mark.parametrize("fn", [_scalar_write, _row_write], ids=["scalar", "row"])
@pytest.mark.parametrize("transform", ["grad", "jacfwd", "hessian", "derivative"])
def test_traced_value_into_plain_buffer_raises_ours(fn, transform):
    run = {"grad": lambda: da.grad(fn)(X), "jacfwd": lambda: da.jacfwd(fn)(X),
           "hessian": lambda: da.hessian(fn)(X),
           "derivative": lambda: da.derivative(lambda s: fn(s * X), 1.0)}[transform]
    with pytest.raises(TypeError, match=r"plain NumPy array.*np\.zeros_like\(x\).*np\.stack"):
        run()


# ============================================================================
# 12. argument checks: chunk, integer x for derivative, custom_jvp shapes
# ============================================================================
@pytest.mark.parametrize("chunk", [0, -1, 1.5, True])
def test_bad_chunk_raises_value_error(chunk):
    for make in (lambda: da.jacfwd(np.sin, chunk=chunk), lambda: da.jacrev(np.sin, chunk=chunk),
                 lambda: da.hessian(np.sum, chunk=chunk), lambda: da.jacobian(np.sin, chunk=chunk),
                 lambda: da.hvp(np.sum, (X,), (np.eye(2),), chunk=chunk)):
        with pytest.raises(ValueError, match="chunk must be a positive integer"):
            make()


def test_chunk_one_still_works():
    np.testing.assert_allclose(da.jacfwd(np.sin, chunk=1)(X), np.diag(np.cos(X)))
    np.testing.assert_allclose(da.jacrev(np.sin, chunk=np.int64(1))(X), np.diag(np.cos(X)))


@pytest.mark.parametrize("x", [3, True, np.int64(3), np.array(3)])
def test_derivative_refuses_integer_x_like_grad(x):
    with pytest.raises(TypeError, match="derivatives need floating inputs"):
        da.derivative(lambda t: t ** 2, x)
    with pytest.raises(TypeError, match="derivatives need floating inputs"):
        da.grad(lambda t: t ** 2)(x)
    assert float(da.derivative(lambda t: t ** 2, 3.0)) == 6.0


def test_custom_jvp_rule_with_wrong_tangent_shape_is_named():
    @da.custom_jvp
    def f(x):
        return np.sin(x)

    @f.defjvp
    def f_rule(primals, tangents):
        (x,), (t,) = primals, tangents
        return np.sin(x), np.cos(x)[:2] * t[:2]

    x = np.ones(3)
    for run in (lambda: da.jvp(f, (x,), (x,)), lambda: da.grad(lambda v: f(v).sum())(x),
                lambda: da.jacfwd(f)(x), lambda: da.hessian(lambda v: f(v).sum())(x)):
        with pytest.raises(ValueError, match=r"f_rule of f .* shape \(2,\) .* shape \(3,\)"):
            run()


# ============================================================================
# found by the fuzzer: mean / var / std over zero elements
# ============================================================================
@pytest.mark.parametrize("f", [np.mean, np.var, np.std, lambda x: np.mean(x, axis=0),
                               lambda x: np.var(x, axis=0)],
                         ids=["mean", "var", "std", "mean axis 0", "var axis 0"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_reductions_over_zero_elements_do_not_raise(f):
    x = np.zeros((0, 2))
    want_shape = np.shape(f(x))
    assert da.jacfwd(f)(x).shape == want_shape + (0, 2)
    assert da.jacrev(f)(x).shape == want_shape + (0, 2)
    assert da.hessian(lambda v: np.sum(f(v)), mode="rev-rev")(x).shape == (0, 2, 0, 2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_det_derivative_of_a_nan_matrix_is_nan_not_an_error():
    # found by the fuzzer: the conditioning test must not run an SVD on NaN
    a = np.array([[np.nan, 1.0], [0.0, 2.0]])
    assert np.isnan(da.grad(np.linalg.det)(a)).any()
    assert np.isnan(da.jacfwd(np.linalg.det)(a)).any()


def test_custom_jvp_rule_may_return_none_tangents_in_reverse_mode():
    # a None tangent_out leaf means "no derivative" and is not a bad output
    @da.custom_jvp
    def f(x):
        return np.sin(x), np.floor(x)

    @f.defjvp
    def f_rule(primals, tangents):
        (x,), (t,) = primals, tangents
        return f(x), (np.cos(x) * t, None)

    np.testing.assert_allclose(da.grad(lambda x: f(x)[0].sum())(X), np.cos(X))
    np.testing.assert_allclose(da.jacrev(lambda x: f(x)[0])(X), np.diag(np.cos(X)))


def test_power_zero_of_a_reduction_in_a_structured_hessian():
    # Found by the long fuzz run: (prod(...)) ** 0.0 inside a structured
    # Hessian made an index map with no slots and crashed the slot matcher.
    def f(x):
        v2 = np.prod(1.0 + 0.5 * np.sin(x))
        out = v2 ** 0.0 + v2
        return np.sum(np.sin(out)) + 0.5 * np.sum(out * out)
    x = np.array([0.3561003870357813, -0.5985545442139372])
    np.testing.assert_allclose(da.hessian(f, mode="structured")(x),
                               da.hessian(f, mode="fwd-rev")(x), rtol=1e-12, atol=1e-12)
