# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.DEFAULT_GOAL := help
.PHONY: help run test lint openapi bench scaleout up down clean

help:
	@echo "make run      create .venv, install, migrate + seed var/exportctl.sqlite3, serve on :$(PORT) with a webhook worker"
	@echo "make test     create .venv with the test extras and run the whole suite"
	@echo "make openapi  regenerate openapi.yaml from the code"
	@echo "make bench    load-test lookups (cached, any date, deep history), feed pages, writes and fan-out against their references, then a 10-minute mixed soak for RSS, on SQLite and PostgreSQL when it answers (installs wrk if missing)"
	@echo "make lint     ruff and mypy (strict on service/domain/)"
	@echo "make scaleout two APIs + two workers on one PostgreSQL (SCALEOUT_DATABASE_URL), 200 subscriptions, 40 changes"
	@echo "make up/down  start/stop docker-compose.yml (PostgreSQL, Redis, 2 APIs behind nginx, 2 workers)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the package metadata changes.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	EXPORTCTL_WEBHOOK_ALLOW_PRIVATE_TARGETS=$${EXPORTCTL_WEBHOOK_ALLOW_PRIVATE_TARGETS:-true} \
	EXPORTCTL_LOG_FORMAT=$${EXPORTCTL_LOG_FORMAT:-text} \
	PORT=$(PORT) $(BIN)/exportctl run

test: $(VENV)/.installed-test
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		echo "NOTE: chromium/chromedriver not found: the pages' browser tests will be SKIPPED (apt-get install chromium chromium-driver)"
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check service tests bench examples
	$(BIN)/ruff format --check service tests bench examples
	$(BIN)/mypy

openapi: $(VENV)/.installed
	$(BIN)/exportctl openapi write openapi.yaml

bench: $(VENV)/.installed-test
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		(apt-get update -qq && apt-get install -y -qq wrk) || \
		(sudo apt-get update -qq && sudo apt-get install -y -qq wrk); }
	@# PostgreSQL beside SQLite whenever a local server answers (scratch databases, dropped after).
	if [ -z "$${BENCH_POSTGRES_URL+set}" ] && command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1; then \
		export BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres; fi; \
	$(BIN)/python bench/run.py

# A PostgreSQL server database the test may create scratch databases beside (as TEST_DATABASE_URL).
SCALEOUT_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
scaleout: $(VENV)/.installed-test
	TEST_DATABASE_URL=$(SCALEOUT_DATABASE_URL) EXPORTCTL_SCALEOUT_CHANGES=$${EXPORTCTL_SCALEOUT_CHANGES:-40} \
		$(BIN)/python -m pytest -q -s -p no:randomly tests/test_scaleout.py

DOCKER_COMPOSE := docker compose
up:
	@command -v docker >/dev/null || { echo "make up needs Docker (docker compose v2); it is not installed here"; exit 1; }
	@docker compose version >/dev/null 2>&1 || { echo "make up needs the docker compose v2 plugin; docker is here without it"; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make up needs a running Docker daemon; docker is installed but its daemon is not reachable"; exit 1; }
	$(DOCKER_COMPOSE) up --build --detach
	@echo "exportctl on http://localhost:$${EXPORTCTL_PORT:-8000} (nginx in front of api-1 and api-2); make down stops it"

down:
	@command -v docker >/dev/null || { echo "make down needs Docker; it is not installed here"; exit 1; }
	$(DOCKER_COMPOSE) down

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache
