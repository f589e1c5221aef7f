# Squeezer's commands. Every target sets up what it needs (venv, packages).
#   make demo   run the main job on the embedded local stack
#   make test   run the test suite (offline: moto, the local stack on loopback)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STAGE ?= dev

.PHONY: venv test test-fast up demo clean localstack-setup localstack-up localstack-down localstack-deploy test-localstack package deploy chalice-deploy teardown lint-template bench

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

## The test suite: unit, service (fakes), adapters and app (moto), client, end to end (local stack).
test: venv
	$(PY) -m pytest

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
	rm -rf .state $(VENV) .pytest_cache .hypothesis
