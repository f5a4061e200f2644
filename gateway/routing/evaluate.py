"""Offline evaluation: run the router over a catalog and cases in the common routing-data format.

Usage: ``python -m gateway.routing.evaluate --catalog catalog.json --cases cases.jsonl``.
The last line printed is a JSON object with the metrics (definitions in routing-data's README).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gateway.routing.catalog import Catalog
from gateway.routing.router import Router
from gateway.routing.settings import RoutingSettings


@dataclass(frozen=True)
class Case:
    """One evaluation prompt and what it needs; no servers means "offer nothing"."""

    id: str
    prompt: str
    servers: tuple[str, ...]
    tools: tuple[tuple[str, ...], ...] = ()
    history: tuple[str, ...] = field(default=())


def load_catalog(path: str | Path) -> Catalog:
    """A catalog from a ``catalog.json`` file."""
    return Catalog.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def load_cases(path: str | Path) -> list[Case]:
    """Cases from a ``cases.jsonl`` file; ``a|b`` tool entries are alternatives."""
    cases = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        cases.append(
            Case(
                id=str(raw.get("id", len(cases))),
                prompt=raw["prompt"],
                servers=tuple(raw.get("servers", ())),
                tools=tuple(tuple(entry.split("|")) for entry in raw.get("tools", ())),
                history=tuple(raw.get("history", ())),
            )
        )
    return cases


def evaluate(router: Router, cases: Iterable[Case], *, search: bool = True) -> dict[str, Any]:
    """Ranking and selection metrics plus per-decision latency percentiles.

    ``search_at_10``: ``find_tools`` queried with the prompt itself (its thorough ranking), the
    share of the case's tools in the first 10 results; ``offered_tool_recall``: the share of the
    case's tools in the offer itself.
    """
    top1 = recall3 = offered = tool5 = tool10 = all5 = offered_tool = searched = 0.0
    needing = no_tool = no_tool_ok = with_tools = offered_tools = 0
    timings: list[float] = []
    cpu: list[float] = []
    escalated = 0
    server_of = {t.qualified_name: t.server for t in router.catalog.tools}
    tool_of = {t.qualified_name: t for t in router.catalog.tools}
    for case in cases:
        started, started_cpu = time.perf_counter(), time.thread_time()
        ranking = router.rank(case.prompt, history=case.history)
        decision = router.decide(case.prompt, ranking)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
        escalated += "semantic" in ranking.latency_ms and "first_stage" in ranking.latency_ms
        if not case.servers:
            no_tool += 1
            no_tool_ok += not decision.tools
            continue
        needing += 1
        offered_tools += len(decision.tools)
        gold = set(case.servers)
        ranked = ranking.servers.names(3)
        top1 += ranked[0] in gold if ranked else 0
        recall3 += len(gold & set(ranked[:3])) / len(gold)
        # A server counts as offered only with at least one of its tools in the offer.
        served = {server_of[name] for name in decision.tools if name in server_of}
        offered += len(gold & served) / len(gold)
        if case.tools:
            with_tools += 1
            tools = [f"{t.server}/{t.name}" for t, _ in ranking.tools[:10]]
            hits5 = [any(a in tools[:5] for a in entry) for entry in case.tools]
            hits10 = [any(a in tools for a in entry) for entry in case.tools]
            tool5 += sum(hits5) / len(hits5)
            tool10 += sum(hits10) / len(hits10)
            all5 += all(hits5)
            qualified = {f"{t.server}/{t.name}" for t in map(tool_of.get, decision.tools) if t}
            offered_tool += sum(any(a in qualified for a in e) for e in case.tools) / len(hits5)
            if search:
                found = router.rank(case.prompt, thorough=True).tools[:10]
                names = {f"{t.server}/{t.name}" for t, _ in found}
                searched += sum(any(a in names for a in e) for e in case.tools) / len(hits5)
    timings.sort()
    cpu.sort()
    return {
        "cases": needing + no_tool,
        "server_top1": _ratio(top1, needing),
        "server_recall_at_3": _ratio(recall3, needing),
        "tool_recall_at_5": _ratio(tool5, with_tools),
        "tool_recall_at_10": _ratio(tool10, with_tools),
        "tools_all_in_top5": _ratio(all5, with_tools),
        "offered_server_recall": _ratio(offered, needing),
        "offered_tool_recall": _ratio(offered_tool, with_tools),
        "search_at_10": _ratio(searched, with_tools) if search else None,
        "mean_tools_offered": _ratio(offered_tools, needing),
        "no_tool_accuracy": _ratio(no_tool_ok, no_tool),
        "p50_ms": _percentile(timings, 0.50),
        "p99_ms": _percentile(timings, 0.99),
        "cpu_p50_ms": _percentile(cpu, 0.50),
        "cpu_p99_ms": _percentile(cpu, 0.99),
        # Share of decisions the first stage passed on to the local model.
        "escalated": _ratio(escalated, len(cpu)),
    }


def learned_from(catalog: Catalog, cases: Iterable[Case]) -> dict[str, list[str]]:
    """Examples as the gateway learns them: each case's prompt, for every tool it needed."""
    qualified = {f"{t.server}/{t.name}": t.qualified_name for t in catalog.tools}
    examples: dict[str, list[str]] = {}
    for case in cases:
        for entry in case.tools:
            name = qualified.get(entry[0])
            if name:
                examples.setdefault(name, []).insert(0, case.prompt)  # newest first
    return examples


def evaluate_learning(
    catalog: Catalog, cases: Sequence[Case], settings: RoutingSettings
) -> dict[str, Any]:
    """Learning from use, measured without peeking: learn from one half of the cases, evaluate
    on the other, then swap; the metrics are the mean of the two runs."""
    halves = (cases[0::2], cases[1::2])
    runs = []
    for learn, test in (halves, halves[::-1]):
        router = build_router(catalog, settings, examples=learned_from(catalog, learn))
        router.warm()
        runs.append(evaluate(router, test, search=False))
    return {
        key: (round((a + b) / 2, 4) if isinstance(a, float) and isinstance(b, float) else a)
        for key, a, b in ((k, runs[0][k], runs[1][k]) for k in runs[0])
    }


def _ratio(part: float, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[index], 3)


def settings_in_effect(
    env_file: str | Path = ".env", environ: Mapping[str, str] | None = None
) -> tuple[RoutingSettings, dict[str, str]]:
    """The routing settings the gateway would use here: ``ROUTING_*`` from the environment over
    ``env_file`` (the gateway's own rule), and the variables that changed them."""
    # The gateway's own settings model (a command line's way in; nothing in routing/ needs it).
    from gateway.settings import Settings, process_environment

    merged = process_environment(env_file, environ)
    overrides = {k: v for k, v in merged.items() if k.startswith("ROUTING_")}
    return Settings.from_env(overrides).routing, overrides


def settings_dict(settings: RoutingSettings) -> dict[str, Any]:
    """Every setting as JSON-ready values, for printing beside the figures."""
    return {
        f.name: dict(value) if isinstance(value, Mapping) else value
        for f in fields(settings)
        for value in [getattr(settings, f.name)]
    }


def build_router(
    catalog: Catalog,
    settings: RoutingSettings,
    *,
    examples: dict[str, list[str]] | None = None,
) -> Router:
    """A router with the settings' own encoders, as the gateway builds it."""
    return Router(catalog, settings, examples=examples)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--limit", type=int, default=0, help="only the first N cases")
    parser.add_argument("--semantic", choices=("default", "on", "off"), default="default")
    parser.add_argument(
        "--learn-half",
        action="store_true",
        help="learn examples from one half of the cases, evaluate on the other (and swap)",
    )
    parser.add_argument("--env-file", default=".env", help="read ROUTING_* from it, as the gateway")
    args = parser.parse_args(argv)
    settings, overrides = settings_in_effect(args.env_file)
    if args.semantic != "default":
        settings = replace(settings, semantic=args.semantic == "on")
    catalog = load_catalog(args.catalog)
    cases = load_cases(args.cases)
    if args.limit:
        cases = cases[: args.limit]
    started = time.perf_counter()
    router = build_router(catalog, settings)
    index_ms = (time.perf_counter() - started) * 1000
    # Model loading and catalog encoding happen once per catalog, not per decision.
    router.warm()
    router.route("warm up the query encoder")
    result = (
        evaluate_learning(catalog, cases, settings) if args.learn_half else evaluate(router, cases)
    )
    result["index_ms"] = round(index_ms, 1)
    result["method"] = "hybrid" if router.semantic_enabled else "lexical"
    result["learned"] = "half" if args.learn_half else "none"
    out = sys.stdout
    out.write(f"settings: {json.dumps(overrides or 'shipped defaults')}\n")
    out.write(f"settings in effect: {json.dumps(settings_dict(settings))}\n")
    out.write(
        f"catalog: {args.catalog} ({len(catalog.servers)} servers, {len(catalog.tools)} tools)\n"
    )
    out.write(f"cases: {args.cases} ({len(cases)})\n")
    out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
