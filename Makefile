# MCP Gateway — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
UV_VERSION := 0.13.9

.DEFAULT_GOAL := help

.PHONY: help run test test-tools lint format settings-table clean up down down-volumes status logs restart scale test-stack validate-deploy

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# uv installs the pinned requirements several times faster than pip (a fresh `make run`
# answers in about 25 s, 18 of them installing); it is itself pinned and installed with pip.
$(BIN)/uv: | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/python -m gateway.routing.prepare
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt
	@touch $@

run: $(VENV)/.runtime-installed ## Run the gateway on 127.0.0.1:8000 with embedded defaults (no keys; PostgreSQL embedded in instance/)
	ENVIRONMENT=$${ENVIRONMENT:-development} BIND=$${BIND:-127.0.0.1:8000} \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(VENV)/.dev-installed test-tools ## Run the test suite (PostgreSQL: the local server, else an embedded one)
	$(BIN)/pytest $(PYTEST_ARGS)

# The deployment tests run a real nginx in front of the gateway (tests/test_deploy_e2e.py).
test-tools: ## Install nginx for the deployment tests (apt, as root); otherwise say how
	@if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "nginx is missing; installing it (apt-get install nginx)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	else \
		echo "nginx is missing: the deployment tests will fail until you run sudo apt-get install -y nginx (or brew install nginx)" >&2; \
	fi

lint: $(VENV)/.dev-installed ## Lint and check formatting (ruff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed ## Format the code (ruff)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

settings-table: $(VENV)/.runtime-installed ## Write README's configuration table from the settings model (gateway/settings.py)
	$(BIN)/python -c 'from gateway.settings import write_readme_table; write_readme_table("README.md")'

include routing.mk
include bench.mk

clean: ## Remove the virtualenv, caches and the development database
	rm -rf $(VENV) instance .pytest_cache .ruff_cache

# Deployment with compose (README, "Deploy"): deploy/compose.py finds docker compose, podman
# compose (podman 4.7+) or podman-compose; CONTAINER=docker|podman or COMPOSE="..." chooses.
# Their values, and GATEWAY_PORT's (default 8000, also read from .env), reach it from the
# command line or the environment.
STACK := $(PYTHON) deploy/compose.py

up: ## Start PostgreSQL, the gateway and nginx (creates secrets/ on first run), wait until healthy
	@$(STACK) up

down: ## Stop and remove every container (all replicas) and the networks; the database volume stays
	@$(STACK) down

down-volumes: ## Like down, and delete the database volume with all its data
	@$(STACK) down-volumes

status: ## Show the containers and their health
	@$(STACK) status

logs: ## Follow the logs of every replica (SERVICE=gateway for one service; FOLLOW=0 to print and exit)
	@$(STACK) logs $(SERVICE)

restart: ## Restart every gateway replica, one at a time (after a config change: make up)
	@$(STACK) restart gateway

N ?= 2
scale: ## Run N gateway replicas behind nginx (make scale N=3; default 2)
	@$(STACK) scale $(N)

# The real stack end to end (tests/stack_drill.py); not part of `make test`. Uses the engine
# installed; as root with none, ../shared/containers/setup-podman.sh (beside the repository) installs podman.
SETUP_PODMAN ?= ../shared/containers/setup-podman.sh
test-stack: $(VENV)/.dev-installed ## Build and run the real compose stack: chat, scale, kill a replica, down/up
	@if ! PATH="$(BIN):$$PATH" $(STACK) which >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && [ -f $(SETUP_PODMAN) ]; then \
		bash $(SETUP_PODMAN); fi
	PATH="$(BIN):$$PATH" $(BIN)/pytest -p no:cacheprovider -v tests/stack_drill.py $(PYTEST_ARGS)

validate-deploy: $(VENV)/.dev-installed ## Check the deployment files: compose schema, hadolint, nginx -t, Kubernetes schemas
	$(BIN)/pytest -q tests/test_deploy_files.py
