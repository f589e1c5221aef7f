# Squeezer's commands. Every target sets up what it needs (venv, packages).
#   make demo   run the main job on the embedded local stack
#   make test   run the test suite (offline: moto, the local stack on loopback)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STAGE ?= dev

.PHONY: venv web-assets browser lint test test-fast up demo clean bench-tools localstack-setup localstack-up localstack-down localstack-deploy test-localstack package deploy chalice-deploy teardown bench

venv: $(STAMP) web-assets

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

## Swagger UI for GET /docs: the npm package pinned in package.json (and package-lock.json), its
## JS, CSS and licences copied into chalicelib/web/vendor/ (gitignored), which chalice local, chalice
## package (it ships chalicelib/) and the tests serve. No install scripts run. npm comes from Debian
## when missing.
WEB_VENDOR := chalicelib/web/vendor/swagger-ui
SWAGGER_FILES := swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt

web-assets: $(WEB_VENDOR)/.installed

$(WEB_VENDOR)/.installed: package.json package-lock.json
	@command -v npm >/dev/null || \
	  { echo "installing Debian's npm (make web-assets fetches Swagger UI with it)"; \
	    $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -qq npm >/dev/null; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(WEB_VENDOR) && mkdir -p $(WEB_VENDOR)
	cp $(addprefix node_modules/swagger-ui-dist/,$(SWAGGER_FILES)) $(WEB_VENDOR)/
	@touch $@

## Debian's chromium for the browser test (tests/e2e/test_browser.py; Playwright cannot fetch its
## own browser here), installed when missing.
browser:
	@test -x /usr/bin/chromium || \
	  { echo "installing Debian's chromium (the browser test drives it with Playwright)"; \
	    $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -qq chromium >/dev/null; }

## Static checks: ruff (lint and format) on everything, mypy --strict on chalicelib, client and app.py.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## The static checks, then the test suite: unit, service (fakes), adapters and app (moto), client,
## faults, end to end (local stack), and the benchmarks in quick mode (they compare with Debian's
## zstd, brotli and gzip tools) and the browser test (Debian's chromium).
## Three processes on two cores: most tests wait on servers, subprocesses and sockets. --dist loadfile
## keeps a file's tests (and its module fixtures) in one process.
test: lint bench-tools browser
	$(PY) -m pytest -n 3 --dist loadfile

## Without the tests that start servers.
test-fast: venv
	$(PY) -m pytest -m "not integration"

## The local stack in the foreground: emulator, API on 127.0.0.1:8000, event-source bridge.
up: venv
	$(PY) -m infra.local up

## Start the stack, compress a sample directory (or DIR=...), verify, print a table, stop.
demo: venv
	$(PY) -m infra.local demo $(if $(DIR),--dir "$(DIR)")

clean:
	rm -rf .state $(VENV) .pytest_cache .hypothesis node_modules chalicelib/web/vendor

## --- Deployment (see README "Deploy") ---------------------------------------
## CloudFormation/SAM template for STAGE (chalice package --merge-template), checked with cfn-lint.
package: venv
	$(PY) -m infra.deploy package --stage $(STAGE)

## Deploy the packaged template (needs AWS credentials and SQUEEZER_ARTIFACTS_BUCKET).
deploy: package
	$(PY) -m infra.deploy deploy --stage $(STAGE) --artifacts-bucket "$(SQUEEZER_ARTIFACTS_BUCKET)"

## The plain `chalice deploy` path: resources, chalice deploy, ReportBatchItemFailures on.
chalice-deploy: venv
	$(PY) -m infra.deploy chalice-deploy --stage $(STAGE)

teardown: venv
	$(PY) -m infra.deploy teardown --stage $(STAGE)

## --- LocalStack (from PyPI, no Docker) ----------------------------------------
localstack-setup:
	infra/localstack/setup.sh

localstack-up: localstack-setup
	infra/localstack/start.sh

localstack-down:
	infra/localstack/stop.sh

## Create Squeezer's resources on LOCALSTACK_ENDPOINT (default http://127.0.0.1:4566).
localstack-deploy: venv
	$(PY) -m infra.deploy localstack-deploy

## The LocalStack tier: starts LocalStack, runs tests/localstack, stops it.
test-localstack: venv localstack-setup
	infra/localstack/start.sh
	SQUEEZER_REQUIRE_LOCALSTACK=1 $(PY) -m pytest -m localstack tests/localstack; status=$$?; infra/localstack/stop.sh; exit $$status

## --- Benchmarks (load/): figures with their targets; QUICK=1 for small inputs --
bench: venv bench-tools
	$(PY) -m load.bench $(if $(QUICK),--quick)

## Debian's reference tools for benchmark 1, installed when missing.
bench-tools:
	@command -v zstd >/dev/null && command -v brotli >/dev/null && command -v gzip >/dev/null || \
	  { echo "installing Debian's zstd, brotli and gzip (benchmark 1 compares with them)"; \
	    $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -qq zstd brotli gzip >/dev/null; }
