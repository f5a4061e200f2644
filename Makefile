# MCP Gateway — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
UV_VERSION := 0.13.9

.DEFAULT_GOAL := help

.PHONY: help run test test-tools lint format clean up down status logs restart scale validate-deploy

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# uv installs the pinned requirements several times faster than pip (a fresh `make run` is
# up in seconds); it is itself pinned and installed with pip.
$(BIN)/uv: | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
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

include routing.mk
include bench.mk

clean: ## Remove the virtualenv, caches and the development database
	rm -rf $(VENV) instance .pytest_cache .ruff_cache

# Deployment with compose (README, "Deploy"): podman when installed, else docker.
CONTAINER ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
COMPOSE ?= $(CONTAINER) compose
GATEWAY_PORT ?= 8000
GATEWAY_URL := http://127.0.0.1:$(GATEWAY_PORT)
N ?= 2

up: ## Start PostgreSQL, the gateway and nginx (creates secrets/ on first run), wait until healthy
	@$(PYTHON) deploy/stack.py secrets secrets
	GATEWAY_PORT=$(GATEWAY_PORT) $(COMPOSE) up -d --build
	@echo "Waiting for $(GATEWAY_URL)/health ..."
	@$(PYTHON) deploy/stack.py wait $(GATEWAY_URL)/health 180 || { $(COMPOSE) ps; exit 1; }
	@$(COMPOSE) ps
	@echo
	@echo "MCP Gateway is up at $(GATEWAY_URL) (production mode: no mock authentication)."
	@echo "The first admin, either way:"
	@echo "  - ADMIN_EMAIL=you@example.com in .env, then make up again; the password is in secrets/admin_password"
	@echo "  - $(COMPOSE) exec gateway flask --app wsgi create-admin you@example.com   (prompts for a password)"
	@echo "A token:"
	@echo "  curl -s -X POST $(GATEWAY_URL)/auth/login -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"email\": \"you@example.com\", \"password\": \"...\"}'"

down: ## Stop and remove the containers (the database volume stays)
	$(COMPOSE) down

status: ## Show the containers and their health
	$(COMPOSE) ps

logs: ## Follow the logs (SERVICE=gateway for one service)
	$(COMPOSE) logs -f --tail=200 $(SERVICE)

restart: ## Restart the gateway replicas (after a config change: make up)
	$(COMPOSE) restart gateway

scale: ## Run N gateway replicas behind nginx (make scale N=3)
	GATEWAY_PORT=$(GATEWAY_PORT) $(COMPOSE) up -d --no-recreate --scale gateway=$(N)

validate-deploy: $(VENV)/.dev-installed ## Check the deployment files: compose schema, hadolint, nginx -t, Kubernetes schemas
	$(BIN)/pytest -q tests/test_deploy_files.py
