"""Fused kernels of ``da.jit`` programs on the GPU: the CUDA rendering of
each fused run agrees with the CPU kernel (in the Numba CUDA simulator), and
compiles to PTX for sm_80 and sm_90 (skipped without the CUDA toolkit)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import dualad as da
from dualad.mixed.fuse import _Fused, fuse_ops
from dualad.mixed.replay import record


def f(x):
    return np.sum(np.sin(x) * x ** 2 + np.cos(x) * (x * 3.0 - 1.0) ** 3)


def _fused_runs(fn, x, at=None):
    """(fused op, its input values) for each fused run of fn's program
    recorded at x, evaluated at ``at`` (default x)."""
    _, rep = record(fn, (x,))
    ops = fuse_ops(rep.ops, rep.outputs, rep.meta)
    env = {rep.inputs[0]: x if at is None else at}
    runs = []
    for impl, spec, params, slots, multi, _ in ops:
        args = [env[a] if a.__class__ is int else a.value for a in spec]
        out = impl(*args, **params)
        if isinstance(impl, _Fused):
            runs.append((impl, args))
            out = out[:-1]
        for s, o in zip(slots, out if multi else (out,)):
            env[s] = o
    return runs


@pytest.mark.cuda
def test_fused_cuda_kernels_match_cpu_in_simulator():
    from dualad.mixed import fuse_gpu
    x = np.linspace(-2.0, 2.0, 600)          # above MIN_SIZE; the simulator is slow
    runs = _fused_runs(da.grad(f), x)
    assert runs
    for fused, args in runs:
        kern = fuse_gpu.build(fused.spec)
        flat = [np.ravel(a) if isinstance(a, np.ndarray) else a for a in args]
        outs, ok = fuse_gpu.launch(fused.spec, kern, flat, x.size)
        want = fused(*args)
        assert ok == want[-1]
        for got, w in zip(outs, want[:-1]):
            np.testing.assert_allclose(got, np.ravel(w), rtol=1e-14, atol=1e-14)


@pytest.mark.cuda
def test_fused_cuda_guard_flag_in_simulator():
    from dualad.mixed import fuse_gpu
    # (the simulator runs Python's math: no division by zero or sin(inf)
    # in the kernel; an overflowing product is allowed)
    g = lambda x: np.sum((x * x) * (x * x) * 3.0 + x * 0.5)
    x = np.linspace(1.0, 2.0, 600)
    y = x.copy()
    y[3] = 1e100                              # x**4 overflows: a guarded value is inf
    with np.errstate(divide="ignore", invalid="ignore"):
        runs = _fused_runs(da.grad(g), x, at=y)
    guarded = [(fz, a) for fz, a in runs if fz.spec.guards]
    assert guarded
    oks = []
    for fused, args in guarded:
        kern = fuse_gpu.build(fused.spec)
        flat = [np.ravel(a) if isinstance(a, np.ndarray) else a for a in args]
        with np.errstate(all="ignore"):
            _, ok = fuse_gpu.launch(fused.spec, kern, flat, x.size)
            assert ok == fused(*args)[-1]
        oks.append(ok)
    assert not all(oks)                       # the flag caught the infinite partial


_PTX_SCRIPT = """
import numpy as np
from numba import cuda, float64, int32, void
import dualad as da
from dualad.mixed import fuse_gpu
from tests_jit_cuda_helper import runs
n = 0
for fused in runs():
    spec = fused.spec
    sig = [float64 if a in spec.scalars else float64[:] for a in spec.names]
    sig += [float64[:]] * len(spec.outs) + [int32[:]]
    for cc in ((8, 0), (9, 0)):
        ptx, _ = cuda.compile_ptx(fuse_gpu.python_kernel(spec), void(*sig), cc=cc)
        assert ".entry" in ptx
        n += 1
print("compiled", n)
"""


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                    reason="compile_ptx needs a process without the simulator")
def test_fused_kernels_compile_for_ampere_and_hopper(tmp_path, ptx_env):
    helper = tmp_path / "tests_jit_cuda_helper.py"
    helper.write_text(
        "import numpy as np, dualad as da\n"
        "from dualad.mixed.fuse import _Fused, fuse_ops\n"
        "from dualad.mixed.replay import record\n"
        "def runs():\n"
        "    f = lambda x: np.sum(np.sin(x) * x ** 2 + np.cos(x) * (x * 3.0 - 1.0) ** 3)\n"
        "    _, rep = record(da.grad(f), (np.linspace(-2, 2, 600),))\n"
        "    return [op[0] for op in fuse_ops(rep.ops, rep.outputs, rep.meta)\n"
        "            if isinstance(op[0], _Fused)]\n")
    env = dict(ptx_env)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.getcwd(), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "compiled" in res.stdout and not res.stdout.strip().endswith(" 0")
