from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.routing import Router, RoutingSettings
from gateway.routing.evaluate import (
    evaluate,
    evaluate_learning,
    learned_from,
    load_cases,
    load_catalog,
    main,
    settings_in_effect,
)

FIXTURES = Path(__file__).parent / "fixtures" / "routing"


def test_evaluate_cli_prints_known_metrics_on_its_last_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "--catalog",
            str(FIXTURES / "catalog.json"),
            "--cases",
            str(FIXTURES / "cases.jsonl"),
            "--semantic",
            "off",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # 11 cases: 2 need no tool, 9 do; only "umbrella in Paris" has no lexical match.
    assert result["cases"] == 11
    assert result["server_top1"] == pytest.approx(8 / 9, abs=1e-4)
    assert result["server_recall_at_3"] == pytest.approx(8 / 9, abs=1e-4)
    assert result["tool_recall_at_5"] == pytest.approx(8 / 9, abs=1e-4)
    assert result["tool_recall_at_10"] == pytest.approx(8 / 9, abs=1e-4)
    assert result["no_tool_accuracy"] == 1.0
    assert result["method"] == "lexical"
    assert 0 <= result["p50_ms"] <= result["p99_ms"]


def test_alternatives_count_once_and_missing_cases_give_none() -> None:
    router = Router(load_catalog(FIXTURES / "catalog.json"))
    cases = [c for c in load_cases(FIXTURES / "cases.jsonl") if c.id == "t11"]
    assert cases[0].tools == (("filesystem/search_files", "github/search_repositories"),)
    result = evaluate(router, cases)
    assert result["tool_recall_at_5"] == 1.0
    assert result["no_tool_accuracy"] is None


def test_learning_split_learns_from_one_half_and_scores_the_other() -> None:
    catalog = load_catalog(FIXTURES / "catalog.json")
    cases = load_cases(FIXTURES / "cases.jsonl")
    examples = learned_from(catalog, cases[0::2])
    learned_prompts = {p for prompts in examples.values() for p in prompts}
    assert learned_prompts == {c.prompt for c in cases[0::2] if c.tools}
    assert all("__" in name for name in examples)  # qualified tool names, as the router keys them
    result = evaluate_learning(catalog, cases, RoutingSettings(semantic=False))
    # Lexical only ignores learned vectors: the mean of the halves equals the plain metric's mean.
    halves = [
        evaluate(Router(catalog, RoutingSettings(semantic=False)), h)
        for h in (cases[1::2], cases[0::2])
    ]
    assert result["server_top1"] == pytest.approx(
        (halves[0]["server_top1"] + halves[1]["server_top1"]) / 2, abs=1e-3
    )


def test_the_evaluation_reads_routing_settings_as_the_gateway_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ROUTING_THRESHOLD=0.9\nROUTING_TOOL_BUDGET=7\nOTHER=1\n")
    monkeypatch.setenv("ROUTING_TOOL_BUDGET", "5")  # the environment wins over .env
    monkeypatch.setenv("ROUTING_SEMANTIC", "false")
    settings, overrides = settings_in_effect(env_file)
    assert (settings.threshold, settings.tool_budget, settings.semantic) == (0.9, 5, False)
    assert overrides == {
        "ROUTING_THRESHOLD": "0.9",
        "ROUTING_TOOL_BUDGET": "5",
        "ROUTING_SEMANTIC": "false",
    }
    cases = ["--catalog", str(FIXTURES / "catalog.json"), "--cases", str(FIXTURES / "cases.jsonl")]
    assert main([*cases, "--env-file", str(env_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    printed = json.loads(lines[1].split(": ", 1)[1])
    assert (printed["threshold"], printed["tool_budget"]) == (0.9, 5)
    assert json.loads(lines[-1])["method"] == "lexical"
    # Threshold 0.9: hardly anything is offered, which the figures must show.
    assert json.loads(lines[-1])["offered_server_recall"] < 0.5


def test_an_embeddings_url_alone_selects_the_endpoint_backend(tmp_path: Path) -> None:
    settings, _ = settings_in_effect(
        tmp_path / "missing.env", {"ROUTING_EMBEDDINGS_URL": "http://127.0.0.1:9/v1"}
    )
    assert settings.semantic_backend == "endpoint"
