# One entry point for people and CI. `make run` serves on the embedded defaults,
# `make test` lints and runs every test (doctests included). Both install what they need.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0

.PHONY: run test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)  # the CPU build; pyproject only gives a range
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/tbptt-online serve

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

# Every benchmark at full size (about 10 minutes on 2 cores), results under benchmarks/results/.
bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.throughput
	$(PY) -m benchmarks.accuracy
	$(PY) -m benchmarks.truncation_wall

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
