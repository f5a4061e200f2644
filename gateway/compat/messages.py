"""Chat Completions messages as the neutral history, kept as the client sent them.

Content parts keep their order and form; system and developer messages keep their place;
an assistant's ``tool_calls`` and the ``tool`` messages answering them are history like any
other. Anything that cannot be carried to the provider is a 400 naming the message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gateway.compat.fields import ProviderKind
from gateway.errors import InvalidParameter
from gateway.llm import Message, ToolCall
from gateway.llm.base import parse_arguments
from gateway.tools import ToolResult

# Part types Anthropic has a block for; OpenAI-compatible upstreams get every part as sent.
ANTHROPIC_PARTS = frozenset({"text", "image_url"})


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(
        str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
    )


def to_history(
    messages: Sequence[Mapping[str, Any]], kinds: Iterable[ProviderKind]
) -> list[Message]:
    """Every message in order, in neutral form; 400 (``param`` ``messages[i]...``) if unusable."""
    anthropic = "anthropic" in set(kinds)
    out: list[Message] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        participant = message.get("name")
        if participant is not None and (anthropic or not isinstance(participant, str)):
            raise InvalidParameter(
                "Anthropic has no author names on messages."
                if anthropic
                else "A message's name must be a string.",
                param=f"{param}.name",
            )
        converted = _message(message, param, anthropic=anthropic)
        if participant is not None:
            converted = replace(converted, participant=participant)
        out.append(converted)
    return out


def _message(message: Mapping[str, Any], param: str, *, anthropic: bool) -> Message:
    role, content = message.get("role"), message.get("content")
    if role in ("system", "developer"):
        return Message(role="system", content=text_of(content), name=str(role))
    if role == "assistant":
        calls = tuple(
            _call(c, f"{param}.tool_calls[{i}]")
            for i, c in enumerate(message.get("tool_calls") or ())
        )
        return Message.assistant(text_of(content), calls)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidParameter(
                "A tool message needs the tool_call_id it answers.",
                param=f"{param}.tool_call_id",
            )
        result = ToolResult(content=({"type": "text", "text": text_of(content)},))
        return Message.tool(call_id, result)
    return _user(content, param, anthropic=anthropic)


def _user(content: Any, param: str, *, anthropic: bool) -> Message:
    if not isinstance(content, list):
        return Message.user(text_of(content))
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind is None:
            raise InvalidParameter("A content part needs a type.", param=f"{param}.content[{i}]")
        if anthropic and kind not in ANTHROPIC_PARTS:
            raise InvalidParameter(
                f"Content parts of type {kind!r} have no Anthropic equivalent.",
                param=f"{param}.content[{i}].type",
            )
        if kind == "image_url" and not _image_url(part):
            raise InvalidParameter(
                "An image_url part needs image_url.url (a data: or https: URL).",
                param=f"{param}.content[{i}].image_url",
            )
        parts.append(dict(part))
    return Message(role="user", content=text_of(content), parts=tuple(parts))


def _image_url(part: Mapping[str, Any]) -> bool:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else None
    return isinstance(url, str) and url.startswith(("data:", "https://", "http://"))


def _call(call: Any, param: str) -> ToolCall:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not call.get("id") or not function.get("name"):
        raise InvalidParameter("A tool call needs an id and a function with a name.", param=param)
    raw = function.get("arguments")
    arguments, error = parse_arguments(raw)
    return ToolCall(
        id=str(call["id"]),
        name=str(function["name"]),
        arguments=arguments,
        raw_arguments=raw if isinstance(raw, str) else json.dumps(raw),
        error=error,
    )
