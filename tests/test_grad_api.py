"""grad / value_and_grad / vjp / jacrev: the API.md tables, row by row, plus
robustness (exceptions, long chains, many calls, threads)."""
import gc
import threading

import numpy as np
import pytest

import dualad as da
from dualad.core.levels import active_levels

X = np.array([0.5, -1.0, 2.0])
Y = np.array([1.5, 0.25, -0.5])


def f2(x, y):
    return (np.sin(x) * y + x * x).sum()


def df2_dx(x, y):
    return np.cos(x) * y + 2 * x


def df2_dy(x, y):
    return np.sin(x)


# ============================================================================
# grad_position / weights table
# ============================================================================
def test_row_position_0():
    np.testing.assert_allclose(da.grad(f2)(X, Y), df2_dx(X, Y))


def test_row_position_1():
    np.testing.assert_allclose(da.grad(f2, 1)(X, Y), df2_dy(X, Y))


def test_row_position_tuple():
    gx, gy = da.grad(f2, (0, 1))(X, Y)
    np.testing.assert_allclose(gx, df2_dx(X, Y))
    np.testing.assert_allclose(gy, df2_dy(X, Y))


def test_argnums_alias():
    np.testing.assert_allclose(da.grad(f2, argnums=1)(X, Y), df2_dy(X, Y))
    gx, gy = da.value_and_grad(f2, argnums=(0, 1))(X, Y)[1]
    np.testing.assert_allclose(gy, df2_dy(X, Y))


def test_row_weights_only():
    w = da.Parameter(Y, name="w")
    b = da.Parameter(0.5, name="b")
    gw, gb = da.grad(lambda x: f2(x, w) + b * 3.0, None, weights=[w, b])(X)
    np.testing.assert_allclose(gw, df2_dy(X, Y))
    assert float(gb) == 3.0


def test_row_position_and_weights():
    w = da.Parameter(Y)
    gx, (gw,) = da.grad(lambda x: f2(x, w), 0, weights=[w])(X)
    np.testing.assert_allclose(gx, df2_dx(X, Y))
    np.testing.assert_allclose(gw, df2_dy(X, Y))


def test_row_positions_and_weights():
    w = da.Parameter(2.0)
    (gx, gy), (gw,) = da.grad(lambda x, y: f2(x, y) * w, (0, 1), weights=w)(X, Y)
    np.testing.assert_allclose(gx, 2 * df2_dx(X, Y))
    np.testing.assert_allclose(gy, 2 * df2_dy(X, Y))
    np.testing.assert_allclose(gw, f2(X, Y))


def test_row_none_none():
    with pytest.raises(ValueError, match="both be None"):
        da.grad(f2, None)


def test_value_and_grad_value():
    v, g = da.value_and_grad(f2)(X, Y)
    assert float(v) == pytest.approx(f2(X, Y))
    np.testing.assert_allclose(g, df2_dx(X, Y))


def test_weights_module_trainable_params():
    class Lin(da.Module):
        def __init__(self):
            self.w = da.Parameter(np.array([1.0, 2.0, 3.0]))
            self.b = da.Parameter(0.5)
            self.frozen = da.Parameter(7.0, requires_grad=False)

        def forward(self, x):
            return (self.w * x).sum() + self.b * self.frozen

    m = Lin()
    gw, gb = da.grad(lambda x: m(x), None, weights=m.trainable_params())(X)
    np.testing.assert_allclose(gw, X)
    assert float(gb) == 7.0


def test_requires_grad_false_weight_gets_zeros():
    frozen = da.Parameter(np.array([1.0, 2.0]), requires_grad=False)
    w = da.Parameter(np.array([3.0, 4.0]))
    gw, gf = da.grad(lambda: (w * frozen).sum(), None, weights=[w, frozen])()
    np.testing.assert_allclose(gw, [1.0, 2.0])
    np.testing.assert_array_equal(gf, [0.0, 0.0])


def test_weights_must_be_parameters():
    with pytest.raises(TypeError, match="Parameter"):
        da.grad(f2, None, weights=[np.ones(3)])


# ============================================================================
# outputs: non-scalar summed, tuples summed, has_aux
# ============================================================================
def test_non_scalar_output_is_summed():
    np.testing.assert_allclose(da.grad(lambda x: x * x)(X), 2 * X)


def test_tuple_output_is_summed():
    g = da.grad(lambda x: (x * x, np.sin(x).sum()))(X)
    np.testing.assert_allclose(g, 2 * X + np.cos(X))


def test_has_aux_tuple():
    def f(x):
        return (x * x).sum(), x * 10.0, "tag"

    g, aux = da.grad(f, has_aux=True)(X)
    np.testing.assert_allclose(g, 2 * X)
    assert isinstance(aux, tuple) and len(aux) == 2
    np.testing.assert_allclose(aux[0], 10 * X)
    assert isinstance(aux[0], np.ndarray)          # stripped of tracers
    assert aux[1] == "tag"


