"""dtype preservation: float32 in, float32 out (values, tangents, gradients,
Jacobians); float64 stays float64; Python floats and ints inside the function
are weak constants that never upcast (NumPy 2 / NEP 50 semantics).
"""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da

LA = np.linalg
FLOATS = [np.float32, np.float64]


# ============================================================================
# a representative composite function (Python float and int constants mixed in)
# ============================================================================
def composite(x):
    y = np.tanh(x) * np.exp(-x ** 2) + 2.0 * x / (1 + x * x)
    y = y + np.sqrt(x * x + 1.0) - 3 * np.sin(x) ** 2 + x / 2 - np.log1p(x * x)
    y = y + np.where(x > 0, x, 0.5 * x) + np.cumsum(x) * 0.25
    return y + 0.1 * np.sum(y) + np.mean(x ** 2) + (x @ x) / 4 + x[::-1] * x[0]


def scalar_composite(x):
    m = x.reshape(2, 2)
    return np.sum(composite(x)) + np.trace(m @ m.T) + LA.norm(x) - np.var(x) + x.max()


def _x(dtype):
    return np.array([0.3, -0.8, 1.1, 0.45], dtype=dtype)


def _assert_dtype(value, dtype, what: str) -> None:
    got = np.asarray(value).dtype
    assert got == dtype, f"{what}: dtype {got}, expected {np.dtype(dtype)}"


