"""MindSpore notebook "梯度求导" (mindspore-gradient-notebook-zh.ipynb), sections
mindspore.grad and mindspore.value_and_grad: a Dense(3 -> 1, no bias) + MSE
network returning (loss, logits), with weight [[2, 3, 4]], x = [[1, 2, 3]], y = 19.

grads 1-7 (grad_position 0, 1, (0, 1), weights, both; has_aux True / False),
Net2 (loss + logits), grads 8 (ValueError) and value_and_grad.

Run: ``python examples/seeds/notebook_grad.py``
"""
import numpy as np
from _nets import Net, Net2
from _show import section, show

import dualad as da

net = Net(3, 1)
net.fc.weight.set_data(np.array([[2.0, 3.0, 4.0]]))   # 给全连接的weight设置固定值

section("weight")
for name, param in net.named_parameters():
    print("name:", name)
    show("weight_data", param.value)
x = np.array([[1.0, 2.0, 3.0]])
y = np.array(19.0)

loss, logits = net(x, y)
section("output")
show("loss", loss)
show("logits", logits)
weights = net.trainable_params()

# The notebook's grads 1-6: every (grad_position, weights) row of the table.
CASES = [("grad_position=0, has_aux=True", 0, None),
         ("grad_position=1", 1, None),
         ("grad_position=(0, 1)", (0, 1), None),
         ("grad_position=None, weights", None, weights),
         ("grad_position=0, weights", 0, weights),
         ("grad_position=(0, 1), weights", (0, 1), weights)]
for k, (title, position, w) in enumerate(CASES, start=1):
    section(f"grads {k}: {title}")
    grad, logit = da.grad(net, grad_position=position, weights=w, has_aux=True)(x, y)
    show(f"grads{k}_grad", grad)
    show(f"grads{k}_logit", logit)

section("grads 7: has_aux=False (loss + logits is differentiated)")
grad = da.grad(net, grad_position=0, weights=None, has_aux=False)(x, y)
show("grads7_grad", grad)

section("Net2: returns loss + logits")
net2 = Net2(3, 1)
net2.fc.weight.set_data(np.array([[2.0, 3.0, 4.0]]))
grad = da.grad(net2, grad_position=0, weights=None, has_aux=False)(x, y)
show("net2_grad", grad)

section("grads 8: grad_position=None, weights=None")
try:
    da.grad(net, grad_position=None, weights=None, has_aux=True)(x, y)
    print("grads8_error: none")
except ValueError as e:
    print("grads8_error: ValueError:", e)

section("value and grad")
value_and_grad_func = da.value_and_grad(net, grad_position=(0, 1), weights=weights,
                                        has_aux=True)
value, grad = value_and_grad_func(x, y)
show("vg_value", value)
show("vg_grad", grad)
