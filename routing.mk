# Intelligent routing targets; the main Makefile includes this file (`include routing.mk`).

# The shared routing datasets (not in this repository). Not named ROUTING_*: make exports a
# command-line variable, and the gateway refuses a ROUTING_* variable it does not know.
DATASETS ?= ../shared/routing-data
CATALOG ?= $(DATASETS)/livemcpbench/catalog.json
CASES ?= $(DATASETS)/livemcpbench/cases.jsonl

.PHONY: routing-eval routing-report routing-bench bench-routing

routing-eval: $(VENV)/.runtime-installed ## Evaluate the router on CATALOG and CASES (metrics as JSON on the last line)
	@for f in $(CATALOG) $(CASES); do test -f "$$f" || { echo "no such file: $$f (set CATALOG=... CASES=..., or DATASETS=<the routing-data folder>)" >&2; exit 1; }; done
	$(BIN)/python -m gateway.routing.evaluate --catalog $(CATALOG) --cases $(CASES)

routing-report: $(VENV)/.runtime-installed ## Run every routing dataset and the benchmark; write docs/routing-results.md
	@test -d $(DATASETS) || { echo "no routing datasets in $(DATASETS): set DATASETS=<the routing-data folder>" >&2; exit 1; }
	$(BIN)/python -m gateway.routing.report --data $(DATASETS) --out docs/routing-results.md

bench-routing: $(VENV)/.runtime-installed ## Run every routing dataset; write docs/routing-results.md and README's table
	@test -d $(DATASETS) || { echo "no routing datasets in $(DATASETS): set DATASETS=<the routing-data folder>" >&2; exit 1; }
	$(BIN)/python -m gateway.routing.report --data $(DATASETS) --out docs/routing-results.md --readme README.md

routing-bench: $(VENV)/.runtime-installed ## Routing decision latency for 50, 500 and 5,000 synthetic tools on one core
	$(BIN)/python -m gateway.routing.benchmark --sizes 50 500 5000
