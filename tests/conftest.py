import os
import warnings

import numpy as np
import pytest

try:
    from numba.core.errors import NumbaPerformanceWarning
    warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)
except Exception:  # pragma: no cover - numba missing
    pass


@pytest.fixture
def rng():
    return np.random.default_rng(0)


CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
