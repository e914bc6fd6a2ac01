# vidrec — the two commands: `make up` (serve recommendations locally) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
VIDREC := $(VENV)/bin/vidrec
PYTEST := $(VENV)/bin/pytest
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: help up down proto bench setup test test-unit test-integration lint format typecheck demo clean loadtest chaos

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

ARTEFACTS ?= artifacts/demo

up: setup  ## build the demo models if missing, start the local stack, print a real home feed
	@test -f $(ARTEFACTS)/data/events.parquet || $(VIDREC) pipeline run --profile demo --out $(ARTEFACTS)
	@$(VIDREC) stack up --artefacts $(ARTEFACTS)
	@$(VIDREC) stack feed --user 0 --count 10

down:  ## stop everything `make up` started
	@$(VIDREC) stack down

proto:  ## regenerate the gRPC stubs from proto/recommender.proto
	$(PY) -m vidrec.api.proto.generate

setup:  ## idempotent: apt redis/prometheus, helm, .venv (torch first), .venv-operator (kserve), Triton stub
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

demo: setup  ## train, evaluate and export the demo models into artifacts/demo (≈2 min idle, up to ≈12 busy)
	$(VIDREC) pipeline run --profile demo --out artifacts/demo

bench: setup .venv-feast  ## performance figures, each a ratio against a same-run baseline (docs/benchmarks.md)
	@test -f $(ARTEFACTS)/data/events.parquet || $(VIDREC) pipeline run --profile demo --out $(ARTEFACTS)
	$(VIDREC) bench offline --out runs/bench
	VIDREC_SERVING__ARTEFACTS_DIR=$(abspath $(ARTEFACTS)) $(VIDREC) bench serving --out runs/bench
	$(VIDREC) bench events --out runs/bench

# make loadtest [HOST=http://host:3000] [USERS=8] [DURATION=30s] [SLA_P99_MS=100] [SLA_FAIL_RATIO=0.001]
#               [SLA_DEGRADED_RATIO=0.01]
HOST ?= http://127.0.0.1:3000
USERS ?= 8
DURATION ?= 30s
SLA_P99_MS ?= 100
SLA_FAIL_RATIO ?= 0.001
SLA_DEGRADED_RATIO ?= 0.01
LOCUST_CLASSES ?= HttpApiUser
GRPC_HOST ?= 127.0.0.1:50051
TRITON_URL ?= 127.0.0.1:8001
LOADTEST_OUT ?= runs/loadtest

loadtest: setup  ## Locust, headless, USERS for DURATION against HOST (default: the local stack, started if needed); exits non-zero when the SLA breaks
	@mkdir -p $(LOADTEST_OUT)
	@if [ "$(HOST)" = "http://127.0.0.1:3000" ]; then $(VIDREC) stack up --artefacts $(ARTEFACTS) >/dev/null; fi
	@test ! -f $(ARTEFACTS)/manifest.json || $(PY) -m vidrec_dev.loadtest.workload $(ARTEFACTS) $(LOADTEST_OUT)/workload.json
	$(VENV)/bin/locust -f load_tests/locustfile.py --headless -u $(USERS) -r $(USERS) -t $(DURATION) \
		--host $(HOST) --grpc-host $(GRPC_HOST) --triton-url $(TRITON_URL) \
		--sla-p99-ms $(SLA_P99_MS) --sla-fail-ratio $(SLA_FAIL_RATIO) \
		--sla-degraded-ratio $(SLA_DEGRADED_RATIO) --only-summary \
		$$(test -f $(LOADTEST_OUT)/workload.json && echo --users-file $(LOADTEST_OUT)/workload.json) \
		--csv $(LOADTEST_OUT)/loadtest --html $(LOADTEST_OUT)/loadtest_report.html $(LOCUST_CLASSES)

chaos: setup  ## faults under load on a stack of its own (Redis master, Triton, Prometheus, processor, 2x capacity); docs/benchmarks.md
	@test -f $(ARTEFACTS)/manifest.json || $(VIDREC) pipeline run --profile demo --out $(ARTEFACTS)
	$(VIDREC) chaos --out runs/chaos --artefacts $(ARTEFACTS)

.venv-feast:  # Feast needs numpy 2: its own venv, used only by the serving benchmark
	python3 -m venv .venv-feast
	.venv-feast/bin/pip install -q -r benchmarks/requirements-feast.txt

clean:  ## remove generated artefacts (not the venv)
	rm -rf artifacts runs .pytest_cache .mypy_cache .ruff_cache
