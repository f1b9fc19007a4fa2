# One entry point for people and CI. `make run` serves on the embedded defaults,
# `make test` lints and runs every test (doctests included). Both install what they need.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0
# Where torch comes from: the package index pip is configured with (on this project's machines it serves the
# CPU build). On PyPI's index the pin pulls the CUDA build (gigabytes): `make run TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
TORCH_INDEX ?=

.PHONY: run test lint bench clean

# The service and library: torch pinned here (pyproject only gives a range).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e .
	touch $@

# Tests, lint, the benchmarks' baselines (river, statsmodels, matplotlib) and Ray (the cluster).
$(VENV)/.dev-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,bench,cluster]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/tbptt-online serve

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

# Every benchmark at full size (about 10 minutes on 2 cores), results under benchmarks/results/.
bench: $(VENV)/.dev-installed
	$(PY) -m benchmarks.throughput
	$(PY) -m benchmarks.accuracy
	$(PY) -m benchmarks.truncation_wall
	$(PY) -m benchmarks.advisor_overhead
	$(PY) -m benchmarks.http_load
	$(PY) -m benchmarks.cluster_load
	$(PY) -m benchmarks.feed_one_series

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