def test_value_and_grad_has_aux():
    (v, aux), g = da.value_and_grad(lambda x: ((x * x).sum(), x.mean()), has_aux=True)(X)
    assert float(v) == pytest.approx((X * X).sum())
    assert float(aux) == pytest.approx(X.mean())
    np.testing.assert_allclose(g, 2 * X)


def test_has_aux_requires_tuple():
    with pytest.raises(TypeError, match="tuple"):
        da.grad(lambda x: (x * x).sum(), has_aux=True)(X)


# ============================================================================
# argument checks
# ============================================================================
def test_int_input_type_error_names_argument():
    with pytest.raises(TypeError, match="argument 1"):
        da.grad(f2, 1)(X, np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="argument 0"):
        da.grad(lambda x: x * 2)(3)


def test_python_float_input():
    assert float(da.grad(lambda x: x ** 3)(2.0)) == 12.0


# ============================================================================
# vjp and jacrev
# ============================================================================
def test_vjp_called_twice():
    out, pull = da.vjp(lambda x, y: np.sin(x) * y, X, Y)
    np.testing.assert_allclose(out, np.sin(X) * Y)
    for _ in range(2):
        gx, gy = pull(np.ones(3))
        np.testing.assert_allclose(gx, np.cos(X) * Y)
        np.testing.assert_allclose(gy, np.sin(X))


def test_vjp_batched_cotangents():
    _, pull = da.vjp(lambda x: np.exp(x) * x, X)
    cts = np.stack([np.eye(3)[0], np.eye(3)[2], np.ones(3)])
    (gb,) = pull(cts, batched=True)
    assert gb.shape == (3, 3)
    d = np.exp(X) * (1 + X)
    np.testing.assert_allclose(gb, cts * d)


def test_vjp_cotangent_shape_error():
    _, pull = da.vjp(lambda x: x * 2.0, X)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        pull(np.ones(2))


def test_jacrev_matches_analytic():
    J = da.jacrev(lambda x: np.sin(x) * x.sum())(X)
    expected = np.diag(np.cos(X) * X.sum()) + np.sin(X)[:, None]
    np.testing.assert_allclose(J, expected)
    Jx, Jy = da.jacrev(lambda x, y: x * y, (0, 1))(X, Y)
    np.testing.assert_allclose(Jx, np.diag(Y))
    np.testing.assert_allclose(Jy, np.diag(X))


def test_jacrev_agrees_with_jacfwd():
    f = lambda x: np.tanh(x.reshape(3, 1) * x) .sum(axis=0)
    np.testing.assert_allclose(da.jacrev(f)(X), da.jacfwd(f)(X), rtol=1e-12)


# ============================================================================
# robustness: exceptions, long chains, many calls, threads
# ============================================================================
def test_exception_inside_fn_leaves_no_state():
    w = da.Parameter(2.0)

    def bad(x):
        y = x * w
        raise RuntimeError("boom")
        return y

    for _ in range(3):
        with pytest.raises(RuntimeError, match="boom"):
            da.grad(bad, 0, weights=[w])(1.0)
    assert active_levels() == []
    assert not w.is_traced
    assert float(w * 1.0) == 2.0                       # plain value again
    gx, (gw,) = da.grad(lambda x: x * w, 0, weights=[w])(3.0)
    assert (float(gx), float(gw)) == (2.0, 3.0)


def test_leaked_tracer_is_refused():
    box = []
    da.grad(lambda x: box.append(x) or x * 2)(1.0)
    with pytest.raises(Exception, match="finished transform"):
        np.sin(box[0])


def test_long_chain_no_recursion_limit():
    def chain(x):
        for _ in range(100_000):
            x = x * 1.0000001
        return x

    g = da.grad(chain)(1.0)
    assert float(g) == pytest.approx(1.0000001 ** 100_000, rel=1e-9)


def test_many_grad_calls_keep_memory_flat():
    f = da.grad(lambda x: (np.sin(x) * x).sum())
    x = np.array([0.1, 0.2])
    for _ in range(2_000):                              # warm caches
        f(x)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(100_000):
        g = f(x)
    gc.collect()
    after = len(gc.get_objects())
    np.testing.assert_allclose(g, np.cos(x) * x + np.sin(x))
    # Anything retained per call would add >= 100,000 objects.
    assert after - before < 2_000, (before, after)


def test_concurrent_grads_in_threads():
    results, errors = {}, []
    w = da.Parameter(np.array([1.0, 2.0, 3.0]))

    def work(k):
        try:
            scale = float(k + 1)
            for _ in range(300):
                g = da.grad(lambda x: (np.sin(x * scale) * x).sum())(X)
                (gw,) = da.grad(lambda: (w * w * scale).sum(), None, weights=w)()
                gg = da.grad(da.grad(lambda x: np.sin(x * scale)))(0.3)
            results[k] = (g, gw, gg)
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(4):
        s = k + 1.0
        g, gw, gg = results[k]
        np.testing.assert_allclose(g, s * np.cos(s * X) * X + np.sin(s * X))
        np.testing.assert_allclose(gw, 2 * s * w.value)
        assert float(gg) == pytest.approx(-s * s * np.sin(0.3 * s))
