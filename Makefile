# Two commands matter: `make demo` (explain a bundled photo) and `make test` (the whole suite).
# Each creates or updates the virtual environment in .venv from this repository's own files.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BROWSER := /usr/bin/chromium

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

# Debian's Chromium for the browser tests (the report and the app), driven by Playwright; CI runs as root.
$(BROWSER):
	@command -v chromium >/dev/null || { apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }

demo: $(STAMP)
	$(BIN)/heatlens explain --sample cat --out heatlens-demo

# The oracles and the browser are required here: a broken oracle or a missing chromium fails instead of skipping.
# Keras' backend is per process, so the Keras-on-JAX tests run in a second pytest (none collected fails it).
test: $(STAMP) $(BROWSER)
	$(BIN)/ruff check src tests benchmarks examples docs
	$(BIN)/python -m mypy
	HEATLENS_BROWSER=required HEATLENS_ORACLES=required $(BIN)/python -m pytest
	KERAS_BACKEND=jax HEATLENS_JAX=required $(BIN)/python -m pytest tests/models/adapters/jax tests/methods/test_contract.py -k keras

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs
	$(BIN)/python -m mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/gradcam.py
	KERAS_BACKEND=jax $(BIN)/python benchmarks/gradcam_keras_jax.py

clean:
	rm -rf $(VENV) heatlens-demo .pytest_cache test-artifacts
