# One task runner for developers, the README and .ci/run.
.PHONY: help demo test faults venv lint format migrations services

VENV := .venv
PY := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff

help:
	@echo "make demo        run the demo (SQLite): admin login, server, worker, demo jobs"
	@echo "                 (installs '.[demo]' only: pip, no apt-get, no drivers, no browser)"
	@echo "make test        the whole suite on SQLite, PostgreSQL, MariaDB and Redis (ARGS=\"-k x\")"
	@echo "make faults      the fault suite's long versions and their table (docs/reliability.md)"
	@echo "make venv        create/update .venv for the tests (apt packages, pip install -e '.[dev]')"
	@echo "make lint        ruff check + ruff format --check"
	@echo "make format      ruff format + ruff check --fix"
	@echo "make migrations  makemigrations django_jobs"
	@echo "make services    make sure PostgreSQL, Redis and MariaDB are running"

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh $(ARGS)

faults:
	bash scripts/faults.sh $(ARGS)

venv:
	bash -c 'source scripts/lib.sh && ensure_venv'

lint: venv
	$(RUFF) check .
	$(RUFF) format --check .

format: venv
	$(RUFF) format .
	$(RUFF) check --fix .

migrations: venv
	$(PY) manage.py makemigrations django_jobs

services:
	bash scripts/services.sh
