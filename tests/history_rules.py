"""Providers' rules for tool calls in a history, as checks: what makes them answer 400.

OpenAI Chat Completions: an assistant message with ``tool_calls`` must be followed by one
``tool`` message per call id ("An assistant message with 'tool_calls' must be followed by
tool messages responding to each 'tool_call_id'"), and a ``tool`` message must answer a call
of the assistant message right before its run of tool messages.

Anthropic Messages: an assistant turn with ``tool_use`` blocks must be followed by a user turn
whose ``tool_result`` blocks answer exactly those ids ("tool_use ids were found without
tool_result blocks immediately after"), and a ``tool_result`` must answer a ``tool_use`` of
the assistant turn right before it.

Each function returns the violations found (empty when the history would be accepted).
"""

from __future__ import annotations

from typing import Any


def openai_violations(messages: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    open_ids: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_ids:
                problems.append(f"message {i}: tool result {call_id!r} answers no open tool call")
            else:
                open_ids.remove(call_id)
            continue
        if open_ids:
            problems.append(f"message {i} ({role}) comes before the results of {open_ids}")
            open_ids = []
        if role == "assistant":
            open_ids = [c["id"] for c in message.get("tool_calls") or []]
    if open_ids:
        problems.append(f"the history ends before the results of {open_ids}")
    return problems


def anthropic_violations(messages: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    expected: set[str] = set()
    for i, message in enumerate(messages):
        blocks = message.get("content")
        blocks = blocks if isinstance(blocks, list) else [{"type": "text", "text": blocks}]
        results = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
        if expected:
            if message.get("role") != "user" or results != expected:
                problems.append(
                    f"message {i}: expected the results of {sorted(expected)}, "
                    f"got {message.get('role')} with {sorted(results)}"
                )
        elif results:
            problems.append(f"message {i}: tool results {sorted(results)} answer no tool_use")
        expected = (
            {b["id"] for b in blocks if b.get("type") == "tool_use"}
            if message.get("role") == "assistant"
            else set()
        )
    if expected:
        problems.append(f"the history ends before the results of {sorted(expected)}")
    return problems


def test_the_validators_catch_an_interleaved_history():
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    good = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
        {"role": "assistant", "content": "done"},
    ]
    bad = [good[0], good[1], {"role": "user", "content": "b"}, good[2], good[3]]
    assert openai_violations(good) == []
    assert openai_violations(bad)
    use = {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "c1", "content": "r"}
    a_good = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
        {"role": "assistant", "content": "done"},
    ]
    a_bad = [a_good[0], a_good[1], {"role": "user", "content": "b"}, a_good[2], a_good[3]]
    assert anthropic_violations(a_good) == []
    assert anthropic_violations(a_bad)
