"""Plain NumPy layers shared by the notebook scripts (MindSpore's nn.Dense
and nn.MSELoss, written with ``x @ w.T`` and ``np.mean``)."""
import numpy as np

import dualad as da


class Dense(da.Module):
    """``x @ weight.T (+ bias)``, weight of shape (out_channels, in_channels)."""

    def __init__(self, in_channels, out_channels, has_bias=True, seed=0):
        rng = np.random.default_rng(seed)
        self.weight = da.Parameter(rng.normal(0.0, 0.01, (out_channels, in_channels)),
                                   name="weight")
        self.has_bias = has_bias
        if has_bias:
            self.bias = da.Parameter(np.zeros(out_channels), name="bias")

    def construct(self, x):
        out = x @ self.weight.T
        if self.has_bias:
            out = out + self.bias
        return out


class MSELoss(da.Module):
    def construct(self, logits, labels):
        return np.mean((logits - labels) ** 2)


class Net(da.Module):
    """The notebook's network: Dense(3 -> 1, no bias) + MSE; returns (loss, logits)."""

    def __init__(self, in_channel, out_channel):
        self.fc = Dense(in_channel, out_channel, has_bias=False)
        self.loss = MSELoss()

    def construct(self, x, y):
        logits = self.fc(x).squeeze()
        loss = self.loss(logits, y)
        return loss, logits


class Net2(Net):
    """The same network returning ``loss + logits`` (what has_aux=False differentiates)."""

    def construct(self, x, y):
        logits = self.fc(x).squeeze()
        loss = self.loss(logits, y)
        return loss + logits


def article_graph(x1: float = 2.0, x2: float = 5.0):
    """The article's graph ``y = ln(x1) + x1 * x2 - sin(x2)`` on tape tensors,
    every intermediate kept: ``(t1, t2, v1, v2, v3, v4, y)``."""
    t1 = da.tensor(x1, requires_grad=True)
    t2 = da.tensor(x2, requires_grad=True)
    v1 = np.log(t1)
    v2 = t1 * t2
    v3 = np.sin(t2)
    v4 = v1 + v2
    return t1, t2, v1, v2, v3, v4, v4 - v3
