# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.DEFAULT_GOAL := help
.PHONY: help run test lint openapi bench clean

help:
	@echo "make run      create .venv, install, migrate + seed var/exportctl.sqlite3, serve on :$(PORT) with a webhook worker"
	@echo "make test     create .venv with the test extras and run the whole suite"
	@echo "make openapi  regenerate openapi.yaml from the code"
	@echo "make bench    load-test GET /v1/countries/VN against bare Flask (installs wrk if missing); time the snapshot and changes"
	@echo "make lint     ruff and mypy (strict on service/domain/)"

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
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache
