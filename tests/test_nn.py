"""Parameter and Module: array behaviour, discovery order, weights= grads."""
import copy
import pickle

import numpy as np
import pytest

import dualad as da


# ============================================================================
# Parameter as an array
# ============================================================================
def test_parameter_value_is_float_array():
    p = da.Parameter([1, 2, 3], name="p")
    assert isinstance(p.value, np.ndarray) and p.value.dtype == np.float64
    assert (p.shape, p.ndim, p.size, p.dtype) == ((3,), 1, 3, np.float64)
    assert p.name == "p" and p.requires_grad
    f32 = da.Parameter(np.ones(2, dtype=np.float32))
    assert f32.dtype == np.float32                      # float dtypes kept


def test_parameter_in_numpy_code():
    p = da.Parameter(np.array([[1.0, 2.0], [3.0, 4.0]]))
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(p + a, p.value + a)
    np.testing.assert_array_equal(a * p, a * p.value)
    np.testing.assert_array_equal(np.sin(p), np.sin(p.value))
    np.testing.assert_array_equal(np.sum(p, axis=0), [4.0, 6.0])
    np.testing.assert_array_equal(p.sum(axis=1), [3.0, 7.0])
    np.testing.assert_array_equal(p.T, p.value.T)
    np.testing.assert_array_equal(p.reshape(4), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(p[1], [3.0, 4.0])
    np.testing.assert_array_equal(np.where(a > 0, p, 0.0), [[1.0, 0.0], [0.0, 4.0]])
    np.testing.assert_array_equal(np.asarray(p), p.value)
    assert float(da.Parameter(2.5)) == 2.5
    assert -p is not p and (2.0 ** da.Parameter(3.0)) == 8.0


def test_set_data_and_inplace_update():
    p = da.Parameter([1.0, 2.0])
    q = p
    p.set_data(np.array([5.0, 6.0]))
    np.testing.assert_array_equal(q.value, [5.0, 6.0])
    p -= 0.5 * np.ones(2)
    assert p is q
    np.testing.assert_array_equal(p.value, [4.5, 5.5])


def test_parameter_copy_and_pickle():
    p = da.Parameter([1.0, 2.0], name="w", requires_grad=False)
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert q.name == "w" and not q.requires_grad
        np.testing.assert_array_equal(q.value, p.value)
        assert float(da.grad(lambda x: (q * x).sum())(np.ones(2))[0]) == 1.0


# ============================================================================
# Parameter inside grad
# ============================================================================
def test_grad_wrt_parameter_traced_only_during_call():
    w = da.Parameter(np.array([1.0, 2.0]))
    seen = []

    def f(x):
        seen.append(w.is_traced)
        return (w * w * x).sum()

    (gw,) = da.grad(f, None, weights=w)(np.array([3.0, 4.0]))
    np.testing.assert_allclose(gw, 2 * w.value * [3.0, 4.0])
    assert seen == [True] and not w.is_traced


def test_parameter_on_either_side_of_a_tracer():
    w = da.Parameter(np.array([1.0, 2.0]))
    x = np.array([3.0, -1.0])
    for f in (lambda: (np.sin(x * 1.0 + 0.0) * w).sum(),      # ndarray-side
              lambda: (w * np.sin(x)).sum()):
        (gw,) = da.grad(f, None, weights=w)()
        np.testing.assert_allclose(gw, np.sin(x))
    gx, (gw,) = da.grad(lambda x: (np.sin(x) * w).sum(), 0, weights=w)(x)
    np.testing.assert_allclose(gx, np.cos(x) * w.value)
    np.testing.assert_allclose(gw, np.sin(x))


def test_nested_grads_over_same_parameter():
    w = da.Parameter(2.0)
    inner = da.grad(lambda x: w ** 3 * x, None, weights=w)           # 3 w^2 x
    (gw,) = da.grad(lambda x: inner(x)[0], None, weights=w)(1.0)     # 6 w x
    assert float(gw) == 12.0
    assert float(da.grad(lambda x: inner(x)[0])(1.0)) == 12.0        # 3 w^2


def test_set_data_refused_while_traced():
    w = da.Parameter(1.0)

    def f():
        w.set_data(3.0)
        return w * 1.0

    with pytest.raises(RuntimeError, match="set_data"):
        da.grad(f, None, weights=w)()
    assert not w.is_traced and float(w) == 1.0


# ============================================================================
# Module
# ============================================================================
class Dense(da.Module):
    def __init__(self, n_in, n_out):
        self.w = da.Parameter(np.full((n_in, n_out), 0.1))
        self.b = da.Parameter(np.zeros(n_out))

    def forward(self, x):
        return np.tanh((x.reshape(-1, x.shape[-1], 1) * self.w).sum(axis=1) + self.b)


class Net(da.Module):
    def __init__(self):
        self.first = Dense(3, 2)
        self.scale = da.Parameter(2.0, name="scale")
        self.frozen = da.Parameter(1.0, requires_grad=False)
        self.blocks = [Dense(2, 2), {"a": da.Parameter(0.5), "b": Dense(2, 1)}]
        self.shared = self.scale                       # listed once

    def construct(self, x):
        h = self.first(x)
        h = self.blocks[0](h) * self.scale
        return (self.blocks[1]["b"](h) * self.blocks[1]["a"] * self.frozen).sum()


def test_module_parameter_order_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["first.w", "first.b", "scale", "frozen", "blocks.0.w", "blocks.0.b",
                     "blocks.1.a", "blocks.1.b.w", "blocks.1.b.b"]
    assert len(net.parameters()) == 9
    trainable = net.trainable_params()
    assert len(trainable) == 8 and all(p is not net.frozen for p in trainable)
    assert net.first.w.name == "w" and net.scale.name == "scale"


def test_module_call_forward_or_construct():
    net = Net()
    x = np.array([[1.0, 2.0, 3.0]])
    v = net(x)
    assert float(v) == float(net.construct(x)) == float(net.forward(x))
    with pytest.raises(NotImplementedError):
        da.Module()(1.0)


def test_module_grad_matches_central_differences():
    net = Net()
    x = np.array([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3]])
    params = net.trainable_params()
    grads = da.grad(lambda x: net(x), None, weights=params)(x)
    assert len(grads) == len(params)
    eps = 1e-6
    for p, g in zip(params, grads):
        assert g.shape == p.shape
        flat = p.value.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = float(net(x))
            flat[i] = old - eps
            down = float(net(x))
            flat[i] = old
            assert g.reshape(-1)[i] == pytest.approx((up - down) / (2 * eps), abs=1e-7)


def test_requires_grad_toggle():
    net = Net()
    net.requires_grad_(False)
    assert net.trainable_params() == []
    net.requires_grad_(True)
    assert len(net.trainable_params()) == 9


def test_training_loop_decreases_loss():
    net = Dense(2, 1)
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = np.array([[0.5], [-0.5], [0.0]])
    loss = lambda: ((net(x) - target) ** 2).mean()
    vg = da.value_and_grad(loss, None, weights=net.trainable_params())
    first = float(loss())
    for _ in range(200):
        _, grads = vg()
        for p, g in zip(net.trainable_params(), grads):
            p -= 0.5 * g
    assert float(loss()) < 0.05 * first
