"""MindSpore notebook "梯度求导" (mindspore-gradient-notebook-zh.ipynb), sections
loss scale, 梯度裁剪 (gradient clipping) and 梯度累积 (gradient accumulation),
on the notebook's Dense(3 -> 1, no bias) + MSE network.

- StaticLossScaler(1024): scaled loss and gradients, unscale, all_finite
- DynamicLossScaler: MindSpore's adjust rule over a run with an overflow
- clip_by_global_norm(grad): same structure, global norm clipped to 1
- gradient accumulation: mini-batch gradients summed over 2 mini-batches of 2
  samples equal the full-batch gradient; then one SGD step

Run: ``python examples/seeds/notebook_training.py``
"""
import numpy as np
from _nets import Net
from _show import section, show

import dualad as da
from dualad.compat.amp import DynamicLossScaler, StaticLossScaler, all_finite

net = Net(3, 1)
net.fc.weight.set_data(np.array([[2.0, 3.0, 4.0]]))
x = np.array([[1.0, 2.0, 3.0]])
y = np.array(19.0)

# ---------------------------------------------------------------------------
section("loss scale: StaticLossScaler(1024.)")
loss_scale = StaticLossScaler(1024.0)


def forward_fn(x, y):
    loss, logits = net(x, y)
    loss = loss_scale.scale(loss)
    return loss, logits


show("loss_unscaled", net(x, y)[0])
value_and_grad_func = da.value_and_grad(forward_fn, grad_position=None,
                                        weights=net.trainable_params(), has_aux=True)
(loss, logits), grad = value_and_grad_func(x, y)
show("scaled_loss", loss)
show("scaled_grad", grad)
section("unscale")
loss = loss_scale.unscale(loss)
grad = loss_scale.unscale(grad)
show("unscaled_loss", loss)
show("unscaled_grad", grad)
# 检查是否溢出,无溢出的话返回True
state = all_finite(grad)
show("all_finite", state)
show("all_finite_overflow", all_finite((np.array([[np.inf, 0.0, 1.0]]),)))

# ---------------------------------------------------------------------------
section("DynamicLossScaler(1024, scale_factor=2, scale_window=2)")
scaler = DynamicLossScaler(1024.0, scale_factor=2, scale_window=2)
steps = [True, True, False, True, False, True, True]
scales = []
for finite in steps:
    scaler.adjust(finite)
    scales.append(scaler.scale_value)
show("dynamic_steps", [float(s) for s in steps])
show("dynamic_scales", scales)

# ---------------------------------------------------------------------------
section("梯度裁剪: clip_by_global_norm(grad)")
clipped = da.clip_by_global_norm(grad)
show("clipped_grad", clipped)
show("clipped_norm", np.sqrt(sum(np.sum(g ** 2) for g in clipped)))
show("clip_zero", da.clip_by_global_norm((np.zeros((1, 3)), np.zeros(2))))

# ---------------------------------------------------------------------------
section("梯度累积: 2 mini-batches of 2 samples vs the full batch of 4")
xs = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [3.0, 0.0, -1.0], [1.0, 1.0, 1.0]])
ys = np.array([19.0, 5.0, 1.0, 9.0])
weights = net.trainable_params()
grad_fn = da.grad(net, grad_position=None, weights=weights, has_aux=True)
accum_steps = 2
accumulated = None
for i in range(accum_steps):
    batch = slice(2 * i, 2 * i + 2)
    (g,), _ = grad_fn(xs[batch], ys[batch])
    g = g / accum_steps                          # the mean over mini-batches
    accumulated = g if accumulated is None else accumulated + g
(full,), _ = grad_fn(xs, ys)
show("accum_grad", accumulated)
show("full_grad", full)
lr = 0.01
net.fc.weight.set_data(net.fc.weight.value - lr * accumulated)   # one SGD step
show("updated_weight", net.fc.weight.value)
