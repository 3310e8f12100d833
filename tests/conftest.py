import os
import warnings

import numpy as np
import pytest

try:
    from numba.core.errors import NumbaPerformanceWarning
    warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)
except Exception:  # pragma: no cover - numba missing
    pass


def lj_flat(x):
    """Lennard-Jones energy of flat positions (3N,), pairs by triu indices:
    the shared test potential."""
    r = x.reshape(-1, 3)
    i, j = np.triu_indices(r.shape[0], 1)
    d = r[i] - r[j]
    s = 1.0 / np.sqrt(np.sum(d * d, axis=1))
    return np.sum(4.0 * (s ** 12 - s ** 6))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def fresh_cache():
    """dualad's caches (plans, patterns, colorings, replays) empty before and
    after the test: for tests that count passes or assert a first call."""
    from dualad.mixed.cache import clear_cache
    clear_cache()
    yield
    clear_cache()


CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _real_gpu() -> bool:
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    # `make test` runs the cuda-marked tests in a second process with the
    # simulator switched on; in any other process they need a real GPU.
    if CUDASIM or not any("cuda" in item.keywords for item in items):
        return
    if _real_gpu():
        return
    skip = pytest.mark.skip(reason="needs NUMBA_ENABLE_CUDASIM=1 (run by `make test`) or a GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def cupy_usable() -> bool:
    """GPU.md's rule: import works, a device exists, and a tiny op runs."""
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() <= 0:
            return False
        return bool((cupy.arange(3) + 1).get()[2] == 3)
    except Exception:
        return False


_PTX_PROBE = """
from numba import cuda, float64, void
def k(x):
    x[0] = 1.0
cuda.compile_ptx(k, void(float64[:]), cc=(8, 0))
"""


@pytest.fixture(scope="session")
def ptx_env() -> dict:
    """The environment for a ``compile_ptx`` subprocess (no simulator), or a
    skip when this machine has no CUDA toolkit (libNVVM/NVRTC: the wheels of
    ``make test-ptx`` / the ``cuda-toolkit`` extra, or a system CUDA; ``make
    test`` installs neither), probed once with a one-line kernel."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = subprocess.run([sys.executable, "-c", _PTX_PROBE], env=env, capture_output=True,
                           text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip("no CUDA toolkit (libNVVM/NVRTC): pip install -e '.[cuda-toolkit]' "
                    "or make test-ptx")
    return env

