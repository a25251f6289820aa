# DataDominion developer entry points. `make run` and `make test` set everything up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SETUP_STAMP := $(VENV)/.setup-done
ENV ?= dev
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export AWS_EC2_METADATA_DISABLED := true
export PYSPARK_PYTHON := $(abspath $(PY))
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: help setup run test lint typecheck unit package lock synth bench deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(SETUP_STAMP) ## create .venv, install Python deps, the SQLite JDBC driver and the CDK CLI; check Java 17
	@$(PY) -m localmode.class_archive

$(SETUP_STAMP): pyproject.toml package.json
	@java -version 2>&1 | grep -q 'version "17' || { echo "Java 17 is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@if [ ! -f /usr/share/java/sqlite-jdbc.jar ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libxerial-sqlite-jdbc-java; \
	  else echo "missing /usr/share/java/sqlite-jdbc.jar: run 'sudo apt-get install libxerial-sqlite-jdbc-java'"; exit 1; fi; fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	npm ci --silent --no-audit --no-fund
	@touch $@

run: setup ## set up, then run the seed's Test Case 2 story locally (no AWS)
	$(VENV)/bin/datadominion demo

test: setup lint typecheck ## set up, then run every test (lint, types, unit, integration, infra)
	$(PY) -m pytest -n 2 --dist loadgroup  # the Spark tests on one worker, the rest beside them (tests/conftest.py)

unit: setup ## only the fast tests (no Spark)
	$(PY) -m pytest tests/unit

lint: setup ## ruff, the job's code parses as Python 3.9 (EMR 7.12's default), imports flow one way
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff check --isolated --target-version py39 --select E9,F emr_jobs datadominion
	$(PY) -m tests.layers

typecheck: setup ## mypy
	$(VENV)/bin/mypy datadominion emr_jobs lambdas infra localmode app.py tests/benchmarks

package: setup ## build the Lambda asset and the EMR job assets into build/ (pip, no Docker)
	$(PY) -m infra.packaging

lock: setup ## re-resolve lambdas/requirements.lock and emr_jobs/requirements.lock for their runtimes
	$(PY) -m infra.packaging --lock

synth: package ## cdk synth (with cdk-nag) for dev, prod and a literal-account/custom-qualifier config
	npx cdk synth -q -c env=dev --output cdk.out/dev
	npx cdk synth -q -c env=prod --output cdk.out/prod
	npx cdk synth -q -c env=ci -c config_dir=tests/infra/environments --output cdk.out/ci

bench: setup ## benchmarks; figures go to docs/benchmarks.md
	$(PY) -m tests.benchmarks.run

deploy: setup ## cdk deploy ENV=<name> (needs AWS credentials and a bootstrapped account)
	$(PY) -m infra.deploy_check $(ENV)
	$(MAKE) package
	npx cdk deploy -c env=$(ENV) --require-approval broadening

clean: ## remove local state and build output
	rm -rf .local cdk.out build
