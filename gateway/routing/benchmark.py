"""Decision latency on synthetic catalogs of 50, 500 and 5,000 tools, pinned to one core.

Usage: ``python -m gateway.routing.benchmark [--sizes 50 500 5000] [--prompts 200]``.
The last line printed is a JSON object: per size and mode, index time and p50/p99 per decision.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from gateway.routing.catalog import Catalog, ServerDescriptor
from gateway.routing.router import Router
from gateway.routing.settings import RoutingSettings
from gateway.tools import Tool

NOUNS = """account address alert album appointment article audio balance bank booking branch
bucket budget calendar camera card cart channel chart city commit contact container contract
country coupon course currency customer dashboard database dataset deadline deployment device
diagram document domain email employee event expense feed file flight folder forecast form
game graph hotel image invoice issue job keyword language lead library list location log map
market meeting message metric model movie music network note order package page password
payment photo pipeline playlist podcast policy post price product profile project query quote
recipe record reminder report repository restaurant review route sale schedule score secret
server session sheet shipment slide song spreadsheet stock store story subscription table task
team template ticket timezone token track transaction translation trip tweet user video
vulnerability wallet weather webhook website wiki workflow""".split()
VERBS = """add analyze archive book cancel check compare compress convert copy count create
delete deploy describe download edit estimate export fetch filter find forecast generate get
import index list merge monitor move open parse plan post predict publish query rank read
remove rename render reply resize restore review run save schedule scan search send share
sort split start stop summarize sync tag track transcribe translate update upload validate
watch""".split()


def synthetic_catalog(tools: int, *, per_server: int = 10, seed: int = 7) -> Catalog:
    """A catalog of ``tools`` plausible tools over ``tools / per_server`` servers."""
    rng = random.Random(seed)
    servers: list[ServerDescriptor] = []
    made: list[Tool] = []
    for s in range(max(1, tools // per_server)):
        topic = rng.sample(NOUNS, 3)
        name = f"{topic[0]}-{topic[1]}-{s}"
        servers.append(
            ServerDescriptor(name, f"Manage {topic[0]}s, {topic[1]}s and {topic[2]}s.", ())
        )
        for t in range(per_server):
            verb, noun, other = rng.choice(VERBS), rng.choice(topic), rng.choice(NOUNS)
            made.append(
                Tool(
                    server=name,
                    name=f"{verb}_{noun}_{t}",
                    description=f"{verb.capitalize()} a {noun} by {other} and return the {noun}.",
                    input_schema={
                        "type": "object",
                        "properties": {
                            f"{noun}_id": {"type": "string", "description": f"The {noun}."},
                            other: {"type": "string", "description": f"Which {other} to use."},
                        },
                    },
                )
            )
    return Catalog.build(servers, made[:tools])


def synthetic_prompts(count: int, *, seed: int = 11) -> list[str]:
    """Prompts of 6–30 words, some on topic and some plain chat."""
    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        if i % 5 == 0:
            prompts.append(f"hi, can you write me a short poem about the {rng.choice(NOUNS)}?")
            continue
        words = [rng.choice(VERBS), "the", rng.choice(NOUNS), "for", "my", rng.choice(NOUNS)]
        words += rng.sample(NOUNS + VERBS, rng.randint(0, 24))
        if i % 3 == 0:
            # Every third prompt has two parts, which the dense stage scores one by one.
            words += ["then", rng.choice(VERBS), "the", rng.choice(NOUNS), rng.choice(NOUNS)]
        prompts.append("Please " + " ".join(words) + "?")
    return prompts


def measure(router: Router, prompts: Sequence[str]) -> dict[str, float]:
    """p50 and p99 of whole decisions in milliseconds, wall clock and CPU time.

    CPU time is reported too because wall time on a shared machine also counts the time other
    processes held the core.
    """
    router.route(prompts[0])
    router.forget_queries()
    wall, cpu = [], []
    for prompt in prompts:
        started, started_cpu = time.perf_counter(), time.thread_time()
        router.route(prompt)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    return {
        "p50_ms": _percentile(wall, 0.50),
        "p99_ms": _percentile(wall, 0.99),
        "cpu_p50_ms": _percentile(cpu, 0.50),
        "cpu_p99_ms": _percentile(cpu, 0.99),
    }


# Routing modes measured: lexical stage alone, the static model alone, the local model for every
# prompt (the earlier default), and the shipped default (static first stage, the local model only
# when it is unsure). The prompts are English: the multilingual index is left out (its build
# time is reported by the evaluation, ``index_ms``).
MODES: dict[str, dict[str, Any]] = {
    "lexical": {"semantic": False, "multilingual": False},
    "wordllama": {"local_model": "wordllama", "multilingual": False},
    "every prompt": {"first_stage": "none", "multilingual": False},
    "default": {"multilingual": False},
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 5000])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = parser.parse_args(argv)
    # One core, as the targets are stated; ORT is already single-threaded in the encoder.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    prompts = synthetic_prompts(args.prompts)
    results: dict[str, Any] = {}
    for size in args.sizes:
        catalog = synthetic_catalog(size)
        for mode in args.modes:
            settings = replace(RoutingSettings(), **MODES[mode])
            started = time.perf_counter()
            router = Router(catalog, settings)
            router.warm()
            index_ms = (time.perf_counter() - started) * 1000
            row = {"index_ms": round(index_ms, 1), **measure(router, prompts)}
            results[f"{size}/{mode}"] = row
            sys.stdout.write(f"{size:>6} tools  {mode:<12} {json.dumps(row)}\n")
            sys.stdout.flush()
    sys.stdout.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
