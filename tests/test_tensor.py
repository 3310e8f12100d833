"""PyTorch-style tape tensors: backward, .grad, autograd.grad, create_graph."""
import numpy as np
import pytest

import dualad as da
from dualad.reverse.tape import GraphFreedError


def seed_fn(x1, x2):
    # The seed article's example: ln(x1) + x1*x2 - sin(x2).
    return np.log(x1) + x1 * x2 - np.sin(x2)


def leaves():
    return da.tensor(2.0, requires_grad=True), da.tensor(5.0, requires_grad=True)


# ============================================================================
# the seed example, backward and autograd.grad
# ============================================================================
def test_seed_backward():
    x1, x2 = leaves()
    y = seed_fn(x1, x2)
    assert isinstance(y, da.Tensor) and y.requires_grad
    assert y.item() == pytest.approx(11.652, abs=5e-4)
    assert x1.grad is None and x2.grad is None
    y.backward()
    assert isinstance(x1.grad, da.Tensor) and not x1.grad.requires_grad
    assert x1.grad.item() == pytest.approx(5.5)
    assert x2.grad.item() == pytest.approx(2.0 - np.cos(5.0))
    assert round(x2.grad.item(), 4) == 1.7163


def test_seed_autograd_grad():
    x1, x2 = leaves()
    g1, g2 = da.autograd.grad(seed_fn(x1, x2), [x1, x2])
    assert (g1.item(), round(g2.item(), 4)) == (5.5, 1.7163)
    assert x1.grad is None and x2.grad is None            # nothing accumulated


def test_float_item_numpy_detach():
    x = da.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3.0).sum()
    assert float(y) == 9.0 and y.item() == 9.0
    assert isinstance(x.numpy(), np.ndarray)
    d = y.detach()
    assert not d.requires_grad and d.item() == 9.0
    assert x.shape == (2,) and x.dtype == np.float64
    assert x.tolist() == [1.0, 2.0]
    with pytest.raises(TypeError, match="detach"):
        np.asarray(x)                      # would silently drop the graph
    np.testing.assert_array_equal(np.asarray(x.detach()), [1.0, 2.0])


def test_tensor_copies_data():
    data = np.array([1.0, 2.0])
    x = da.tensor(data)
    data[0] = 100.0
    assert x.numpy()[0] == 1.0


def test_ops_without_grad_record_nothing():
    a = da.tensor([1.0, 2.0])
    b = np.sin(a) * 2.0 + a
    assert isinstance(b, da.Tensor)
    assert not b.requires_grad and b.node is None and b.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        b.sum().backward()


def test_int_requires_grad_type_error():
    with pytest.raises(TypeError, match="floating"):
        da.tensor([1, 2, 3], requires_grad=True)
    t = da.tensor([1, 2, 3])                               # fine without grad
    assert t.dtype.kind == "i"
    with pytest.raises(TypeError, match="floating"):
        t.requires_grad_()


def test_non_scalar_needs_gradient():
    x = da.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()
    y.backward(gradient=np.array([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 0.0, 12.0])


def test_gradient_shape_mismatch():
    x = da.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (x * 2.0).backward(np.ones(3))


# ============================================================================
# retain_graph, freed graphs, accumulation, reset
# ============================================================================
def test_second_backward_over_freed_graph_raises():
    x1, x2 = leaves()
    y = seed_fn(x1, x2)
    y.backward()
    with pytest.raises(GraphFreedError, match="retain_graph"):
        y.backward()


def test_retain_graph_and_accumulation():
    x1, x2 = leaves()
    y = seed_fn(x1, x2)
    y.backward(retain_graph=True)
    y.backward()
    assert x1.grad.item() == pytest.approx(11.0)
    assert x2.grad.item() == pytest.approx(2 * (2.0 - np.cos(5.0)))


def test_accumulation_across_two_graphs_and_reset():
    x = da.tensor(3.0, requires_grad=True)
    (x * x).backward()
    (x * 4.0).backward()
    assert x.grad.item() == 10.0
    x.grad.zero_()
    assert x.grad.item() == 0.0
    (x * 2.0).backward()
    assert x.grad.item() == 2.0
    x.grad = None
    assert x.grad is None
    (x * 5.0).backward()
    assert x.grad.item() == 5.0


def test_zero_on_tensor_requiring_grad_refused():
    x = da.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="in place"):
        x.zero_()


def test_backward_inputs_restricts_accumulation():
    x1, x2 = leaves()
    seed_fn(x1, x2).backward(inputs=[x2])
    assert x1.grad is None
    assert round(x2.grad.item(), 4) == 1.7163


def test_detach_cuts_graph():
    x = da.tensor(2.0, requires_grad=True)
    y = x * x.detach()
    y.backward()
    assert x.grad.item() == 2.0


# ============================================================================
# autograd.grad options
# ============================================================================
def test_autograd_grad_allow_unused():
    x, z = da.tensor(1.0, requires_grad=True), da.tensor(4.0, requires_grad=True)
    y = x * 3.0
    with pytest.raises(RuntimeError, match="allow_unused"):
        da.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = da.autograd.grad(y, [x, z], allow_unused=True)
    assert gx.item() == 3.0 and gz is None


def test_autograd_grad_outputs_and_multiple_outputs():
    x = da.tensor([1.0, 2.0], requires_grad=True)
    (g,) = da.autograd.grad(x * x, x, grad_outputs=np.array([1.0, 10.0]))
    np.testing.assert_allclose(g.numpy(), [2.0, 40.0])
    (g,) = da.autograd.grad([x.sum(), (x * x).sum()], [x])
    np.testing.assert_allclose(g.numpy(), [3.0, 5.0])


