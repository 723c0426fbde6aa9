# The Starform fleet repo. Two commands matter:
#   make render lint   # set up what is needed, render rendered/, lint inputs and outputs
#   make test          # the test suite
# Any failure makes make exit 2.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLEET := $(VENV)/bin/fleet
# Pinned Python dependencies live in pyproject.toml; the stamp re-installs when it changes.
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# Upstream reference data (Flux CRDs, chart defaults) sits beside the repo when available.
SHARED ?= $(abspath ../shared)
# Gateway API: the standard channel (what DOKS manages; our objects must not need experimental fields).
LINT_FLAGS := $(if $(wildcard $(SHARED)/crds/flux),--crds $(SHARED)/crds/flux) \
              $(if $(wildcard $(SHARED)/crds/gateway/standard),--crds $(SHARED)/crds/gateway/standard) \
              $(if $(wildcard $(SHARED)/crds/envoy-gateway),--crds $(SHARED)/crds/envoy-gateway) \
              $(if $(wildcard $(SHARED)/charts),--charts $(SHARED)/charts)

.PHONY: help setup bytecode system upstream render render-check lint test bench clean vrl-check

help:
	@echo "make render lint   render rendered/ and lint everything (sets itself up)"
	@echo "make test          run the tests"
	@echo "make render-check  fail if rendered/ differs from what the inputs produce"
	@echo "make bench         speed benchmark on a generated 1,000-cluster fleet"
	@echo "make vrl-check     build tools/vrl-check (the real VRL compiler; lint and tests then compile Vector's VRL)"

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

setup: $(STAMP) bytecode system upstream vrl-check

# The toolchain's bytecode, compiled ahead: with PYTHONDONTWRITEBYTECODE set (as on CI machines)
# Python would compile tools/fleet from source in every `fleet` process (~0.05 s of a 0.5 s
# one-cluster render). Stale .pyc files are ignored by Python itself; this is a no-op when current.
bytecode: $(STAMP)
	@$(PY) -m compileall -q tools/fleet

system:
	@tools/setup-system.sh

# The real VRL compiler (crates.io `vrl`, pinned in tools/vrl-check/Cargo.lock) for Vector's programs.
VRL_CHECK := .cache/vrl-check-target/release/vrl-check
vrl-check: $(VRL_CHECK)
$(VRL_CHECK): tools/vrl-check/Cargo.toml tools/vrl-check/Cargo.lock tools/vrl-check/src/main.rs
	CARGO_TARGET_DIR=.cache/vrl-check-target nice cargo build --release --locked --manifest-path tools/vrl-check/Cargo.toml

# The upstream binaries of tools/upstream.lock, built once into .cache/bin (a no-op when present).
upstream:
	@tools/build-upstream.sh

render: $(STAMP) bytecode
	$(FLEET) render

render-check: $(STAMP)
	$(FLEET) render --check

lint: setup
	$(FLEET) lint $(LINT_FLAGS)

test: setup
	FLEET_SHARED=$(SHARED) $(PY) -m pytest -n 2 --dist loadfile -q

BENCH_CLUSTERS ?= 1000
bench: setup
	$(PY) tools/bench.py --clusters $(BENCH_CLUSTERS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .cache
