# vapi-chargeback — every set-up step lives here, so a fresh machine needs only python3.11 and make.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
UV := $(BIN)/uv
STAMP := $(VENV)/.installed

# Airflow runs from the project with no global state.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(CURDIR)/.airflow/airflow.db
export PYTHONPATH := $(CURDIR)/include$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: help install lock demo test test-fast test-stack lint format bench clean ui focus-validator docs docs-serve airflow

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# The venv and uv in it: all that `make lock` needs, so it works on a fresh clone.
$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The lock pins the package's dependencies with its `emulator` and `dev` extras (see lock).
$(STAMP): $(UV) pyproject.toml requirements/lock.txt
	$(UV) pip sync --python $(BIN)/python requirements/lock.txt
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	touch $@

install: $(STAMP) ## create .venv and install the pinned dependencies (reused when nothing changed)

lock: $(UV) ## re-pin requirements/lock.txt from pyproject.toml (needs the registry)
	$(UV) pip compile pyproject.toml --extra emulator --extra dev --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu -o requirements/lock.txt

demo: $(STAMP) ## generate a demo org, start the emulator, run the real DAG for last month, print where the statements are
	$(BIN)/python -m vapi_chargeback.demo

# The FinOps Foundation's FOCUS validator needs Python >= 3.12 while the project stays on 3.11, so it
# gets its own venv (pyarrow<26 beside it: its numpy<2 pin breaks newer pyarrow). Without such a
# Python this warns and succeeds; the FOCUS tests then skip loudly, and fail under CI=true.
FOCUS_VENV := .venv-focus
FOCUS_STAMP := $(FOCUS_VENV)/.installed
FOCUS_VALIDATOR_VERSION := 2.2.1
FOCUS_PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { command -v $$p; break; }; done)

$(FOCUS_STAMP):
	@if [ -z "$(FOCUS_PYTHON)" ]; then \
		echo "!!! WARNING: no Python >= 3.12 found (PATH, pyenv): focus-validator not installed;" >&2; \
		echo "!!! the FOCUS validator tests will SKIP here and FAIL under CI=true (make FOCUS_PYTHON=/path/to/python3.12)." >&2; \
	else \
		rm -rf $(FOCUS_VENV) && $(FOCUS_PYTHON) -m venv $(FOCUS_VENV) && \
		$(FOCUS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
			focus-validator==$(FOCUS_VALIDATOR_VERSION) "pyarrow<26" && touch $@; \
	fi

focus-validator: $(FOCUS_STAMP) ## create .venv-focus with focus-validator (Python >= 3.12; warns and skips without one)

# Test files run on TEST_WORKERS processes (pytest-xdist), each file's tests on one worker so
# module fixtures (an emulator, an Airflow home) are made once; most of a file's time is spent
# in Airflow and emulator subprocesses, so two workers keep both cores busy.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile --durations=15

test: $(STAMP) lint docs focus-validator ## lint, build the docs (--strict), then run the whole test suite (unit, integration, e2e) on TEST_WORKERS processes
	$(BIN)/pytest -m "not stack" $(PYTEST_PARALLEL)

test-fast: $(STAMP) ## the edit-test loop: every test not marked slow or stack, no lint (CI runs make test)
	$(BIN)/pytest -m "not stack and not slow" $(PYTEST_PARALLEL)

test-stack: $(STAMP) ## run the production topology natively (PostgreSQL + Redis + CeleryExecutor)
	$(BIN)/pytest -m stack -s

lint: $(STAMP) ## ruff check, ruff format --check, mypy on include/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The site's configuration reference is generated from the pydantic models at build time
# (docs/hooks/config_reference.py); --strict turns a broken link or anchor into a failure.
docs: $(STAMP) ## build the documentation site into site/ (mkdocs --strict; no network needed)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

DOCS_PORT ?= 8000
docs-serve: $(STAMP) ## serve the documentation on 127.0.0.1:8000 (DOCS_PORT=...), rebuilt on every edit
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict -a 127.0.0.1:$(DOCS_PORT)

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## run the benchmarks; figures are printed and written to bench/results/
	$(BIN)/python bench/emulator.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/writer.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/forecast.py
	$(BIN)/python bench/verify.py

clean: ## remove the venv, Airflow home, outputs and caches
	rm -rf $(VENV) $(FOCUS_VENV) .airflow output data site .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Airflow's own CLI in the project's environment, e.g. make airflow ARGS="dags test vapi_chargeback_monthly 2026-11-01";
# outside make, `vapi-chargeback airflow dags test …` does the same (it migrates the database first when needed).
airflow: $(STAMP) ## run airflow ARGS="…" in the project's environment (migrates its database first when needed)
	$(BIN)/vapi-chargeback airflow -- $(ARGS)

UI_PORT ?= 8080
ui: $(STAMP) ## serve the Airflow UI on 127.0.0.1:8080 (UI_PORT=...) with the Chargeback statements page
	$(BIN)/airflow db migrate >/dev/null
	@echo "Chargeback statements: http://127.0.0.1:$(UI_PORT)/plugin/chargeback-statements"
	@echo "Sign in as admin; the password is in .airflow/simple_auth_manager_passwords.json.generated"
	@echo "(written when the server first starts). Ctrl-C stops it."
	$(BIN)/airflow api-server --apps core -H 127.0.0.1 -p $(UI_PORT)
