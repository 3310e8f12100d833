"""Conversions inside transforms (dualad/core/convert.py): ``np.asarray`` &
co. keep traced values, lists of traced values stack, and NumPy outside
transforms is exactly the original."""
from __future__ import annotations

import threading
import types

import numpy as np
import pytest

import dualad as da
from dualad.core import convert

X = np.array([0.7, -1.3, 2.1])
CONVERSIONS = ["asarray", "array", "asanyarray", "ascontiguousarray", "asfortranarray",
               "asarray_chkfinite"]


@pytest.mark.parametrize("name", CONVERSIONS)
def test_conversion_keeps_the_tracer(name: str) -> None:
    f = lambda x: np.sum(getattr(np, name)(x) ** 3)          # noqa: E731
    np.testing.assert_allclose(da.grad(f)(X), 3 * X ** 2)
    np.testing.assert_allclose(da.jacfwd(f)(X), 3 * X ** 2)
    np.testing.assert_allclose(da.hessian(f)(X), np.diag(6 * X))


def test_names_bound_before_the_transform_are_out_of_reach() -> None:
    """``from numpy import asarray`` at import time keeps NumPy's own function:
    it still refuses with the clear error (documented limitation)."""
    bound = np.asarray
    with pytest.raises(TypeError, match="derivative"):
        da.grad(lambda x: np.sum(bound(x)))(X)


def test_dtype_and_copy() -> None:
    def f(x):
        a = np.asarray(x, dtype=np.float32)
        assert a.dtype == np.float32
        b = np.asarray(x)
        assert b is x                         # no copy asked: the same tracer
        c = np.array(x)
        assert c is not x                     # np.array copies
        d = np.asarray(x, copy=True)
        assert d is not x
        return np.sum(a.astype(np.float64) * c)
    np.testing.assert_allclose(da.grad(f)(X), 2 * X, rtol=1e-6)


def test_int_cast_refuses() -> None:
    with pytest.raises(TypeError, match="derivative"):
        da.grad(lambda x: np.sum(np.asarray(x, dtype=np.int64)))(X)


