# salesbot — every target installs what it needs into .venv first (Python 3.11 or 3.12 and pip are enough).
SHELL := /bin/bash
# The first interpreter that really runs and is 3.11/3.12 (pyenv shims exist for versions that are not active).
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
UV := $(VENV)/bin/uv
RUN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(VENV)/bin/python

# `make test PYTEST_ARGS="-x -k inbox"` passes arguments on to pytest; DURATIONS is how many of the slowest tests
# the run lists (0: all of them).
PYTEST_ARGS ?=
DURATIONS ?= 25

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast test-system soak lint typecheck format migrate bench bench-report clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml uv.lock
	@test -n "$(PYTHON)" || { echo "Python 3.11 or 3.12 is required" >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(VENV)/bin/pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
	$(UV) sync --frozen --quiet --extra embedded
	@touch $@

install: $(VENV)/.installed ## create .venv and install salesbot with its dev tools (from uv.lock)

run: install ## start the whole product: embedded PostgreSQL+pgvector and Redis, API and worker (Ctrl-C stops)
	$(RUN)/salesbot dev

test: install ## run the test suite (starts its own PostgreSQL and Redis; system tests run by `make test-system`)
	$(RUN)/pytest -m "not soak and not system" --durations=$(DURATIONS) $(PYTEST_ARGS)

test-fast: install ## the test suite without slow tests
	$(RUN)/pytest -m "not slow and not soak and not system" $(PYTEST_ARGS)

test-system: install ## system tests: real salesbot processes, fake providers and LLM
	$(RUN)/pytest -m "system and not soak" tests/system --durations=10 $(PYTEST_ARGS)

soak: install ## long soak variants of the system tests
	$(RUN)/pytest -m soak tests/system

lint: install ## ruff (lint + format check) and mypy --strict
	$(RUN)/ruff check src tests bench migrations
	$(RUN)/ruff format --check src tests bench migrations
	$(RUN)/mypy

typecheck: install ## mypy --strict only
	$(RUN)/mypy

format: install ## apply ruff formatting and safe fixes
	$(RUN)/ruff check --fix src tests bench migrations
	$(RUN)/ruff format src tests bench migrations

migrate: install ## apply database migrations (DATABASE_URL, or the embedded dev database)
	$(RUN)/salesbot migrate

bench: install ## run the benchmarks and write bench/results/*.json
	@for script in bench/bench_*.py; do echo "== $$script"; $(RUN)/python $$script || exit 1; done

bench-report: install ## rewrite the README's Performance table from bench/results/*.json
	$(RUN)/python bench/report.py --write README.md

clean: ## stop nothing, delete caches and .venv (keeps .salesbot data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
