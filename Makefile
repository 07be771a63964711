# TA-aws-iot-defender: build, test, demo, benchmark. Everything runs on loopback; nothing here reaches AWS or Splunk.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_INFRA := .venv-infra
PY := $(VENV)/bin/python
PY_INFRA := $(VENV_INFRA)/bin/python
VERSION := $(shell cat VERSION)
APP := TA-aws-iot-defender
OUTPUT := output/$(APP)
TARBALL := dist/$(APP)-$(VERSION).tar.gz
PIP_VERSION := 26.3

# Part-specific targets (dashboard schema tooling, ...) live in mk/*.mk, owned by each part.
-include mk/*.mk

.PHONY: all venv build package package-check appinspect lint test unit selftest integration infra-test demo bench \
	iam-docs clean

all: test

$(VENV)/.installed: requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(VENV)/bin/pip install -q -r requirements/dev.txt
	touch $@

$(VENV_INFRA)/.installed: requirements/infra.txt
	$(PYTHON) -m venv $(VENV_INFRA)
	$(VENV_INFRA)/bin/pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(VENV_INFRA)/bin/pip install -q -r requirements/infra.txt
	touch $@

venv: $(VENV)/.installed $(VENV_INFRA)/.installed

# ucc-gen build: generated add-on in output/, package/ copied over it, lib/ vendored for Splunk's Python.
build: $(VENV)/.installed
	$(PY) scripts/build.py --version $(VERSION)

package: build
	$(MAKE) --no-print-directory package-check

# Tarball + AppInspect (Splunk Cloud tags, offline) of what output/ holds now.
package-check: $(VENV)/.installed
	$(PY) scripts/package.py --version $(VERSION)
	$(PY) scripts/appinspect.py $(TARBALL)

appinspect: package

# ruff (lint + format) and mypy ([tool.mypy] in pyproject.toml), each part for the Python it runs on: package/bin
# for Splunk's 3.9, scripts/ for the development Python, the Lambda code for its runtime.
LAMBDA_CODE := infra/ingestion/functions infra/response/functions
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --python-version 3.11 scripts
	$(VENV)/bin/mypy --python-version 3.12 $(LAMBDA_CODE)
	PYTHONPATH=package/bin $(VENV)/bin/lint-imports --no-cache

# The product's unit tests; `selftest` proves the test harness itself (loopback AWS, splunkd stand-in, fleet, runner).
unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -q

selftest: $(VENV)/.installed
	$(PY) -m pytest tests/harness/selftest -q

integration: build
	$(PY) -m pytest tests/integration -q

infra-test: $(VENV)/.installed $(VENV_INFRA)/.installed
	$(PY) -m pytest tests/infra -q

# The README's test command: lint, build, the demo (the quick start's other command; its events also feed the
# knowledge tests' field cross-check and the dashboards' render, its AWS calls the IAM test), every test suite (unit,
# harness self-tests, integration, infra, knowledge), every dashboard drawn in headless Chromium (mk/dashboards.mk),
# the docs site built strictly (mk/docs.mk), then the package + AppInspect check of the same build.
test: lint build $(VENV_INFRA)/.installed
	@if [ -f mk/knowledge.mk ]; then $(MAKE) --no-print-directory knowledge-tools; fi
	mkdir -p build && $(PY) -m tests.harness.demo > build/demo.log 2>&1 || { cat build/demo.log; exit 1; }
	@tail -n 2 build/demo.log
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory contentctl-check
	$(MAKE) --no-print-directory dashboards-check
	$(MAKE) --no-print-directory docs-check
	$(MAKE) --no-print-directory package-check

demo: build
	$(PY) -m tests.harness.demo

bench: build
	$(PY) -m benchmarks.run

# README's IAM block and docs/iam.md from infra/addon-role/template.yaml (tests/unit/test_iam_readme.py keeps
# them equal).
iam-docs: $(VENV)/.installed
	$(PY) scripts/iam_policy.py

clean:
	rm -rf output dist build .pytest_cache
