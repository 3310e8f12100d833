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

section("grads 1: grad_position=0, has_aux=True")
grad, logit = da.grad(net, grad_position=0, weights=None, has_aux=True)(x, y)
show("grads1_grad", grad)
show("grads1_logit", logit)

section("grads 2: grad_position=1")
grad, logit = da.grad(net, grad_position=1, weights=None, has_aux=True)(x, y)
show("grads2_grad", grad)
show("grads2_logit", logit)

section("grads 3: grad_position=(0, 1)")
grad, logit = da.grad(net, grad_position=(0, 1), weights=None, has_aux=True)(x, y)
show("grads3_grad", grad)
show("grads3_logit", logit)

section("grads 4: grad_position=None, weights")
grad, logit = da.grad(net, grad_position=None, weights=weights, has_aux=True)(x, y)
show("grads4_grad", grad)
show("grads4_logit", logit)

section("grads 5: grad_position=0, weights")
grad, logit = da.grad(net, grad_position=0, weights=weights, has_aux=True)(x, y)
show("grads5_grad", grad)
show("grads5_logit", logit)

section("grads 6: grad_position=(0, 1), weights")
grad, logit = da.grad(net, grad_position=(0, 1), weights=weights, has_aux=True)(x, y)
show("grads6_grad", grad)
show("grads6_logit", logit)

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
