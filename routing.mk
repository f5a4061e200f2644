# Intelligent routing targets; the main Makefile includes this file (`include routing.mk`).

ROUTING_DATA ?= ../shared/routing-data
CATALOG ?= $(ROUTING_DATA)/livemcpbench/catalog.json
CASES ?= $(ROUTING_DATA)/livemcpbench/cases.jsonl

.PHONY: routing-eval routing-report routing-bench bench-routing

routing-eval: $(VENV)/.runtime-installed ## Evaluate the router on CATALOG and CASES (metrics as JSON on the last line)
	$(BIN)/python -m gateway.routing.evaluate --catalog $(CATALOG) --cases $(CASES)

routing-report: $(VENV)/.runtime-installed ## Run every routing dataset and the benchmark; write docs/routing-results.md
	$(BIN)/python -m gateway.routing.report --data $(ROUTING_DATA) --out docs/routing-results.md

bench-routing: $(VENV)/.runtime-installed ## Run every routing dataset; write docs/routing-results.md and README's table
	$(BIN)/python -m gateway.routing.report --data $(ROUTING_DATA) --out docs/routing-results.md --readme README.md

routing-bench: $(VENV)/.runtime-installed ## Routing decision latency for 50, 500 and 5,000 synthetic tools on one core
	$(BIN)/python -m gateway.routing.benchmark --sizes 50 500 5000