@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_jvp_keeps_dtype(dtype) -> None:
    x = _x(dtype)
    out, t = da.jvp(composite, (x,), (np.ones_like(x),))
    _assert_dtype(out, dtype, "jvp output")
    _assert_dtype(t, dtype, "jvp tangent")
    out64, t64 = da.jvp(composite, (x.astype(np.float64),), (np.ones(4),))
    np.testing.assert_allclose(t, t64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_tangent_of_other_dtype_is_cast_to_primal(dtype) -> None:
    x = _x(dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    _, t = da.jvp(composite, (x,), (np.ones(4, dtype=other),))
    _assert_dtype(t, dtype, "jvp tangent")


@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_grad_keeps_dtype(dtype) -> None:
    x = _x(dtype)
    g = da.grad(scalar_composite)(x)
    _assert_dtype(g, dtype, "grad")
    v, g2 = da.value_and_grad(scalar_composite)(x)
    _assert_dtype(v, dtype, "value_and_grad value")
    _assert_dtype(g2, dtype, "value_and_grad grad")
    g64 = da.grad(scalar_composite)(x.astype(np.float64))
    np.testing.assert_allclose(g, g64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_vjp_keeps_dtype(dtype) -> None:
    x = _x(dtype)
    out, pull = da.vjp(composite, x)
    _assert_dtype(out, dtype, "vjp output")
    _assert_dtype(pull(np.ones(4, dtype=dtype))[0], dtype, "vjp cotangent")
    _assert_dtype(pull(np.ones(4, dtype=np.float64))[0], dtype, "vjp cotangent (f64 seed)")


@pytest.mark.parametrize("jac", [da.jacfwd, da.jacrev], ids=["jacfwd", "jacrev"])
@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_jacobians_keep_dtype(jac, dtype) -> None:
    x = _x(dtype)
    J = jac(composite)(x)
    assert J.shape == (4, 4)
    _assert_dtype(J, dtype, jac.__name__)
    J64 = jac(composite)(x.astype(np.float64))
    np.testing.assert_allclose(J, J64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS, ids=["float32", "float64"])
def test_second_order_keeps_dtype(dtype) -> None:
    x = _x(dtype)
    gg = da.grad(lambda v: np.sum(da.grad(scalar_composite)(v) ** 2))(x)
    _assert_dtype(gg, dtype, "grad of grad")
    _, hv = da.jvp(da.grad(scalar_composite), (x,), (np.ones_like(x),))
    _assert_dtype(hv, dtype, "jvp of grad")
    H = da.jacfwd(da.grad(scalar_composite))(x)
    _assert_dtype(H, dtype, "jacfwd of grad")


def test_float32_scalar_input() -> None:
    x = np.float32(0.7)
    _assert_dtype(da.grad(lambda v: 3 * v ** 2 + 1)(x), np.float32, "grad of float32 scalar")
    _, t = da.jvp(lambda v: v * 2.5, (x,), (np.float32(1.0),))
    _assert_dtype(t, np.float32, "jvp of float32 scalar")


# ============================================================================
# Python floats and ints as inputs and constants
# ============================================================================
def test_python_float_input_is_float64() -> None:
    g = da.grad(lambda v: 3 * v ** 2 + 1)(2.0)
    _assert_dtype(g, np.float64, "grad of a Python float")
    assert float(g) == 12.0
    y, t = da.jvp(lambda v: 2 * v + 0.5, (1.5,), (1.0,))
    assert float(y) == 3.5 and float(t) == 2.0


@pytest.mark.parametrize("const", [2, 2.5, True], ids=["int", "float", "bool"])
def test_python_constants_do_not_upcast(const) -> None:
    x = _x(np.float32)

    def f(v):
        return (v * const + const) / (const + 1) - const ** 2 * v + v ** 2 - const

    for value in (da.jvp(f, (x,), (np.ones_like(x),))[1], da.grad(lambda v: np.sum(f(v)))(x),
                  da.jacfwd(f)(x), da.jacrev(f)(x)):
        _assert_dtype(value, np.float32, f"constant {const!r}")


def test_numpy_float32_constant_keeps_float32() -> None:
    x = _x(np.float32)
    w = np.arange(4, dtype=np.float32)
    g = da.grad(lambda v: np.sum(v * w + np.float32(2.0)) + v @ w)(x)
    _assert_dtype(g, np.float32, "grad with float32 constants")


# ============================================================================
# per-op: every rule keeps float32 (constants inside rules must not upcast)
# ============================================================================
def _sym(a):
    return (a + a.T) / 2 + 3 * np.eye(a.shape[0], dtype=a.dtype)


OPS = {
    "exp2": np.exp2, "log2": lambda v: np.log2(v + 2), "log10": lambda v: np.log10(v + 2),
    "log": lambda v: np.log(v + 2), "sqrt": lambda v: np.sqrt(v + 2), "cbrt": np.cbrt,
    "power(x, 2.5)": lambda v: np.power(v + 2, 2.5), "2.0 ** x": lambda v: 2.0 ** v,
    "power(x, y)": lambda v: np.power(v + 2, v), "arcsin": lambda v: np.arcsin(v / 2),
    "arccos": lambda v: np.arccos(v / 2), "arctan2": lambda v: np.arctan2(v, 1.5),
    "hypot": lambda v: np.hypot(v, 1.5), "logaddexp": lambda v: np.logaddexp(v, 0.5),
    "arccosh": lambda v: np.arccosh(v + 2), "arctanh": lambda v: np.arctanh(v / 2),
    "arcsinh": np.arcsinh, "expm1": np.expm1, "reciprocal": lambda v: np.reciprocal(v + 2),
    "absolute": np.abs, "clip": lambda v: np.clip(v, -0.5, 0.5),
    "maximum": lambda v: np.maximum(v, 0.1), "minimum": lambda v: np.minimum(0.1, v),
    "fmax": lambda v: np.fmax(v, 0.0), "mean": np.mean, "var": np.var,
    "std(ddof=1)": lambda v: np.std(v, ddof=1), "prod": np.prod, "cumprod": np.cumprod,
    "max": np.max, "norm": LA.norm, "norm(ord=3)": lambda v: LA.norm(v, 3),
    "matrix norm nuc": lambda v: LA.norm(v.reshape(2, 2), "nuc"),
    "matmul": lambda v: v.reshape(2, 2) @ v.reshape(2, 2),
    "einsum": lambda v: np.einsum("ij,jk->ik", v.reshape(2, 2), v.reshape(2, 2)),
    "det": lambda v: LA.det(_sym(v.reshape(2, 2))),
    "slogdet": lambda v: LA.slogdet(_sym(v.reshape(2, 2)))[1],
    "inv": lambda v: LA.inv(_sym(v.reshape(2, 2))),
    "solve": lambda v: LA.solve(_sym(v.reshape(2, 2)), v[:2]),
    "cholesky": lambda v: LA.cholesky(_sym(v.reshape(2, 2))),
    "eigh": lambda v: LA.eigh(_sym(v.reshape(2, 2)))[0],
    "svd": lambda v: LA.svd(v.reshape(2, 2) + np.eye(2, dtype=v.dtype), compute_uv=False),
    "qr": lambda v: LA.qr(_sym(v.reshape(2, 2)))[1],
    "pinv": lambda v: LA.pinv(_sym(v.reshape(2, 2))),
    "getitem+scatter": lambda v: v[[0, 2, 2]],
    "concatenate": lambda v: np.concatenate([v, v[:2]]),
    "where": lambda v: np.where(v > 0, v, 0.0),
}


@pytest.mark.parametrize("fn", list(OPS.values()), ids=list(OPS))
def test_op_keeps_float32(fn) -> None:
    x = _x(np.float32)
    out, t = da.jvp(fn, (x,), (np.ones_like(x),))
    _assert_dtype(out, np.float32, "output")
    _assert_dtype(t, np.float32, "jvp tangent")
    g = da.grad(lambda v: np.sum(fn(v)))(x)
    _assert_dtype(g, np.float32, "grad")
    gg = da.grad(lambda v: np.sum(da.grad(lambda w: np.sum(fn(w)))(v)))(x)
    _assert_dtype(gg, np.float32, "grad of grad")


# ============================================================================
# every row of the op table: NumPy's dtype on float32 inputs is kept
# ============================================================================
from test_op_table import ROWS  # noqa: E402  (the one op table, shared)


def _leaves(tree) -> list:
    from dualad.core.tree import tree_flatten
    return tree_flatten(tree)[0]


@pytest.mark.parametrize("spec", ROWS, ids=[r.name for r in ROWS])
def test_op_table_row_keeps_float32(spec) -> None:
    """Outputs and tangents have the dtype NumPy gives on float32 inputs; when
    that is float32 (no float64 constant inside), cotangents are float32 too."""
    family = next(iter(spec.families))
    args = tuple(a.astype(np.float32) for a in spec.args(family))
    want = [np.asarray(w).dtype for w in _leaves(spec.fn(*args))]
    out, tan = da.jvp(spec.fn, args, tuple(np.ones_like(a) for a in args))
    assert [np.asarray(o).dtype for o in _leaves(out)] == want, "jvp output dtypes"
    assert [np.asarray(t).dtype for t in _leaves(tan)] == want, "jvp tangent dtypes"
    if all(w == np.float32 for w in want):
        y, pull = da.vjp(spec.fn, *args)
        cts = pull(type(y)(np.ones_like(v) for v in y) if isinstance(y, (tuple, list))
                   else np.ones_like(y))
        assert [np.asarray(c).dtype for c in cts] == [np.dtype(np.float32)] * len(args), \
            "vjp cotangent dtypes"
