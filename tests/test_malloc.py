"""glibc's malloc thresholds set at import (dualad/kernels/malloc.py): on by
default on glibc, off with DUALAD_MALLOC=0, and the user's own MALLOC_*
environment wins."""
import os
import subprocess
import sys

import pytest

from dualad.kernels import malloc

_GLIBC = malloc._glibc() is not None


def _setting_in_fresh_process(**env) -> str:
    code = "import dualad.kernels.malloc as m, dualad; print(m._done[0])"
    full = {k: v for k, v in os.environ.items()
            if k not in ("DUALAD_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.skipif(not _GLIBC, reason="glibc's mallopt only")
def test_set_at_import_on_glibc():
    assert _setting_in_fresh_process() == "True"


def test_opt_out_and_user_settings_win():
    assert _setting_in_fresh_process(DUALAD_MALLOC="0") == "False"
    assert _setting_in_fresh_process(MALLOC_TRIM_THRESHOLD_="131072") == "False"


def test_the_values_are_glibcs_own_ceilings():
    assert malloc.MMAP_THRESHOLD == 32 << 20 and malloc.TRIM_THRESHOLD == 2 * malloc.MMAP_THRESHOLD