def test_nested_lists_stack() -> None:
    def f(x):
        a, b, c = x[0], x[1], x[2]
        m = np.asarray([[a, 1.0], [b, c]])
        v = np.array([a, a ** 2, 3.0])
        return np.linalg.det(m) + np.sum(v) + np.mean([a, b]) + np.linalg.norm([b, c]) \
            + np.sum(np.append([a, 1.0], c)) + np.sum(np.r_[a, b, 1.0]) \
            + np.sum(np.c_[[a, b], [c, 1.0]] ** 2)

    def twin(x):
        a, b, c = x[0], x[1], x[2]
        return a * c - b + a + a ** 2 + 3.0 + (a + b) / 2 + np.sqrt(b ** 2 + c ** 2) \
            + a + 1.0 + c + a + b + 1.0 + a ** 2 + b ** 2 + c ** 2 + 1.0

    np.testing.assert_allclose(da.grad(f)(X), da.grad(twin)(X), rtol=1e-12)
    np.testing.assert_allclose(da.hessian(f, mode="rev-rev")(X), da.hessian(twin)(X),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(da.hessian(f, mode="hyperdual")(X), da.hessian(twin)(X),
                               rtol=1e-10, atol=1e-12)


def test_shapes_match_numpy() -> None:
    def f(x):
        a = x[0]
        assert np.array([[a, a]]).shape == (1, 2)
        assert np.array(a, ndmin=2).shape == (1, 1)
        assert np.ascontiguousarray(a).shape == (1,)
        assert np.r_[x, a].shape == (4,)
        assert np.c_[x, x].shape == (3, 2)
        assert np.atleast_2d([a, a]).shape == (1, 2)
        return a
    da.grad(f)(X)


def test_format_uses_the_primal() -> None:
    seen = []
    da.grad(lambda x: seen.append(f"{x[0]:.4f} {x:}") or np.sum(x))(X)
    assert seen[0].startswith("0.7000 ")


def test_array_namespace() -> None:
    def f(x):
        xp = x.__array_namespace__()
        y = xp.asarray(x, dtype=xp.float64)
        return xp.sum(xp.pow(xp.exp(y), 2.0)) + xp.sum(xp.concat([y, y]))
    np.testing.assert_allclose(da.grad(f)(X), 2 * np.exp(2 * X) + 2)


def test_numpy_is_restored_after_the_transform() -> None:
    originals = {n: getattr(np, n) for n in ("asarray", "array", "mean", "r_")}
    da.grad(lambda x: np.sum(np.asarray(x)))(X)
    for n, f in originals.items():
        assert getattr(np, n) is f
    assert all(getattr(m, n) is f for m, n, f in convert._ORIGINALS)
    assert type(np) is types.ModuleType and type(np.linalg) is types.ModuleType
    with pytest.raises(TypeError):
        np.asarray(da.Dual(1.0, 1.0))         # no transform: persistent Duals refuse


def test_other_threads_see_the_same_numpy() -> None:
    """While one thread runs a transform, another sees NumPy's own results."""
    started, done = threading.Event(), threading.Event()
    results = []

    def traced(x):
        started.set()
        done.wait(5)
        return np.sum(np.asarray(x) ** 2)

    t = threading.Thread(target=lambda: results.append(da.grad(traced)(X)))
    t.start()
    started.wait(5)
    try:
        a = np.asarray([1, 2], dtype=np.float32)
        assert type(a) is np.ndarray and a.dtype == np.float32
        assert np.array([[1, 2]]).shape == (1, 2)
        assert np.mean([1.0, 3.0]) == 2.0
        np.testing.assert_array_equal(np.r_[1, 2, 0:2], [1, 2, 0, 1])
    finally:
        done.set()
        t.join()
    np.testing.assert_allclose(results[0], 2 * X)
    assert np.asarray is convert._orig["asarray"]


# ============================================================================
# small fixes: output checks, nested lists, refusals that name the function,
# custom_jvp rules calling their own function
# ============================================================================
def test_grad_of_bool_or_int_function_raises() -> None:
    for f in (lambda v: v[0] > 0, lambda v: 3, lambda v: np.sum(np.floor(v)).astype(int)):
        with pytest.raises(TypeError, match="must return floating"):
            da.grad(f)(X)


def test_grad_of_nested_list_is_an_array_as_in_hessian() -> None:
    arg = [[1.0, 2.0], [3.0, 4.0]]
    f = lambda v: np.sum(np.asarray(v) ** 3)                     # noqa: E731
    g = da.grad(f)(arg)
    assert isinstance(g, np.ndarray) and g.shape == (2, 2)
    np.testing.assert_allclose(g, 3 * np.asarray(arg) ** 2)
    assert da.hessian(f)(arg).shape == (2, 2, 2, 2)


def test_refusals_name_the_function() -> None:
    import math
    with pytest.raises(TypeError, match=r"math\.sin"):
        da.grad(lambda v: math.sin(v[0]))(X)
    with pytest.raises(TypeError, match=r"numpy\.vectorize"):
        da.grad(lambda v: np.sum(np.vectorize(lambda a: 2 * a)(v)))(X)


def test_traced_values_are_not_ndarrays() -> None:
    """Documented: a traced value is not an ndarray (isinstance is False)."""
    seen = []
    da.grad(lambda v: seen.append(isinstance(v, np.ndarray)) or np.sum(v))(X)
    assert seen == [False]


@da.custom_jvp
def _sin_self(v):
    return np.sin(v)


@_sin_self.defjvp
def _sin_self_jvp(primals, tangents):
    (v,), (t,) = primals, tangents
    # calls its own function on the tangent (a zero term, but a real call)
    return _sin_self(v), np.cos(v) * t + 0.0 * _sin_self(t)


def test_custom_jvp_calling_itself_on_the_tangent_terminates() -> None:
    f = lambda v: np.sum(_sin_self(v))                           # noqa: E731
    np.testing.assert_allclose(da.grad(f)(X), np.cos(X), rtol=1e-12)
    np.testing.assert_allclose(da.jacfwd(f)(X), np.cos(X), rtol=1e-12)
    for mode in ("fwd-rev", "rev-rev", "structured"):
        np.testing.assert_allclose(da.hessian(f, mode=mode)(X), np.diag(-np.sin(X)),
                                   rtol=1e-10, atol=1e-12, err_msg=mode)


def test_structured_hessian_with_custom_jvp_inside() -> None:
    @da.custom_jvp
    def cube(v):
        return np.sum(v ** 3)

    @cube.defjvp
    def _(primals, tangents):
        (v,), (t,) = primals, tangents
        return cube(v), np.sum(3 * v ** 2 * t)

    f = lambda v: cube(v) + np.sum(v ** 2)                       # noqa: E731
    np.testing.assert_allclose(da.hessian(f, mode="structured")(X), np.diag(6 * X + 2),
                               rtol=1e-12)


def test_wrappers_answer_inside_a_transform_only() -> None:
    """Inside a transform numpy's names answer with the wrappers (a module
    class with data descriptors), also once the interpreter has specialized
    the lookups; the module's own dict is never changed."""
    seen = {}

    def f(x):
        seen["asarray"] = np.asarray
        seen["norm"] = np.linalg.norm
        seen["dict"] = vars(np)["asarray"]
        return np.sum(np.asarray([x[0], 2.0 * x[1]]) ** 2)

    for _ in range(40):      # warm: a specialized attribute lookup must not skip the wrappers
        np.testing.assert_allclose(da.grad(f)(X[:2]), [2 * X[0], 8 * X[1]])
        assert seen["asarray"] is not convert._orig["asarray"]
        assert seen["norm"] is not np.linalg.norm
        assert seen["dict"] is convert._orig["asarray"]
        assert np.asarray is convert._orig["asarray"]
    assert np.asarray is convert._orig["asarray"]
