# Thin entry points. The README documents each target.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help prereqs sim-image venv web lint typecheck crds test test-unit test-integration bench bench-large chaos demo image operator-image \
        cluster-build tools-build cluster-up cluster-down cluster-status kind-up clean release

help:
	@echo "make demo          run the demo (control plane, Zoom simulator, operator, a bot)"
	@echo "make test          lint, type-check and run every test (unit, integration, e2e)"
	@echo "make bench         run the benchmarks (never part of make test)"
	@echo "make bench-large   the burst with 10 000 bots (BENCH_BOTS), outside make bench"
	@echo "make chaos         faults in turn on the real node for CHAOS_SECONDS (240), then invariants"
	@echo "make cluster-up    start the local control plane (builds it once, cached)"
	@echo "make cluster-down  stop it"
	@echo "make image         build the bot image with podman"
	@echo "make sim-image     build the Zoom simulator's sandbox image"
	@echo "make release       images, chart, SBOMs, signatures, pushed (REGISTRY, COSIGN_KEY; docs/release.md)"
	@echo "make kind-up       for users with Docker: a kind cluster instead (cannot run here)"

$(STAMP): pyproject.toml contract/pyproject.toml api/pyproject.toml operator/pyproject.toml \
          client/pyproject.toml bot-image/pyproject.toml
	@echo "==> installing Python packages into $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e ./contract -e ./api -e ./operator -e ./client \
		-e ./bot-image -e '.[dev]'
	@touch $@

venv: $(STAMP)

# The bot page's npm packages (the Zoom Meeting SDK), from the lock file; never committed.
WEB_STAMP := bot-image/web/node_modules/.installed
$(WEB_STAMP): bot-image/web/package.json bot-image/web/package-lock.json
	@echo "==> npm ci in bot-image/web"
	@cd bot-image/web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

web: $(WEB_STAMP)

# The bot image, with podman (a Debian base is bootstrapped locally when BASE_IMAGE is unset).
image:
	@bash bot-image/build.sh

operator-image:
	@IMAGE=$${IMAGE:-localhost/meetingbot-operator:dev} DOCKERFILE=operator/Dockerfile bash bot-image/build.sh

# The Zoom simulator as a sandbox image (the chart runs it with sandbox.enabled=true).
sim-image:
	@IMAGE=$${IMAGE:-localhost/meetingbot-zoomsim:dev} DOCKERFILE=devenv/zoomsim/Dockerfile bash bot-image/build.sh

# The operator and sandbox images (PLATFORMS), the chart, an SBOM per image, all signed with
# COSIGN_KEY and pushed to REGISTRY (devenv/release.py, docs/release.md).
release: prereqs $(STAMP) tools-build
	@$(PY) -m devenv.release

lint: $(STAMP)
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	@echo "==> mypy"
	@$(VENV)/bin/mypy

# Regenerate crds/ (canonical), the chart's copy and docs/reference.md from the models
# (a test fails when any is stale).
crds: $(STAMP)
	@$(PY) -m meetingbot_operator.crdgen

cluster-build: $(STAMP)
	@$(PY) -m devenv.cluster build

# Beyond the cluster, for the tests and `make release`: kube-router, a registry, cosign, syft.
tools-build: $(STAMP)
	@$(PY) -m devenv.cluster build --extras

cluster-up: $(STAMP)
	@$(PY) -m devenv.cluster up

cluster-down: $(STAMP)
	@$(PY) -m devenv.cluster down

cluster-status: $(STAMP)
	@$(PY) -m devenv.cluster status

kind-up:
	@bash devenv/cluster/kind-up.sh

# The README's test command. Builds the control plane first (cached) so its progress is visible.
test: prereqs lint typecheck web cluster-build tools-build
	@echo "==> pytest (unit, integration, e2e)"
	@$(PY) -m pytest -m "not bench" $(PYTEST_ARGS)

test-unit: $(STAMP)
	@$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: $(STAMP) web cluster-build
	@$(PY) -m pytest -m integration $(PYTEST_ARGS)

# System packages first (checked in a second; installed when missing, as root): prereqs.sh.
prereqs:
	@bash devenv/prereqs.sh

demo: prereqs $(STAMP) web cluster-build
	@$(PY) -m devenv.demo

bench: prereqs $(STAMP) web cluster-build
	@$(PY) -m pytest -m bench -s tests/bench --ignore=tests/bench/test_chaos.py $(PYTEST_ARGS)

chaos: prereqs $(STAMP) web cluster-build
	@$(PY) -m pytest -m bench -s tests/bench/test_chaos.py $(PYTEST_ARGS)

bench-large: prereqs $(STAMP) web cluster-build
	@BENCH_BOTS=$${BENCH_BOTS:-10000} $(PY) -m pytest -m bench -s tests/bench/test_burst.py \
		tests/bench/test_status_document.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache bot-image/web/node_modules
