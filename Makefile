# TPV Broker ops suite. `make demo` and `make test` work from a fresh clone (Debian 12, root).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv deps demo test unit integration lint format bench serve clean tpv-venv

help:
	@echo "make demo   - start the broker on the embedded snapshot and rank the example requests"
	@echo "make test   - install what the tests need, lint, run unit + integration tests"
	@echo "make bench  - run the benchmarks (figures under benchmarks/results/)"
	@echo "make serve  - run the broker in the foreground on the embedded snapshot"

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[broker,producer,consumer,dev]'
	touch $(STAMP)

# Debian packages the integration tests start for real (InfluxDB 1.x). Skipped when present.
deps:
	@command -v influxd >/dev/null || { \
	  echo "installing Debian package influxdb"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb >/dev/null; }

demo: venv
	$(PY) -m broker.demo

serve: venv
	$(VENV)/bin/tpv-broker serve

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

unit: venv
	$(PY) -m pytest -q tests/unit

integration: venv deps
	$(PY) -m pytest -q tests/integration

# The real TPV 3.3 + Galaxy libraries for tests/tpv, in a venv of their own (~1.6 GB, in the user's
# cache dir): built once from tests/tpv/constraints.txt (minutes), reused while it is unchanged.
tpv-venv:
	PYTHON=$(PYTHON) bash tests/tpv/make-venv.sh

test: venv deps lint tpv-venv
	$(PY) -m pytest -q tests

BENCHMARKS ?= latency collectors arbo reprioritize success scheduling tpv_overhead

bench: venv deps tpv-venv
	@command -v wrk >/dev/null || { \
	  echo "installing Debian package wrk"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	mkdir -p benchmarks/results
	set -e; for b in $(BENCHMARKS); do \
	  echo "== benchmarks.$$b"; $(PY) -m benchmarks.$$b | tee benchmarks/results/$$b.txt; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
