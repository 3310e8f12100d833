"""Training utilities (dualad/amp.py): loss scalers, all_finite, clip_by_global_norm."""
import math

import numpy as np
import pytest

import dualad as da
from dualad.compat.amp import DynamicLossScaler, StaticLossScaler, all_finite, clip_by_global_norm


# ============================================================================
# StaticLossScaler
# ============================================================================
def test_static_scale_unscale_pytrees():
    s = StaticLossScaler(1024.0)
    tree = {"a": np.array([1.0, 2.0]), "b": (3.0, [np.ones((2, 2))]), "c": None}
    scaled = s.scale(tree)
    assert scaled["c"] is None
    np.testing.assert_allclose(scaled["a"], [1024.0, 2048.0])
    assert scaled["b"][0] == 3072.0
    np.testing.assert_allclose(scaled["b"][1][0], 1024.0 * np.ones((2, 2)))
    back = s.unscale(scaled)
    np.testing.assert_allclose(back["a"], tree["a"])
    assert isinstance(back["b"], tuple) and isinstance(back["b"][1], list)


def test_static_keeps_float32():
    s = StaticLossScaler(1024.0)
    g = s.unscale((np.array([2048.0], dtype=np.float32),))
    assert g[0].dtype == np.float32


def test_static_scale_inside_grad():
    # the notebook's recipe: scale the loss, differentiate, unscale the grads
    s = StaticLossScaler(1024.0)
    w = da.Parameter(np.array([[2.0, 3.0, 4.0]]), name="w")
    x, y = np.array([[1.0, 2.0, 3.0]]), 19.0

    def forward(x):
        logits = (x @ w.T).squeeze()
        loss = np.mean((logits - y) ** 2)
        return s.scale(loss), logits

    (loss, logits), grads = da.value_and_grad(forward, None, weights=[w], has_aux=True)(x)
    np.testing.assert_allclose(loss, 1024.0)
    np.testing.assert_allclose(grads[0], [[2048.0, 4096.0, 6144.0]])
    np.testing.assert_allclose(s.unscale(grads)[0], [[2.0, 4.0, 6.0]])
    assert s.unscale(loss) == 1.0
    assert all_finite(s.unscale(grads))


def test_static_scale_validation_and_adjust():
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            StaticLossScaler(bad)
    with pytest.raises(TypeError):
        StaticLossScaler("big")
    s = StaticLossScaler(8.0)
    assert s.adjust(False) is False and s.scale_value == 8.0


# ============================================================================
# DynamicLossScaler: MindSpore's rule
# ============================================================================
def reference(scale, factor, window, steps):
    """MindSpore DynamicLossScaler.adjust, written out independently."""
    counter, out = 0, []
    for finite in steps:
        if finite:
            grown = scale * factor
            if counter == window - 1 and math.isfinite(grown):
                scale = grown
            counter = (counter + 1) % window
        else:
            scale = max(1.0, scale / factor)
            counter = 0
        out.append(scale)
    return out


@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_dynamic_follows_mindspore_rule(window):
    rng = np.random.default_rng(window)
    steps = list(rng.random(40) > 0.2)
    s = DynamicLossScaler(2.0 ** 10, scale_factor=2, scale_window=window)
    got = []
    for finite in steps:
        assert s.adjust(finite) is True
        got.append(s.scale_value)
    assert got == reference(2.0 ** 10, 2.0, window, steps)


def test_dynamic_overflow_halves_and_resets_counter():
    s = DynamicLossScaler(1024.0, scale_factor=2, scale_window=3)
    s.adjust(True)
    s.adjust(True)
    assert s.counter == 2 and s.scale_value == 1024.0
    s.adjust(False)
    assert s.counter == 0 and s.scale_value == 512.0
    s.adjust(True)
    s.adjust(True)
    assert s.scale_value == 512.0          # the counter restarted: 2 of 3
    s.adjust(True)
    assert s.scale_value == 1024.0 and s.counter == 0


def test_dynamic_never_below_one_and_never_inf():
    s = DynamicLossScaler(4.0, scale_factor=2, scale_window=10)
    for _ in range(5):
        s.adjust(False)
    assert s.scale_value == 1.0
    big = DynamicLossScaler(1e308, scale_factor=10, scale_window=1)
    big.adjust(True)
    assert big.scale_value == 1e308


def test_dynamic_scales_with_current_value():
    s = DynamicLossScaler(1024.0, scale_window=1)
    s.adjust(True)
    assert s.scale_value == 2048.0
    np.testing.assert_allclose(s.scale(np.array([1.0])), [2048.0])
    np.testing.assert_allclose(s.unscale(np.array([2048.0])), [1.0])


