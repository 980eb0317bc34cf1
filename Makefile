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
	@echo "make molecule - lint the Ansible content and run every molecule scenario (podman)"
	@echo "make collection - build the Ansible collection tpv_broker.ops and check it installs and parses"

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

# Debian packages the integration tests start for real (InfluxDB 1.x, Prometheus). Skipped when
# present.
deps:
	@command -v influxd >/dev/null || { \
	  echo "installing Debian package influxdb"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb >/dev/null; }
	@command -v prometheus >/dev/null || { \
	  echo "installing Debian package prometheus"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

demo: venv
	$(PY) -m broker.demo

serve: venv
	$(VENV)/bin/tpv-broker serve

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

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

test: venv deps lint tpv-venv collection molecule
	$(PY) -m pytest -q tests

BENCHMARKS ?= latency collectors arbo reprioritize success scheduling carbon tpv_overhead

bench: venv deps tpv-venv
	@command -v wrk >/dev/null || { \
	  echo "installing Debian package wrk"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	mkdir -p benchmarks/results
	set -e; for b in $(BENCHMARKS); do \
	  echo "== benchmarks.$$b"; $(PY) -m benchmarks.$$b | tee benchmarks/results/$$b.txt; done

# Ansible: yamllint + ansible-lint (production profile), then every molecule scenario
# (roles/*/molecule/*) on rootful podman, on a Debian 12 image with systemd built locally by
# scripts/build-molecule-image.sh (once; reused while present). See docs/deployment.md.
MOLECULE_VENV      := .venv-molecule
MOLECULE_STAMP     := $(MOLECULE_VENV)/.installed
WHEELHOUSE         := $(MOLECULE_VENV)/wheelhouse
MOLECULE_IMAGE     ?= localhost/tpv-molecule-debian12:latest
MOLECULE_SCENARIOS ?= $(patsubst %/molecule.yml,%,$(sort $(wildcard roles/*/molecule/*/molecule.yml)))
ANSIBLE_PATHS      := roles playbooks inventories tests/molecule
# Container names unique per checkout (podman names are global on a host): tpv-<hash of the path>.
TPV_MOLECULE_PREFIX ?= tpv-$(shell printf '%s' '$(CURDIR)' | sha1sum | cut -c1-8)
MOLECULE_ENV       := CONTAINERS_CONF=$(CURDIR)/tests/molecule/containers.conf TPV_MOLECULE_IMAGE=$(MOLECULE_IMAGE) \
                      TPV_MOLECULE_PREFIX=$(TPV_MOLECULE_PREFIX)

.PHONY: molecule molecule-deps molecule-image ansible-lint collection

$(MOLECULE_STAMP): requirements-molecule.txt
	$(PYTHON) -m venv $(MOLECULE_VENV)
	$(MOLECULE_VENV)/bin/pip install -q -r requirements-molecule.txt
	touch $@

# Every dependency of the three extras, downloaded once on this host and mounted read-only into
# the test containers, so the roles' pip installs there run offline. Plus what only the
# containers' Python asks for: they run Debian 12's 3.11.2, this host may run a newer one whose
# pip skips it (redis needs async-timeout before 3.11.3).
WHEELHOUSE_TARGET_ONLY := 'async-timeout>=4.0.3'

$(WHEELHOUSE)/.stamp: pyproject.toml $(MOLECULE_STAMP)
	$(MOLECULE_VENV)/bin/pip download -q -d $(WHEELHOUSE) '.[broker,producer,consumer]' 'setuptools>=77' \
	  $(WHEELHOUSE_TARGET_ONLY)
	touch $@

molecule-deps:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || { \
	  echo "installing Debian packages podman runc debootstrap"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; }

molecule-image: molecule-deps
	$(MOLECULE_ENV) scripts/build-molecule-image.sh $(MOLECULE_IMAGE)

# The Ansible collection tpv_broker.ops (collection/galaxy.yml + roles/ + playbooks/, version from
# pyproject.toml): built into build/collection/, installed into an empty path with
# requirements.yml's collections, its playbooks syntax-checked with ansible-core and those only.
collection: $(MOLECULE_STAMP)
	scripts/build-collection.sh build/collection

ansible-lint: $(MOLECULE_STAMP)
	$(MOLECULE_VENV)/bin/yamllint --strict $(ANSIBLE_PATHS) requirements.yml collection
	PATH="$(CURDIR)/$(MOLECULE_VENV)/bin:$$PATH" ansible-lint --profile production $(ANSIBLE_PATHS)

# Each scenario keeps its state (inventory, instance list) in this checkout, not in the user's
# cache shared by every checkout of the roles.
# The scenarios install a snapshot of the code (.venv-molecule/src), taken here, so edits made
# while they run cannot look like a source change to the idempotence step.
molecule: molecule-image $(WHEELHOUSE)/.stamp ansible-lint
	rm -rf $(MOLECULE_VENV)/src && mkdir -p $(MOLECULE_VENV)/src
	tar -c --exclude=__pycache__ pyproject.toml README.md broker collectors metric_contract | tar -x -C $(MOLECULE_VENV)/src
	@set -e; . $(MOLECULE_VENV)/bin/activate; export $(MOLECULE_ENV); total=$$(date +%s); \
	for s in $(MOLECULE_SCENARIOS); do \
	  role=$${s%%/molecule/*}; name=$${s##*/}; start=$$(date +%s); \
	  echo "== molecule $$role ($$name)"; \
	  (cd $$role && MOLECULE_EPHEMERAL_DIRECTORY=$(CURDIR)/$(MOLECULE_VENV)/ephemeral/$${role##*/}.$$name molecule test -s $$name); \
	  echo "== molecule $$role ($$name): passed in $$(( $$(date +%s) - start )) s"; \
	done; \
	echo "== molecule: $(words $(MOLECULE_SCENARIOS)) scenarios passed in $$(( $$(date +%s) - total )) s"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
