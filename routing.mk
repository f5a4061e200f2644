# Intelligent routing targets; the main Makefile includes this file (`include routing.mk`).
PYTHON ?= .venv/bin/python
ROUTING_DATA ?= ../shared/routing-data
CATALOG ?= $(ROUTING_DATA)/livemcpbench/catalog.json
CASES ?= $(ROUTING_DATA)/livemcpbench/cases.jsonl

.PHONY: routing-eval routing-report routing-bench

routing-eval: ## Evaluate the router on CATALOG and CASES (metrics as JSON on the last line)
	$(PYTHON) -m gateway.routing.evaluate --catalog $(CATALOG) --cases $(CASES)

routing-report: ## Run every routing dataset and the benchmark; write docs/routing-results.md
	$(PYTHON) -m gateway.routing.report --data $(ROUTING_DATA) --out docs/routing-results.md

routing-bench: ## Routing decision latency for 50, 500 and 5,000 synthetic tools on one core
	$(PYTHON) -m gateway.routing.benchmark --sizes 50 500 5000