def test_dynamic_accepts_numpy_bool_and_all_finite():
    s = DynamicLossScaler(16.0, scale_window=1000)
    s.adjust(np.bool_(False))
    assert s.scale_value == 8.0
    s.adjust(all_finite((np.array([np.nan]),)))
    assert s.scale_value == 4.0


def test_dynamic_validation():
    with pytest.raises(TypeError, match="all_finite"):
        DynamicLossScaler(16.0).adjust((np.ones(2),))
    with pytest.raises(ValueError):
        DynamicLossScaler(16.0, scale_window=0)
    with pytest.raises(ValueError):
        DynamicLossScaler(16.0, scale_factor=0.5)


# ============================================================================
# all_finite
# ============================================================================
def test_all_finite():
    assert all_finite((np.ones(3), [1.0, {"k": np.zeros((2, 2))}]))
    assert not all_finite((np.ones(3), [np.array([1.0, np.inf])]))
    assert not all_finite({"a": np.array([np.nan])})
    assert not all_finite([-math.inf])
    assert all_finite(())
    assert all_finite((None, np.ones(1)))
    assert isinstance(all_finite(np.ones(1)), bool)


# ============================================================================
# clip_by_global_norm
# ============================================================================
def _norm(tree):
    leaves = [np.asarray(v) for v in _leaves(tree)]
    return math.sqrt(sum(float(np.sum(v ** 2)) for v in leaves))


def _leaves(tree):
    if isinstance(tree, dict):
        for k in sorted(tree):
            yield from _leaves(tree[k])
    elif isinstance(tree, (tuple, list)):
        for v in tree:
            yield from _leaves(v)
    elif tree is not None:
        yield tree


def test_clip_keeps_structure_and_clips_global_norm():
    grads = {"w": np.array([[3.0, 0.0]]), "b": (np.array([4.0]), [np.array([12.0, 0.0])])}
    out = clip_by_global_norm(grads, clip_norm=1.0)
    assert set(out) == {"w", "b"} and isinstance(out["b"], tuple)
    assert isinstance(out["b"][1], list) and out["w"].shape == (1, 2)
    assert _norm(out) == pytest.approx(1.0)
    np.testing.assert_allclose(out["w"], [[3.0 / 13.0, 0.0]])
    np.testing.assert_allclose(out["b"][1][0], [12.0 / 13.0, 0.0])


def test_clip_leaves_small_gradients_unchanged():
    grads = (np.array([0.3, 0.4]),)
    out = clip_by_global_norm(grads, clip_norm=1.0)
    np.testing.assert_array_equal(out[0], grads[0])
    out = clip_by_global_norm((np.array([3.0, 4.0]),), clip_norm=10.0)
    np.testing.assert_array_equal(out[0], [3.0, 4.0])


def test_clip_zero_gradients_stay_zero():
    grads = (np.zeros((2, 3)), [np.zeros(4)])
    out = clip_by_global_norm(grads)
    assert not np.isnan(out[0]).any() and not np.isnan(out[1][0]).any()
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[1][0], 0.0)
    # a zero leaf next to large ones stays zero too
    out = clip_by_global_norm((np.zeros(2), np.array([30.0, 40.0])))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], [0.6, 0.8])


def test_clip_notebook_gradient():
    (g,) = clip_by_global_norm((np.array([[2.0, 4.0, 6.0]]),))
    np.testing.assert_allclose(g, np.array([[2.0, 4.0, 6.0]]) / math.sqrt(56.0))


def test_clip_float32_none_and_validation():
    (g, n) = clip_by_global_norm((np.array([30.0, 40.0], dtype=np.float32), None))
    assert g.dtype == np.float32 and n is None
    np.testing.assert_allclose(g, [0.6, 0.8], rtol=1e-6)
    assert clip_by_global_norm((None,)) == (None,)
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="clip_norm"):
            clip_by_global_norm((np.ones(2),), bad)


def test_clip_is_differentiable():
    f = lambda g: clip_by_global_norm((g, 2.0 * g), 1.0)[1].sum()
    x = np.array([1.0, 2.0])
    got = da.grad(f)(x)
    eps = 1e-6
    fd = [(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


def test_exported_from_dualad():
    assert da.clip_by_global_norm is clip_by_global_norm
    assert da.amp.StaticLossScaler is StaticLossScaler
