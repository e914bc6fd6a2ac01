# vidrec — the two commands: `make up` (serve recommendations locally) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
VIDREC := $(VENV)/bin/vidrec
PYTEST := $(VENV)/bin/pytest
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: help up down bench setup test test-unit test-integration lint format typecheck demo clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

up: setup  ## build the demo artefacts if missing, then serve (serving stack: next issue)
	@test -f artifacts/demo/manifest.json || $(VIDREC) pipeline run --profile demo --out artifacts/demo
	@$(VIDREC) models show artifacts/demo
	@echo "The serving stack (Triton, BentoML, gRPC on 127.0.0.1) is not built yet: see README 'Status'."

down:  ## stop everything `make up` started
	@echo "nothing to stop: the serving stack is not built yet"

setup:  ## idempotent: apt redis/prometheus, helm, .venv (torch first), Triton stub
	@scripts/setup.sh

test: setup  ## the whole suite (unit + integration on real servers); fails if nothing ran
	@scripts/run_tests.sh

test-unit: setup  ## unit tests only (no servers)
	@scripts/run_tests.sh -m "not integration"

test-integration: setup  ## integration tests only (real Redis, Triton, ...)
	@scripts/run_tests.sh -m integration

lint: setup  ## ruff + mypy
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

format: setup  ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests

demo: setup  ## train, evaluate and export the demo models into artifacts/demo (≈10 min)
	$(VIDREC) pipeline run --profile demo --out artifacts/demo

bench: setup  ## performance figures, each a ratio against a same-run baseline (see docs/benchmarks.md)
	$(VIDREC) bench offline --out artifacts/bench

clean:  ## remove generated artefacts (not the venv)
	rm -rf artifacts runs .pytest_cache .mypy_cache .ruff_cache
