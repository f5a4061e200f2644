# MCP Gateway — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help run test lint format clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

run: $(VENV)/.runtime-installed ## Run the gateway on 127.0.0.1:8000 with embedded defaults (no keys, no PostgreSQL)
	ENVIRONMENT=$${ENVIRONMENT:-development} BIND=$${BIND:-127.0.0.1:8000} \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(VENV)/.dev-installed ## Run the test suite (needs PostgreSQL; see README)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed ## Lint and check formatting (ruff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed ## Format the code (ruff)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

include bench.mk

clean: ## Remove the virtualenv, caches and the development database
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
