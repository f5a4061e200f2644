# ruff: noqa: E501, C901  (a benchmark driver: long table rows, one long main loop)
"""routing: decision latency of ``Router.route`` for catalogs of 50, 500 and 5,000 tools.

Run from the repo root: ``.venv/bin/python -m bench.routing_latency [--tools 50,500,5000]``.
Catalogs are synthetic (10 tools per server, names and descriptions drawn from a fixed
vocabulary, seeded); every prompt is distinct, so the query-vector cache never answers and
each decision pays for its own encoding, as a new user prompt does. Two configurations: the
shipped default (lexical + local embedding model) and lexical only (ROUTING_SEMANTIC=false).
The index build (document encoding, once per catalog and process) is reported separately.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace

from gateway.routing import Catalog, Router, RoutingSettings, ServerDescriptor
from gateway.tools import Tool

DOMAINS = [
    ("github", "Repositories, issues and pull requests on GitHub", ["git", "repo", "issue", "pr"]),
    (
        "calendar",
        "Events, meetings and availability in the team calendar",
        ["meeting", "event", "schedule"],
    ),
    (
        "weather",
        "Forecasts and current conditions for any city",
        ["forecast", "rain", "temperature"],
    ),
    ("postgres", "Query and describe tables in the analytics database", ["sql", "table", "query"]),
    ("slack", "Read and post messages in Slack channels", ["chat", "channel", "message"]),
    ("files", "Read, write and search files in the workspace", ["file", "directory", "search"]),
    ("jira", "Tickets, sprints and boards in Jira", ["ticket", "sprint", "board"]),
    ("maps", "Directions, places and distances", ["route", "place", "distance"]),
    ("email", "Search, read and send email", ["mail", "inbox", "send"]),
    (
        "billing",
        "Invoices, payments and subscriptions of customers",
        ["invoice", "payment", "refund"],
    ),
]
VERBS = [
    "get",
    "list",
    "create",
    "update",
    "delete",
    "search",
    "describe",
    "export",
    "import",
    "sync",
]
NOUNS = [
    "item",
    "record",
    "report",
    "summary",
    "entry",
    "note",
    "status",
    "history",
    "owner",
    "label",
]
PROMPTS = [
    "what's the weather like in Paris tomorrow",
    "open a ticket for the login bug in the current sprint",
    "show me the last five invoices of customer ACME",
    "find the file that defines the routing settings",
    "post a summary of the release in the engineering channel",
    "how far is it from Berlin to Munich by car",
    "list the open pull requests that touch the database layer",
    "schedule a meeting with Ada next Tuesday afternoon",
    "which tables hold the payment events",
    "search my inbox for the contract from last week",
]


def catalog(n_tools: int, seed: int = 7) -> Catalog:
    rng = random.Random(seed)
    servers, tools = [], []
    for s in range(max(1, n_tools // 10)):
        domain, description, keywords = DOMAINS[s % len(DOMAINS)]
        name = f"{domain}-{s}"
        servers.append(
            ServerDescriptor(
                name=name, description=f"{description} (instance {s}).", keywords=tuple(keywords)
            )
        )
        for t in range(10):
            verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
            tools.append(
                Tool(
                    server=name,
                    name=f"{verb}_{domain}_{noun}_{t}",
                    description=f"{verb.capitalize()} a {domain} {noun}. {description}.",
                    input_schema={
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "description": f"the {noun} id"},
                            "query": {
                                "type": "string",
                                "description": f"text to match in {domain}",
                            },
                        },
                    },
                )
            )
    return Catalog.build(servers, tools)


_serial = iter(range(10**9))


def measure(router: Router, calls: int) -> dict[str, float]:
    # The query-vector cache is per process: a global serial keeps every prompt new.
    for i in range(5):
        router.route(f"{PROMPTS[i % len(PROMPTS)]} (warm-up {next(_serial)})")
    samples = []
    for i in range(calls):
        prompt = f"{PROMPTS[i % len(PROMPTS)]} (case {next(_serial)})"
        start = time.perf_counter()
        router.route(prompt)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p90_ms": samples[int(len(samples) * 0.9)],
        "p99_ms": samples[max(0, int(len(samples) * 0.99) - 1)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default="50,500,5000")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    rows = []
    out = sys.stdout
    out.write(
        f"{'tools':>6} {'mode':>8} {'index ms':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}\n"
    )
    for n in (int(x) for x in args.tools.split(",")):
        cat = catalog(n)
        for mode, settings in (
            ("hybrid", RoutingSettings()),
            ("lexical", replace(RoutingSettings(), semantic=False)),
        ):
            start = time.perf_counter()
            router = Router(cat, settings)
            router.route(f"first decision builds the vectors {next(_serial)}")
            index_ms = (time.perf_counter() - start) * 1000
            row = {
                "tools": len(cat.tools),
                "mode": mode,
                "index_ms": index_ms,
                **measure(router, args.calls),
            }
            rows.append(row)
            out.write(
                f"{row['tools']:>6} {mode:>8} {index_ms:9.0f} {row['p50_ms']:8.2f} {row['p90_ms']:8.2f} "
                f"{row['p99_ms']:8.2f}\n"
            )
            out.flush()
    out.write("BENCH_JSON " + json.dumps({"rows": rows}) + "\n")


if __name__ == "__main__":
    main()
