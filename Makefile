# aligntag: every entry point a person or CI uses. Targets work from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
# PY=python uses an interpreter that already has the dependencies (the Docker build stage).
PY ?= $(VENV)/bin/python
ifeq ($(PY),$(VENV)/bin/python)
SETUP := setup
endif
CONFIG ?= small
PORT ?= 8000
ARTIFACTS_DIR ?= artifacts
export ALIGNTAG_DATA_DIR ?= $(abspath ../shared/data)
# Debian packages: the default pretraining corpus (FOLDOC, Jargon), the Prometheus server the
# tests scrape the service with, the compose/config checkers of the deployment tests, the
# headless browser the test of the page at / drives over the DevTools protocol, and wrk, the C
# load generator `make bench` cross-checks its closed-loop figures with.
DEBIAN_PACKAGES := dict-foldoc dict-jargon wordnet-base prometheus docker-compose chromium wrk
STAMP := $(VENV)/.installed

.PHONY: help setup debian-deps build-model finetune finetune-args serve run test test-fast lint bench reliability clean

help:
	@echo "make run          set up, build the default model if missing, serve on PORT (default 8000)"
	@echo "make test         set up and run the whole test suite"
	@echo "make setup        virtual environment in $(VENV) with every dependency (constraints.txt)"
	@echo "make build-model  CONFIG=small|tiny|small-long|paper-512x3|paper-768x3: corpus -> artifacts/"
	@echo "make finetune     TASK=name TRAIN=file [DEV=file]: your own task -> $(ARTIFACTS_DIR)/<task>/"
	@echo "make serve        serve $(ARTIFACTS_DIR) on PORT"
	@echo "make lint         ruff + mypy"
	@echo "make bench        benchmarks -> reports/bench/"
	@echo "make reliability  the full reliability suite -> reports/reliability/"

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[serve,build,dev]'
	touch $@

setup: $(STAMP)

# Installs what is missing (as root, or through sudo); does nothing when all are present.
debian-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build-model: $(SETUP) debian-deps
	$(PY) -m model_build build --config $(CONFIG) --artifacts-dir $(ARTIFACTS_DIR)

# Your own task from a few hundred examples, on the default build's aligned encoder (built first
# if missing, reused otherwise): make finetune TASK=methods TRAIN=path/to/file [DEV=path/to/file].
finetune: finetune-args build-model
	$(PY) -m model_build finetune --config $(CONFIG) --task $(TASK) --train $(TRAIN) \
	  $(if $(DEV),--dev $(DEV)) --artifacts-dir $(ARTIFACTS_DIR)

finetune-args:
	@test -n "$(TASK)" -a -n "$(TRAIN)" || { echo "usage: make finetune TASK=<name> TRAIN=<file> [DEV=<file>]"; exit 2; }

serve: $(SETUP)
	ALIGNTAG_PORT=$(PORT) ALIGNTAG_ARTIFACTS_DIR=$(ARTIFACTS_DIR) $(PY) -m service

# The README's first command: everything from a fresh clone to a serving API.
run: build-model serve

# The README's test command, and exactly what CI runs: lint, then every test.
test: setup debian-deps lint
	$(PY) -m pytest -q -ra

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: setup debian-deps
	$(PY) -m bench

reliability: setup debian-deps
	$(PY) -m pytest -q -ra tests/reliability --reliability-full

clean:
	rm -rf build $(ARTIFACTS_DIR) .pytest_cache .mypy_cache .ruff_cache
