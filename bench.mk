# Benchmarks (included by the Makefile). Not part of `make test`: a benchmark is not a test.
# `make bench`: the gateway side by side with the upstream called directly and the reference arm.
# `make bench-peers`: the same run with LiteLLM and ContextForge, started by the shared peers scripts.
BENCH_ARGS ?=
# The shared peers harness (LiteLLM and ContextForge start scripts) lives beside the repository.
PEERS_DIR ?= ../shared/bench/peers
export PEERS_TMP ?= /tmp/peers

.PHONY: bench bench-peers bench-peers-stop bench-tools

bench-tools: ## Install wrk, nginx and njs for the benchmarks (apt, as root)
	@if command -v wrk >/dev/null && command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_http_js_module.so ]; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx libnginx-mod-http-js >/dev/null; \
	else \
		echo "make bench needs wrk, nginx and njs: sudo apt-get install wrk nginx libnginx-mod-http-js" >&2; exit 1; \
	fi

bench: $(VENV)/.dev-installed bench-tools ## Benchmark the gateway against the upstream directly and the reference arm (~15 min)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-peers: $(VENV)/.dev-installed bench-tools ## `make bench` plus LiteLLM and ContextForge (installs them on first use)
	@test -x $(PEERS_DIR)/start_litellm.sh || { echo "no peers harness in $(PEERS_DIR) (set PEERS_DIR)" >&2; exit 1; }
	@trap '$(PEERS_DIR)/stop_all.sh' EXIT; \
	$(PEERS_DIR)/start_fake_upstream.sh && \
	$(PEERS_DIR)/start_litellm.sh && \
	$(PEERS_DIR)/start_contextforge.sh && \
	$(BIN)/python -m bench.run --peers $(BENCH_ARGS)

bench-peers-stop: ## Stop whatever the peers scripts started (by their pid files)
	-$(PEERS_DIR)/stop_all.sh
