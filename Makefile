# Two entry points, each of which sets itself up on a fresh machine:
#   make run   - start the service (API on :8000 and one worker) on embedded defaults
#   make test  - lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-service

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/backprop up

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two processes for the tests that tolerate a neighbour, then, alone, those that
# measure time or load (marked serial).
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not serial" --durations=15
	$(BIN)/python -m pytest -q -m serial --durations=5

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.core

bench-service: $(VENV)/.installed-bench
	$(BIN)/python -m bench.service
