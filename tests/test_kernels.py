"""Fused kernels: generated from the expression table, checked against the
registry's partials, identical results to plain NumPy, and the GPU kernels
in the CUDA simulator and compiled to PTX for real targets."""
import os
import subprocess
import sys

import numpy as np
import pytest

import dualad as da
from dualad.core.registry import registry
from dualad.kernels import cpu, value_and_partial
from dualad.kernels.table import EXPRESSIONS, PARTIALS
from dualad.rules.ufuncs import add_p, cos_p, sin_p, sqrt_p, square_p

DOMAIN = {"log": (0.2, 3.0), "log1p": (-0.5, 3.0), "sqrt": (0.2, 3.0)}
FUSED = sorted(EXPRESSIONS, key=lambda p: p.name)


def _inputs(prim, dtype=np.float64, n=257):
    lo, hi = DOMAIN.get(prim.name, (-1.2, 1.2))
    return np.linspace(lo, hi, n, dtype=dtype)


@pytest.mark.parametrize("prim", FUSED, ids=lambda p: p.name)
def test_kernel_matches_registry_partials(prim):
    x = _inputs(prim)
    value, partial = cpu.value_and_partial(prim, x)
    want_value = prim.impl(x)
    (want_partial,) = prim.partials(want_value, x)
    np.testing.assert_allclose(value, want_value, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(partial, np.broadcast_to(want_partial, x.shape),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("prim", sorted(PARTIALS, key=lambda p: p.name), ids=lambda p: p.name)
def test_partial_expressions_match_registry_partials(prim):
    # the one kernel-side copy of each first partial (eager and Laplacian
    # kernels) evaluated as written, against the registry's partials
    import math
    x = _inputs(prim)
    y = prim.impl(x)
    (want,) = prim.partials(y, x)
    got = [eval(PARTIALS[prim], {"math": math}, {"x": float(a), "y": float(b)})  # noqa: S307
           for a, b in zip(x, y)]
    np.testing.assert_allclose(got, np.broadcast_to(want, x.shape), rtol=1e-13, atol=1e-15)


def test_every_fused_primitive_has_a_kernel():
    fused = {p for p in registry.values() if p.fused}
    assert fused == set(EXPRESSIONS)


def test_float32_kernel_stays_float32():
    value, partial = cpu.value_and_partial(sin_p, _inputs(sin_p, np.float32))
    assert value.dtype == np.float32 and partial.dtype == np.float32


def test_numba_and_numpy_paths_agree_in_both_modes():
    x = np.random.default_rng(1).standard_normal((40, 30))
    t = np.random.default_rng(2).standard_normal((40, 30))
    f = lambda x: np.sum(np.sin(x) * np.tanh(x) + np.exp(-np.square(x)) + np.sqrt(x * x + 1.0))
    results = {}
    try:
        for mode in ("numpy", "numba"):
            da.set_kernels(mode)
            results[mode] = (da.grad(f)(x), da.jvp(f, (x,), (t,))[1])
    finally:
        da.set_kernels("auto")
    np.testing.assert_allclose(results["numba"][0], results["numpy"][0], rtol=1e-13)
    np.testing.assert_allclose(results["numba"][1], results["numpy"][1], rtol=1e-13)


def test_auto_mode_skips_small_arrays_and_unknown_types():
    assert value_and_partial(sin_p, np.ones(3)) is None          # below min_size
    assert value_and_partial(sin_p, np.ones(3, dtype=int)) is None
    assert value_and_partial(add_p, np.ones(10**5)) is None       # no kernel for add
    assert value_and_partial(sin_p, np.ones(10**5)) is not None


def test_set_kernels_rejects_unknown_mode():
    with pytest.raises(ValueError, match="auto, numpy, numba"):
        da.set_kernels("cuda-magic")


# ----------------------------------------------------------------------------
# GPU kernels: simulator (marker cuda) and real-target compilation
# ----------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("prim", [sin_p, cos_p, sqrt_p, square_p], ids=lambda p: p.name)
def test_gpu_kernel_in_simulator(prim):
    from dualad.kernels import gpu
    x = _inputs(prim, n=300)                  # a few hundred threads: the simulator is slow
    out, d = np.empty_like(x), np.empty_like(x)
    gpu.launch(prim, x, out, d)
    want, want_d = cpu.value_and_partial(prim, x)
    np.testing.assert_allclose(out, want, rtol=1e-14)
    np.testing.assert_allclose(d, want_d, rtol=1e-14)


@pytest.mark.cuda
@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                    reason="bounds checks exist only in the simulator")
def test_gpu_kernel_out_of_bounds_is_caught_by_simulator():
    from numba import cuda

    from dualad.kernels import gpu
    x = np.ones(64)
    with pytest.raises(IndexError):
        gpu.build(sin_p)[1, 64](x, np.empty(8), np.empty(64))   # out too short
    assert cuda.is_available() or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


_PTX_SCRIPT = """
from numba import cuda, float32, float64, void
from dualad.kernels import gpu
from dualad.kernels.table import EXPRESSIONS
for prim in EXPRESSIONS:
    for ty in (float64, float32):
        for cc in ((9, 0), (8, 0)):
            ptx, _ = cuda.compile_ptx(gpu.python_kernel(prim), void(ty[:], ty[:], ty[:]), cc=cc)
            assert ".entry" in ptx, prim.name
print("compiled", len(EXPRESSIONS))
"""


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                    reason="compile_ptx needs a process without the simulator")
def test_gpu_kernels_compile_for_hopper_and_ampere(ptx_env):
    env = ptx_env
    res = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"compiled {len(EXPRESSIONS)}" in res.stdout


def test_use_kernels_is_per_thread_and_restores() -> None:
    import threading

    from dualad.kernels import kernel_mode, use_kernels
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        with use_kernels("numpy"):
            seen["worker"] = kernel_mode()
            inside.set()
            release.wait(5)
        seen["worker_after"] = kernel_mode()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    seen["main"] = kernel_mode()        # the worker's block does not leak here
    release.set()
    t.join()
    assert seen == {"worker": "numpy", "main": "auto", "worker_after": "auto"}
    with pytest.raises(ValueError, match="unknown kernel mode"):
        use_kernels("fast")
