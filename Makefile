# make demo: install into .venv and run the physics quickstart.
# make test: install with the test extra and run the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean venv

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not cuda" tests dualad; rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ] || exit $$rc
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -q -m cuda tests; rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ] || exit $$rc

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
