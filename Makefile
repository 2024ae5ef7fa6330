# Two commands matter: `make demo` (explain a bundled photo) and `make test` (the whole suite).
# Each creates or updates the virtual environment in .venv from this repository's own files; `make test`
# also keeps .venv-oracles, a second environment for the oracles that need torchvision (pytorch-grad-cam).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ORACLES := .venv-oracles
ORACLES_STAMP := $(ORACLES)/.installed

BROWSER := /usr/bin/chromium

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

$(ORACLES_STAMP): pyproject.toml requirements-oracles.txt
	@test -x $(ORACLES)/bin/python || $(PYTHON) -m venv $(ORACLES)
	$(ORACLES)/bin/python -m pip install --quiet --upgrade pip
	$(ORACLES)/bin/python -m pip install --quiet -r requirements-oracles.txt
	@touch $(ORACLES_STAMP)

# Debian's Chromium for the browser tests (the report and the app), driven by Playwright; CI runs as root.
$(BROWSER):
	@command -v chromium >/dev/null || { apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }

demo: $(STAMP)
	$(BIN)/heatlens explain --sample cat --out heatlens-demo

test: $(STAMP) $(ORACLES_STAMP) $(BROWSER)
	$(BIN)/ruff check src tests benchmarks examples docs
	HEATLENS_BROWSER=required $(BIN)/python -m pytest
	HEATLENS_ORACLES=required $(ORACLES)/bin/python -m pytest tests/methods/test_cam_oracle.py tests/metrics/test_road_oracle.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs

bench: $(STAMP)
	$(BIN)/python benchmarks/gradcam.py

clean:
	rm -rf $(VENV) $(ORACLES) heatlens-demo .pytest_cache test-artifacts