def test_autograd_grad_wrt_intermediates():
    # The seed article's reverse sweep, node by node (section 4.3.3).
    t1, t2 = leaves()
    v1, v2, v3 = np.log(t1), t1 * t2, np.sin(t2)
    v4 = v1 + v2
    y = v4 - v3
    g = lambda out, node: da.autograd.grad(out, [node], retain_graph=True)[0].item()
    assert (g(y, v4), g(y, v3), g(v4, v2), g(v4, v1)) == (1.0, -1.0, 1.0, 1.0)
    assert g(v3, t2) == pytest.approx(np.cos(5.0))
    assert (g(v2, t1), g(v2, t2), g(v1, t1)) == (5.0, 2.0, 0.5)
    gv2, gt1 = da.autograd.grad(y * y, [v2, t1])         # an intermediate and a leaf
    assert gv2.item() == pytest.approx(2 * y.item())
    assert gt1.item() == pytest.approx(2 * y.item() * 5.5)
    with pytest.raises(NotImplementedError, match="autograd.grad"):
        (y * 1.0).backward(inputs=[v4])


def test_autograd_grad_wrt_one_output_of_a_multi_output_op():
    a = da.tensor(np.array([[2.0, 0.5], [0.5, 1.0]]), requires_grad=True)
    sign, logdet = np.linalg.slogdet(a)
    (g,) = da.autograd.grad(logdet * 3.0, logdet)
    assert g.item() == 3.0


def test_autograd_grad_input_must_require_grad():
    x = da.tensor(1.0)
    w = da.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        da.autograd.grad(x * w, x)


def test_connected_but_zero_gradient_is_zeros():
    x = da.tensor([1.0, -2.0], requires_grad=True)
    (g,) = da.autograd.grad(np.sign(x).sum() + (x * 0.0).sum(), x)
    np.testing.assert_array_equal(g.numpy(), [0.0, 0.0])


def test_no_grad():
    x = da.tensor(1.0, requires_grad=True)
    with da.autograd.no_grad():
        y = x * 2.0
    assert not y.requires_grad
    assert (x * 2.0).requires_grad


# ============================================================================
# create_graph: higher derivatives
# ============================================================================
def test_create_graph_second_derivative():
    x = da.tensor(2.0, requires_grad=True)
    y = x ** 3
    (g,) = da.autograd.grad(y, x, create_graph=True)
    assert g.requires_grad and g.item() == 12.0
    (h,) = da.autograd.grad(g, x, create_graph=True)
    assert h.item() == 12.0
    (k,) = da.autograd.grad(h, x)
    assert k.item() == 6.0


def test_create_graph_backward_then_backward_of_grad():
    x1, x2 = leaves()
    y = seed_fn(x1, x2)
    y.backward(create_graph=True)
    g1 = x1.grad                  # 1/x1 + x2, differentiable
    assert g1.requires_grad
    x1.grad = None
    x2.grad = None
    g1.backward()
    assert x1.grad.item() == pytest.approx(-1.0 / 4.0)
    assert x2.grad.item() == pytest.approx(1.0)


def test_create_graph_vector_hessian_rows():
    x = da.tensor([0.3, -0.7, 1.1], requires_grad=True)
    y = (np.sin(x) * x).sum() * (x * x).sum()
    (g,) = da.autograd.grad(y, x, create_graph=True)
    H = np.stack([da.autograd.grad(g, x, grad_outputs=e, retain_graph=True)[0].numpy()
                  for e in np.eye(3)])
    f = lambda v: (np.sin(v) * v).sum() * (v * v).sum()
    np.testing.assert_allclose(H, da.hessian(f)(x.numpy()), rtol=1e-12)


# ============================================================================
# tensors and functional transforms together
# ============================================================================
def test_tensor_inside_grad():
    def f(x):
        t = da.tensor(x, requires_grad=True)
        (g,) = da.autograd.grad(t ** 3, t)        # 3 x^2, still a function of x
        return g

    assert float(da.grad(f)(2.0)) == pytest.approx(12.0)


def test_tensor_backward_inside_grad_returns_grad():
    def f(x):
        t = da.tensor(x, requires_grad=True)
        (np.sin(t) * t).sum().backward()
        return t.grad.sum()

    x = np.array([0.2, 0.9])
    np.testing.assert_allclose(da.grad(f)(x), 2 * np.cos(x) - x * np.sin(x))


def test_grad_inside_tensor_code():
    # A functional grad of a function closing over a tape tensor: the
    # gradient it returns is still recorded on the tape.
    w = da.tensor(3.0, requires_grad=True)
    g = da.grad(lambda z: z * z * w)(2.0)     # 2 z w = 12, a function of w
    assert isinstance(g, da.Tensor) and g.item() == 12.0
    g.backward()
    assert w.grad.item() == 4.0


def test_tensors_in_threads_are_independent():
    import threading
    out = {}

    def work(k):
        x = da.tensor(float(k), requires_grad=True)
        for _ in range(200):
            x.grad = None
            (x * x * x).backward()
        out[k] = x.grad.item()

    ts = [threading.Thread(target=work, args=(k,)) for k in range(1, 5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out == {k: 3.0 * k * k for k in range(1, 5)}


def test_repr():
    x = da.tensor(1.5, requires_grad=True)
    assert repr(x) == "tensor(1.5, requires_grad=True)"
    assert "grad_fn=<multiply>" in repr(x * 2.0)
