"""A whole conversation as JSON or Markdown, for download."""

from __future__ import annotations

import json
import uuid

from flask import Response

from gateway.chat.store import all_messages, conversation_json, get_conversation, message_json
from gateway.errors import GatewayError
from gateway.models import ConversationMessage, User


class UnknownFormat(GatewayError):
    code = 400
    error_type = "unknown_format"
    description = "format must be json or markdown."


def export(user: User, conversation_id: uuid.UUID, fmt: str) -> Response:
    conversation = get_conversation(user.id, conversation_id)
    messages = all_messages(conversation)
    filename = f"conversation-{conversation.id}"
    if fmt == "json":
        body = {**conversation_json(conversation), "messages": [message_json(m) for m in messages]}
        return _download(
            json.dumps(body, ensure_ascii=False, indent=2), "application/json", f"{filename}.json"
        )
    if fmt == "markdown":
        lines = [f"# {conversation.title}", ""]
        for message in messages:
            lines += _markdown(message)
        return _download("\n".join(lines), "text/markdown; charset=utf-8", f"{filename}.md")
    raise UnknownFormat()


def _markdown(message: ConversationMessage) -> list[str]:
    out: list[str] = []
    for block in message.content or []:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            heading = {"user": "You", "assistant": "Assistant"}.get(message.role, message.role)
            out += [f"**{heading}:**", "", block["text"], ""]
        elif kind == "tool_use":
            args = json.dumps(block.get("input") or {}, ensure_ascii=False)
            out += [f"> 🔧 `{block.get('server')}.{block.get('tool')}` {args}", ""]
        elif kind == "tool_result":
            text = " ".join(
                b.get("text", "") for b in block.get("content") or [] if b.get("type") == "text"
            )
            marker = "error" if block.get("is_error") else "result"
            out += [f"> {marker}: {_quote(text)}", ""]
    return out


def _quote(text: str, limit: int = 500) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _download(body: str, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
