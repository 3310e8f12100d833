"""No device-to-host synchronisation per operation: the 0*inf guards of
``multiply`` and the singular ops do not pull a finiteness flag back from a
device array; they take the masked path on the device instead.

CuPy is simulated with the NumPy namespace: ``sys.modules["cupy"]`` is NumPy,
so every ndarray counts as a device array (``namespace_of`` returns NumPy)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import dualad as da
from dualad.core import backend


@pytest.fixture
def fake_device(monkeypatch):
    calls = []
    real = backend.finite_value

    def spy(v):
        if isinstance(v, np.ndarray):         # (NumPy scalars stand for host scalars)
            calls.append(type(v))
        return real(v)

    monkeypatch.setitem(sys.modules, "cupy", np)
    monkeypatch.setattr(backend, "finite_value", spy)
    return calls


def f(x):
    return np.sum(np.sqrt(x) * x + np.log(x) * np.sin(x) + x / (1.0 + x * x))


def test_no_finiteness_read_per_op_on_device(fake_device):
    x = np.linspace(0.5, 2.0, 7)
    g = da.grad(f)(x)
    hv = da.hvp(f, (x,), (np.cos(x),))[1]
    jv = da.jvp(f, (x,), (np.ones(7),))[1]
    assert fake_device == []                  # no host read of a device value
    sys.modules.pop("cupy")                   # (monkeypatch restores it)
    np.testing.assert_allclose(g, da.grad(f)(x), rtol=1e-15)
    np.testing.assert_allclose(hv, da.hvp(f, (x,), (np.cos(x),))[1], rtol=1e-14)
    np.testing.assert_allclose(jv, da.jvp(f, (x,), (np.ones(7),))[1], rtol=1e-15)


def test_masked_path_keeps_zero_times_inf_safe(fake_device):
    # d/dv0 of v0 * sqrt(v1) at v1 = 0 along e0 is finite; the e1 entry is inf
    g = da.grad(lambda v: v[0] * np.sqrt(v[1]))(np.array([2.0, 0.0]))
    assert g[0] == 0.0 and np.isinf(g[1])
    assert fake_device == []


def test_host_arrays_still_take_the_cheap_path():
    calls = []
    real = backend.finite_value
    try:
        backend.finite_value = lambda v: (calls.append(1), real(v))[1]
        da.grad(f)(np.linspace(0.5, 2.0, 7))
    finally:
        backend.finite_value = real
    assert calls                               # NumPy: tested, no mask needed
