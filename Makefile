# Thin entry points. The README documents each target.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv lint typecheck crds test test-unit test-integration bench demo image \
        cluster-build cluster-up cluster-down cluster-status kind-up clean

help:
	@echo "make demo          run the demo (control plane, Zoom simulator, operator, a bot)"
	@echo "make test          lint, type-check and run every test (unit, integration, e2e)"
	@echo "make bench         run the benchmarks (never part of make test)"
	@echo "make cluster-up    start the local control plane (builds it once, cached)"
	@echo "make cluster-down  stop it"
	@echo "make image         build the bot image with podman"
	@echo "make kind-up       for users with Docker: a kind cluster instead (cannot run here)"

$(STAMP): pyproject.toml
	@echo "==> installing Python packages into $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

lint: $(STAMP)
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	@echo "==> mypy"
	@$(VENV)/bin/mypy

# Regenerate crds/ from the pydantic models (a unit test fails when they drift).
crds: $(STAMP)
	@$(PY) -m meetingbot_operator.crdgen crds

cluster-build: $(STAMP)
	@$(PY) -m tests.cluster build

cluster-up: $(STAMP)
	@$(PY) -m tests.cluster up

cluster-down: $(STAMP)
	@$(PY) -m tests.cluster down

cluster-status: $(STAMP)
	@$(PY) -m tests.cluster status

kind-up:
	@bash tests/cluster/kind-up.sh

# The README's test command. Builds the control plane first (cached) so its progress is visible.
test: lint typecheck cluster-build
	@echo "==> pytest"
	@$(PY) -m pytest -m "not bench" $(PYTEST_ARGS)

test-unit: $(STAMP)
	@$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: $(STAMP) cluster-build
	@$(PY) -m pytest -m integration $(PYTEST_ARGS)

bench: $(STAMP) cluster-build
	@$(PY) -m pytest -m bench -s tests/bench $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
