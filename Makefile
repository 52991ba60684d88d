# Onramp: `make run` (portal + worker + sandbox AWS) and `make test`. Nothing to install by hand.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
VENV_RUN := .venv/.installed-runtime
VENV_DEV := .venv/.installed-dev
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# pytest-xdist's worker processes for make test and make test-fast (docs/testing.md, "Tests"); 0 runs the tests in
# pytest's own process: `make test PYTEST_WORKERS=0`.
PYTEST_WORKERS ?= 3
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadgroup

.PHONY: run test test-fast lint services system-deps bench soak audit smoke-aws clean

.venv/bin/python:
	python3 -m venv .venv

# make run needs the sandbox AWS too: requirements-sandbox.txt is requirements.txt and moto's server.
# Not -q: the first install takes minutes, and pip's own lines (each package collected, downloaded,
# installed) show it is working, instead of a silent wait before `make run` prints anything.
$(VENV_RUN): requirements.txt requirements-sandbox.txt | .venv/bin/python
	@echo "Installing Onramp's Python packages into .venv (the first time takes a few minutes)…"
	$(PIP) install -r requirements-sandbox.txt
	touch $@

$(VENV_DEV): requirements.txt requirements-sandbox.txt requirements-dev.txt | .venv/bin/python
	$(PIP) install -q -r requirements-dev.txt
	touch $@ $(VENV_RUN)

## The portal on http://127.0.0.1:8000 with a Celery worker (and beat) and the sandbox AWS; Ctrl-C stops all.
run: $(VENV_RUN)
	@bin/run

## Lint and the whole test suite on real PostgreSQL, Redis, Celery, moto's server and Chromium.
test: system-deps services $(VENV_DEV)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/bandit -q -r portal provisioning -ll
	.venv/bin/lint-imports --no-cache
	.venv/bin/mypy
	.venv/bin/pytest $(PYTEST_XDIST)

## The inner loop: every test but the end-to-end (the worker), browser and slow ones (docs/testing.md, "Tests").
test-fast: services $(VENV_DEV)
	.venv/bin/pytest $(PYTEST_XDIST) -m "not e2e and not browser and not slow"

lint: $(VENV_DEV)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache
	.venv/bin/mypy

## Debian packages the tests need (Chromium for the browser tests).
system-deps:
	@bin/system-deps

## PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, started when they are down.
services:
	@bin/services

## Benchmarks (bench/): figures and ratios, printed.
bench: services $(VENV_DEV)
	$(PY) bench/onboarding.py
	$(PY) bench/throughput.py
	$(PY) bench/audit_history.py
	$(PY) bench/drift.py

## Heavier fault scenarios: killed workers, lost broker, restarted database, unreachable AWS.
## Real prefork workers and a private redis-server; prints runs attempted/completed, duplicates, secrets leaked.
soak: services $(VENV_DEV)
	$(PY) -m pytest -m soak tests/soak -v

## A check on two real, disposable AWS accounts (docs/deploying.md, "A check on real accounts"); never part of make test.
## Refuses to start without ONRAMP_SMOKE_CONFIRM; starts a worker of its own for the runs, stops it after.
smoke-aws: services $(VENV_RUN)
	@bin/smoke-aws

## Security checks that need the network or take long: bandit and pip-audit.
## --strict: a package pip-audit could not look up fails the audit instead of passing unchecked.
## Ignored vulnerabilities (none today) go here as --ignore-vuln ID, each with its reason in a comment.
audit: $(VENV_DEV)
	.venv/bin/bandit -r portal provisioning -ll
	.venv/bin/pip-audit --strict -r requirements.txt

clean:
	rm -rf .venv staticfiles tests/artifacts db.sqlite3 sandbox-state.pickle.gz
