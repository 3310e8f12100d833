"""Every error the API promises, and the edge cases that must not be errors.

Unsupported functions name themselves and point at custom_jvp; conversions
that would drop a derivative refuse; in-place writes refuse; integer inputs,
malformed tangents and cotangents, unknown modes and leaked tracers fail
loudly; exceptions from the user's function pass through unchanged; branches
follow the primal; ``0 * inf`` partials stay 0.
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.core.dispatch import FUNCTIONS
from dualad.core.levels import LeakedTracerError, active_levels
from dualad.forward import Dual

X = np.array([0.3, -1.2, 2.0])


# ============================================================================
# helpers: run ``body`` on a traced value under each transform
# ============================================================================
def _under(mode: str, body, x=X):
    """Call ``body`` on ``x`` traced by ``mode``; return what the transform gives."""
    if mode == "jvp":
        return da.jvp(body, (x,), (np.ones_like(x),))
    if mode == "grad":
        return da.grad(lambda v: np.sum(body(v)))(x)
    if mode == "jacfwd":
        return da.jacfwd(body)(x)
    if mode == "jacrev":
        return da.jacrev(body)(x)
    if mode == "vjp":
        return da.vjp(body, x)
    if mode == "dual":
        return body(Dual(x, np.ones_like(x)))
    raise AssertionError(mode)


MODES = ["jvp", "grad", "jacfwd", "jacrev", "vjp", "dual"]


# ============================================================================
# unsupported NumPy functions: TypeError naming the function and custom_jvp
# ============================================================================
UNSUPPORTED = [
    ("fft.hfft", lambda v: np.fft.hfft(v)),
    ("unique", lambda v: np.unique(v)),
    ("histogram", lambda v: np.histogram(v)[0] * 1.0),
    ("linalg.lstsq", lambda v: np.linalg.lstsq(np.outer(v, v), v)[0]),
    ("spacing", lambda v: np.spacing(v)),                   # a ufunc
    ("maximum.accumulate", lambda v: np.maximum.accumulate(v)),   # a ufunc method
]
if np.sort not in FUNCTIONS:       # the example, while sort has no rule
    UNSUPPORTED.append(("sort", lambda v: np.sort(v)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name, body", UNSUPPORTED, ids=[n for n, _ in UNSUPPORTED])
def test_unsupported_function_names_itself(name: str, body, mode: str) -> None:
    with pytest.raises(TypeError) as info:
        _under(mode, body)
    msg = str(info.value)
    assert f"numpy.{name}" in msg, msg
    assert "custom_jvp" in msg, msg


# ============================================================================
# conversions that would drop the derivative
# ============================================================================
CONVERSIONS = [
    # (np.asarray(v) keeps the tracer inside a transform: tests/test_convert.py)
    ("np.array(dtype=int)", lambda v: np.array(v, dtype=np.int64)),
    ("float", lambda v: float(v[0])),
    ("float(sum)", lambda v: float(v.sum())),
    ("int", lambda v: int(v[1])),
    ("tolist", lambda v: v.tolist()),
    ("item", lambda v: v[0].item()),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name, body", CONVERSIONS, ids=[n for n, _ in CONVERSIONS])
def test_conversion_refuses_to_drop_derivative(name: str, body, mode: str) -> None:
    with pytest.raises(TypeError, match="derivative"):
        _under(mode, body)


def test_stop_gradient_is_the_explicit_way_out() -> None:
    g = da.grad(lambda v: np.sum(v * np.asarray(da.stop_gradient(v))))(X)
    np.testing.assert_allclose(g, X)


# ============================================================================
# in-place writes
# ============================================================================
def _out_buffer(v):
    buf = np.zeros(3)
    return np.add(v, 1.0, out=buf)


def _out_self(v):
    return np.multiply(v, 2.0, out=v)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("body", [_out_buffer, _out_self],
                         ids=["add(out=buffer)", "multiply(out=x)"])
def test_in_place_write_refuses(body, mode: str) -> None:
    with pytest.raises(TypeError, match="in-place"):
        _under(mode, body)


def test_augmented_assignment_rebinds() -> None:
    """``x += 1`` on a traced value updates it functionally (tests/test_inplace.py)."""
    def f(v):
        v += 1.0
        v *= v
        return v.sum()

    np.testing.assert_allclose(da.grad(f)(X), 2 * (X + 1.0))


# ============================================================================
# integer and bool inputs where a derivative is asked for
# ============================================================================
INT_CALLS = [
    ("grad", lambda a: da.grad(lambda v: np.sum(v * 1.0))(a), "argument 0"),
    ("value_and_grad", lambda a: da.value_and_grad(lambda v: np.sum(v * 1.0))(a), "argument 0"),
    ("grad(argnums=1)", lambda a: da.grad(lambda u, v: np.sum(u * v), 1)(X, a), "argument 1"),
    ("jvp", lambda a: da.jvp(lambda v: v * 1.0, (a,), (np.ones(np.shape(a)),)), "argument 0"),
    ("jvp(second)", lambda a: da.jvp(lambda u, v: u * v, (X, a), (X, np.ones(np.shape(a)))),
     "argument 1"),
    ("vjp", lambda a: da.vjp(lambda v: v * 1.0, a), "argument 0"),
    ("jacfwd", lambda a: da.jacfwd(lambda v: v * 1.0)(a), "argument 0"),
    ("jacrev", lambda a: da.jacrev(lambda v: v * 1.0)(a), "argument 0"),
    ("jacrev(argnums=1)", lambda a: da.jacrev(lambda u, v: u * v, argnums=1)(X, a),
     "argument 1"),
]
INT_VALUES = [("int array", np.array([1, 2, 3])), ("bool array", np.array([True, False, True])),
              ("python int", 3), ("python bool", True), ("int64 scalar", np.int64(2))]


@pytest.mark.parametrize("value", [v for _, v in INT_VALUES], ids=[n for n, _ in INT_VALUES])
@pytest.mark.parametrize("call, name", [(c, n) for _, c, n in INT_CALLS],
                         ids=[i for i, _, _ in INT_CALLS])
def test_integer_input_is_a_type_error_naming_it(call, name: str, value) -> None:
    with pytest.raises(TypeError) as info:
        call(value)
    assert name in str(info.value), str(info.value)


def test_integer_non_differentiated_argument_is_fine() -> None:
    g = da.grad(lambda v, n: np.sum(v ** n))(X, 2)
    np.testing.assert_allclose(g, 2 * X)


# ============================================================================
# malformed tangents and cotangents: ValueError naming both shapes
# ============================================================================
@pytest.mark.parametrize("primal, tangent", [
    (np.ones(3), np.ones(2)), (np.ones((2, 3)), np.ones((3, 2))), (np.ones(3), np.ones(())),
], ids=["(3,) vs (2,)", "(2, 3) vs (3, 2)", "(3,) vs ()"])
def test_jvp_tangent_shape_mismatch(primal, tangent) -> None:
    with pytest.raises(ValueError) as info:
        da.jvp(np.sin, (primal,), (tangent,))
    msg = str(info.value)
    assert str(primal.shape) in msg and str(tangent.shape) in msg, msg


def test_dual_tangent_shape_mismatch() -> None:
    with pytest.raises(ValueError) as info:
        Dual(np.ones(3), np.ones(2))
    assert "(3,)" in str(info.value) and "(2,)" in str(info.value)


@pytest.mark.parametrize("out_shape, ct_shape", [((3,), (2,)), ((2, 3), (3, 2)), ((3,), (3, 2))],
                         ids=["(3,) vs (2,)", "(2, 3) vs (3, 2)", "(3,) vs (3, 2)"])
def test_vjp_cotangent_shape_mismatch(out_shape, ct_shape) -> None:
    x = np.ones(out_shape)
    _, pull = da.vjp(np.sin, x)
    with pytest.raises(ValueError) as info:
        pull(np.ones(ct_shape))
    msg = str(info.value)
    assert str(out_shape) in msg and str(ct_shape) in msg, msg
    np.testing.assert_allclose(pull(np.ones(out_shape))[0], np.cos(x))   # still usable


def test_jvp_structure_mismatch() -> None:
    with pytest.raises((ValueError, TypeError)):
        da.jvp(lambda a, b: a * b, (X, X), (X,))


# ============================================================================
# unknown modes and impossible argument combinations
# ============================================================================
def test_jacobian_unknown_mode_lists_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        da.jacobian(np.sin, mode="sideways")(X)
    msg = str(info.value)
    assert "sideways" in msg and "'fwd'" in msg and "'rev'" in msg, msg


def test_hessian_unknown_mode_lists_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        da.hessian(lambda v: np.sum(v ** 3), mode="rev-fwd-rev")(X)
    msg = str(info.value)
    for m in ("fwd-rev", "rev-rev", "fwd-fwd", "hyperdual"):
        assert m in msg, msg


def test_grad_with_nothing_to_differentiate() -> None:
    with pytest.raises(ValueError):
        da.grad(np.sin, grad_position=None, weights=None)


def test_tensor_second_backward_over_freed_graph() -> None:
    t = da.tensor(X, requires_grad=True)
    y = np.sum(np.sin(t) * t)
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_autograd_grad_unused_input() -> None:
    a = da.tensor(X, requires_grad=True)
    b = da.tensor(X, requires_grad=True)
    y = np.sum(a * a)
    with pytest.raises(RuntimeError):
        da.autograd.grad(y, [a, b], retain_graph=True)
    ga, gb = da.autograd.grad(y, [a, b], allow_unused=True)
    np.testing.assert_allclose(ga.numpy() if hasattr(ga, "numpy") else ga, 2 * X)
    assert gb is None


# ============================================================================
# control flow on traced values follows the primal
# ============================================================================
def _branchy(x):
    if x > 0:
        return x ** 2
    return -3.0 * x


def _loop(x):
    while x < 10.0:        # 3 -> 6 -> 12: f(x) = 4x there
        x = x * 2.0
    return x


@pytest.mark.parametrize("x, want", [(2.0, 4.0), (-1.0, -3.0)])
def test_branch_follows_primal(x: float, want: float) -> None:
    assert float(da.grad(_branchy)(x)) == want
    assert float(da.jvp(_branchy, (x,), (1.0,))[1]) == want
    assert float(da.jacrev(_branchy)(np.array(x))) == want
    assert float(da.jacfwd(_branchy)(np.array(x))) == want


def test_branch_in_nested_transforms() -> None:
    assert float(da.grad(da.grad(_branchy))(2.0)) == 2.0
    assert float(da.grad(da.grad(_branchy))(-2.0)) == 0.0


def test_loop_on_traced_value() -> None:
    assert float(da.grad(_loop)(3.0)) == 4.0
    assert float(da.jvp(_loop, (3.0,), (1.0,))[1]) == 4.0


def test_array_branch() -> None:
    def f(v):
        return np.sum(v * v) if (v > 0).all() else np.sum(v)

    np.testing.assert_allclose(da.grad(f)(np.array([1.0, 2.0])), [2.0, 4.0])
    np.testing.assert_allclose(da.grad(f)(np.array([1.0, -2.0])), [1.0, 1.0])


# ============================================================================
# leaked tracers
# ============================================================================
def _leak(mode: str):
    box = []

    def f(v):
        box.append(v * 2.0)
        return np.sum(v * v)

    if mode == "jvp":
        da.jvp(f, (X,), (np.ones(3),))
    elif mode == "grad":
        da.grad(f)(X)
    elif mode == "jacfwd":
        da.jacfwd(f)(X)
    else:
        da.jacrev(f)(X)
    return box[0]


@pytest.mark.parametrize("mode", ["jvp", "grad", "jacfwd", "jacrev"])
def test_leaked_tracer_is_an_error(mode: str) -> None:
    leaked = _leak(mode)
    with pytest.raises(LeakedTracerError, match="finished transform"):
        np.sin(leaked)
    with pytest.raises(LeakedTracerError):
        _ = leaked * 2.0
    with pytest.raises(LeakedTracerError):
        da.grad(lambda y: np.sum(y * leaked))(X)
    with pytest.raises(LeakedTracerError):
        da.jvp(lambda y: y + leaked, (X,), (X,))


# ============================================================================
# exceptions from the differentiated function pass through unchanged
# ============================================================================
class Boom(Exception):
    pass


TRANSFORMS = {
    "jvp": lambda f: da.jvp(f, (X,), (np.ones(3),)),
    "vjp": lambda f: da.vjp(f, X),
    "grad": lambda f: da.grad(lambda v: np.sum(f(v)))(X),
    "jacfwd": lambda f: da.jacfwd(f)(X),
    "jacrev": lambda f: da.jacrev(f)(X),
    "grad(grad)": lambda f: da.grad(lambda s: np.sum(da.grad(lambda v: np.sum(f(v)))(s * X)))(1.0),
    "jvp(grad)": lambda f: da.jvp(da.grad(lambda v: np.sum(f(v))), (X,), (X,)),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_exception_propagates_unchanged(name: str) -> None:
    err = Boom("user error", 42)

    def bad(v):
        w = np.sin(v) * v          # some traced work first
        if w.shape:
            raise err
        return w

    with pytest.raises(Boom) as info:
        TRANSFORMS[name](bad)
    assert info.value is err and info.value.args == ("user error", 42)
    assert active_levels() == []
    # The next call is unaffected.
    np.testing.assert_allclose(da.grad(lambda v: np.sum(np.sin(v)))(X), np.cos(X))
    out = TRANSFORMS[name](np.sin)
    assert out is not None


# ============================================================================
# zero times infinity: a zero tangent through an infinite partial is 0
# ============================================================================
def _v0_sqrt_v1(v):
    return v[0] * np.sqrt(v[1])


@pytest.mark.parametrize("jac", [da.jacfwd, da.jacrev], ids=["jacfwd", "jacrev"])
def test_zero_times_infinite_partial(jac) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        J = jac(_v0_sqrt_v1)(np.array([1.0, 0.0]))
    assert J.shape == (2,)
    assert J[0] == 0.0 and not np.isnan(J[0]), J
    assert np.isposinf(J[1]), J


def test_zero_times_infinite_partial_directional() -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        _, t = da.jvp(_v0_sqrt_v1, (np.array([1.0, 0.0]),), (np.array([1.0, 0.0]),))
        g = da.grad(lambda v: v[0] * np.sqrt(v[1] + 1.0) * np.sqrt(v[1]))(np.array([1.0, 0.0]))
    assert t == 0.0 and not np.isnan(t)
    assert g[0] == 0.0


def test_zero_cotangent_through_infinite_partial() -> None:
    """Reverse mode: a zero cotangent reaching sqrt at 0 gives 0, not NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g = da.grad(lambda v: v[0] + 0.0 * np.sqrt(v[1]))(np.array([1.0, 0.0]))
    np.testing.assert_array_equal(g, [1.0, 0.0])
