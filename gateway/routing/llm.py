"""Optional last stage: a language model picks among the top candidates when scores are unsure."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Candidate:
    """A server offered to the LLM router, with what it knows about it."""

    name: str
    description: str
    score: float
    tools: tuple[str, ...] = ()


class LLMRouter(Protocol):
    """Chooses servers among candidates; ``None`` means "no opinion, keep the ranking"."""

    def __call__(self, prompt: str, candidates: Sequence[Candidate]) -> Sequence[str] | None: ...


class CompletionLLMRouter:
    """An ``LLMRouter`` over a text-completion callable (a provider wrapped by the chat service)."""

    def __init__(self, complete: Callable[[str], str], *, max_candidates: int = 8) -> None:
        self.complete = complete
        self.max_candidates = max_candidates

    def __call__(self, prompt: str, candidates: Sequence[Candidate]) -> Sequence[str] | None:
        shown = list(candidates[: self.max_candidates])
        if not shown:
            return None
        lines = [
            "Pick the tool servers needed to answer the user's message.",
            'Answer with a JSON array of server names only, e.g. ["a", "b"], or [] if none.',
            "",
            "Servers:",
        ]
        for c in shown:
            tools = ", ".join(c.tools[:8])
            lines.append(
                f"- {c.name}: {c.description[:200]}" + (f" (tools: {tools})" if tools else "")
            )
        lines += ["", f"User message: {prompt}"]
        try:
            answer = self.complete("\n".join(lines))
        except Exception:  # noqa: BLE001 - a failing helper must never fail the chat turn
            return None
        return parse_choice(answer, [c.name for c in shown])


def parse_choice(answer: str, allowed: Sequence[str]) -> list[str] | None:
    """Server names from a model's answer, keeping only known ones; ``None`` if unreadable."""
    match = re.search(r"\[.*?\]", answer, re.DOTALL)
    if not match:
        return None
    try:
        names = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(names, list):
        return None
    lookup = {name.lower(): name for name in allowed}
    return [lookup[n.lower()] for n in names if isinstance(n, str) and n.lower() in lookup]
