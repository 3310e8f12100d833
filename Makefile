# make demo: install NumPy and matplotlib only (not Numba: its llvmlite alone
#            is 170 MB, and the demo's arrays are too small for the fused
#            kernels; dualad runs from this checkout), then run the quickstart
#            and the normal-mode example (spectrum saved as normal_modes.png).
# make test: install the test extra (no CUDA toolkit wheels: the CUDA tests
#            run in Numba's simulator) and run the suite with the doctests.
# make test-ptx: also install the CUDA toolkit wheels and compile the GPU
#            kernels to PTX.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP = $(BIN)/python -m pip install $(PIPFLAGS)
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test test-ptx bench lint clean venv

PIPFLAGS := -q --no-compile --disable-pip-version-check

# The venv gets no pip of its own unless a target needs one: the outer pip
# installs into it (--python, pip >= 22.3), which saves ~15 s and 17 MB.
$(BIN)/python:
	$(PY) -m venv --without-pip $(VENV)

$(DEMO_STAMP): $(BIN)/python pyproject.toml
	$(PY) -m pip --python $(BIN)/python install $(PIPFLAGS) numpy matplotlib || \
	  { $(BIN)/python -m ensurepip >/dev/null && $(PIP) numpy matplotlib; }
	touch $(DEMO_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip >/dev/null
	$(PIP) -e ".[test]"
	touch $(STAMP) $(DEMO_STAMP)

venv: $(STAMP)

demo: $(DEMO_STAMP)
	PYTHONPATH=. $(BIN)/python examples/quickstart.py
	PYTHONPATH=. $(BIN)/python examples/normal_modes.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not cuda" tests dualad; rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ] || exit $$rc
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q -m cuda tests; rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ] || exit $$rc

test-ptx: $(STAMP)
	$(PIP) -e ".[test,cuda-toolkit]"
	$(BIN)/python -m pytest -q tests/test_kernels.py -k compile

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]"
	@echo "== headline: each library's default threads =="
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m bench --threads 0
	@echo "== secondary: one thread per library =="
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m bench --threads 1

lint:
	$(BIN)/python -m ruff check dualad tests bench examples

clean:
	rm -rf $(VENV) build *.egg-info
