# Squeezer's commands. Every target sets up what it needs (venv, packages).
#   make demo   run the main job on the embedded local stack
#   make test   run the test suite (offline: moto, the local stack on loopback)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev

# One requirement set per use, each installed by the targets that need it, with its own stamp
# (.venv/.installed-<set>): make demo and make up install only requirements-local.txt.
#   local: the stack and the client   test, lint, bench, deploy: each adds its tools to local
#   dev: everything (make venv, make test; it runs lint and quick benchmarks too)
# --no-compile: Python compiles what it imports on first use; compiling every installed
# module up front doubles the install's CPU time.
INSTALL := $(PY) -m pip install --quiet --no-compile
installed = $(VENV)/.installed-$(1)
EDITABLE := $(VENV)/.installed-editable
# What a target depends on to have set $(1) and the `squeezer` command installed.
setup = $(call installed,$(1)) $(EDITABLE)

.PHONY: venv web-assets browser lint test test-fast up demo clean bench-tools localstack-setup localstack-up localstack-down localstack-deploy test-localstack package deploy chalice-deploy teardown bench

venv: $(call setup,dev) web-assets

## The venv, its pip and setuptools put in by the base interpreter's pip (22.3+: --python) without
## byte-compiling them: twice as fast as venv's own ensurepip, which stays the fallback.
$(PY):
	@$(PYTHON) -m venv --without-pip $(VENV) && \
	  $(PYTHON) -m pip --python $(PY) install --quiet --no-compile pip "setuptools>=64" 2>/dev/null || \
	  { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }

$(VENV)/.installed-%: requirements-%.txt requirements.txt | $(PY)
	$(INSTALL) -r $<
	@touch $@

# The sets a set includes (-r): a change to one reinstalls the sets built on it.
$(call installed,test) $(call installed,lint) $(call installed,bench) $(call installed,deploy): requirements-local.txt
$(call installed,dev): requirements-dev.txt requirements.txt requirements-local.txt requirements-test.txt requirements-lint.txt requirements-bench.txt requirements-deploy.txt | $(PY)
	$(INSTALL) -r requirements-dev.txt
	@touch $(foreach set,local test lint bench deploy,$(call installed,$(set))) $@

## The project itself, editable, for the `squeezer` command (.venv/bin/squeezer); after a set, whose
## chalice brings wheel: the venv's setuptools (Python 3.11) then builds it without a build environment.
$(EDITABLE): pyproject.toml | $(PY)
	@if $(PY) -c "import setuptools, wheel" 2>/dev/null; then $(INSTALL) --no-deps --no-build-isolation -e .; \
	  else $(INSTALL) --no-deps -e .; fi
	@touch $@

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
lint: $(call setup,lint)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## The static checks, then the test suite: unit, service (fakes), adapters and app (moto), client,
## faults, end to end (local stack), and the benchmarks in quick mode (they compare with Debian's
## zstd, brotli and gzip tools) and the browser test (Debian's chromium).
## Three processes on two cores: most tests wait on servers, subprocesses and sockets. --dist loadfile
## keeps a file's tests (and its module fixtures) in one process.
test: $(call setup,dev) web-assets lint bench-tools browser
	$(PY) -m pytest -n 3 --dist loadfile

## Without the tests that start servers.
test-fast: $(call setup,dev) web-assets
	$(PY) -m pytest -m "not integration"

## The local stack in the foreground: emulator, API on 127.0.0.1:8000, event-source bridge.
up: $(call setup,local) web-assets
	$(PY) -m infra.local up

## Compress a sample directory (or DIR=...) on the local stack, verify, print a table, clean up
## (KEEP=1 keeps the results). Uses the stack `make up` runs, else starts one and stops it after.
demo: $(call setup,local)
	$(PY) -m infra.local demo $(if $(DIR),--dir "$(DIR)") $(if $(KEEP),--keep)

clean:
	rm -rf .state $(VENV) .pytest_cache .hypothesis node_modules chalicelib/web/vendor

## --- Deployment (see README "Deploy") ---------------------------------------
## CloudFormation/SAM template for STAGE (chalice package --merge-template), checked with cfn-lint.
package: $(call setup,deploy) web-assets
	$(PY) -m infra.deploy package --stage $(STAGE)

## Deploy the packaged template (needs AWS credentials and SQUEEZER_ARTIFACTS_BUCKET).
deploy: package
	$(PY) -m infra.deploy deploy --stage $(STAGE) --artifacts-bucket "$(SQUEEZER_ARTIFACTS_BUCKET)"

## The plain `chalice deploy` path: resources, chalice deploy, ReportBatchItemFailures on.
chalice-deploy: $(call setup,deploy) web-assets
	$(PY) -m infra.deploy chalice-deploy --stage $(STAGE)

teardown: $(call setup,deploy)
	$(PY) -m infra.deploy teardown --stage $(STAGE)

## --- LocalStack (from PyPI, no Docker) ----------------------------------------
localstack-setup:
	infra/localstack/setup.sh

localstack-up: localstack-setup
	infra/localstack/start.sh

localstack-down:
	infra/localstack/stop.sh

## Create Squeezer's resources on LOCALSTACK_ENDPOINT (default http://127.0.0.1:4566).
localstack-deploy: $(call setup,deploy)
	$(PY) -m infra.deploy localstack-deploy

## The LocalStack tier: starts LocalStack, runs tests/localstack, stops it.
test-localstack: $(call setup,test) localstack-setup
	infra/localstack/start.sh
	SQUEEZER_REQUIRE_LOCALSTACK=1 $(PY) -m pytest -m localstack tests/localstack; status=$$?; infra/localstack/stop.sh; exit $$status

## --- Benchmarks (load/): figures with their targets; QUICK=1 for small inputs --
bench: $(call setup,bench) bench-tools
	$(PY) -m load.bench $(if $(QUICK),--quick)

## Debian's reference tools for benchmark 1, installed when missing.
bench-tools:
	@command -v zstd >/dev/null && command -v brotli >/dev/null && command -v gzip >/dev/null || \
	  { echo "installing Debian's zstd, brotli and gzip (benchmark 1 compares with them)"; \
	    $(if $(filter 0,$(shell id -u)),,sudo )apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo )apt-get install -y -qq zstd brotli gzip >/dev/null; }
