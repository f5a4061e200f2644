"""OpenAI Chat Completions on top of the gateway's turn: requests in, responses and chunks out."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import BadRequest

from gateway.auth.guard import current_user
from gateway.chat.recorder import Turn
from gateway.chat.schemas import ChatBody
from gateway.chat.service import begin_turn, unstored_turn
from gateway.errors import NotFoundError, ValidationFailed
from gateway.llm import Message as LLMMessage
from gateway.runtime import llm_registry

FINISH_REASONS = {"max_tokens": "length", "refusal": "content_filter"}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class CompletionRequest(BaseModel):
    """The fields we act on; other OpenAI parameters are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[Any] | None = None


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if part.get("type") == "text")


def split_messages(
    request: CompletionRequest,
) -> tuple[str, str | None, list[LLMMessage], list[str]]:
    """The prompt (last user message), the client's system text, earlier messages and prompts."""
    if request.tools:
        raise ValidationFailed(
            "Client-side tools are not supported: the gateway offers and runs MCP tools itself."
        )
    if request.messages[-1].role != "user":
        raise ValidationFailed("The last message must come from the user.")
    system = "\n\n".join(
        text_of(m.content) for m in request.messages if m.role in ("system", "developer")
    )
    history: list[LLMMessage] = []
    prompts: list[str] = []
    for message in request.messages[:-1]:
        text = text_of(message.content)
        if message.role == "user":
            history.append(LLMMessage.user(text))
            prompts.append(text)
        elif message.role == "assistant" and text:
            history.append(LLMMessage.assistant(text))
    return text_of(request.messages[-1].content), system or None, history, prompts[-3:]


def resolve_model(model_id: str) -> tuple[str | None, str | None]:
    """``provider/model``, a listed model, or a model name for the default provider."""
    rows = llm_registry().list_models()
    for row in rows:
        if model_id in (f"{row['provider']}/{row['model']}", row["model"]):
            return row["provider"], row["model"]
    provider, sep, model = model_id.partition("/")
    if sep and provider in {row["provider"] for row in rows}:
        return provider, model
    if model_id in ("gateway", "default"):
        return None, None
    return None, model_id


def model_list() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": f"{row['provider']}/{row['model']}",
                "object": "model",
                "created": 0,
                "owned_by": row["provider"],
            }
            for row in llm_registry().list_models()
        ],
    }


def completion_json(result: dict[str, Any], model_id: str) -> dict[str, Any]:
    usage = result["usage"]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result["message"]["content"]},
                "finish_reason": FINISH_REASONS.get(result["stop_reason"], "stop"),
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": usage["input_tokens"],
            "completion_tokens": usage["output_tokens"],
            "total_tokens": usage["input_tokens"] + usage["output_tokens"],
        },
        # The gateway's own account of the turn; OpenAI clients ignore unknown fields.
        "gateway": {
            "conversation_id": result["conversation_id"],
            "routing": result["routing"],
            "tool_calls": result["tool_calls"],
            "provider": result["provider"],
        },
    }


def completion_chunks(
    events: Iterator[tuple[str, dict[str, Any]] | None], model_id: str, *, include_usage: bool
) -> Iterator[str]:
    """Turn events as ``chat.completion.chunk`` lines, ending with ``[DONE]``."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for event in events:
        if event is None:
            yield ": keepalive\n\n"
            continue
        name, data = event
        if name == "delta":
            yield chunk({"content": data["text"]})
        elif name in ("tool_call", "tool_result"):
            # Not part of OpenAI's format: a comment keeps clients unaware and the line alive.
            yield f": {name} {data['server']}.{data['tool']}\n\n"
        elif name == "error":
            yield f"data: {json.dumps({'error': openai_error_body(data)})}\n\n"
            return
        elif name == "done":
            yield chunk({}, FINISH_REASONS.get(data["stop_reason"], "stop"))
            if include_usage:
                usage = data["usage"]
                yield (
                    "data: "
                    + json.dumps(
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model_id,
                            "choices": [],
                            "usage": {
                                "prompt_tokens": usage["input_tokens"],
                                "completion_tokens": usage["output_tokens"],
                                "total_tokens": usage["input_tokens"] + usage["output_tokens"],
                            },
                        }
                    )
                    + "\n\n"
                )
    yield "data: [DONE]\n\n"


def openai_error_body(error: dict[str, Any]) -> dict[str, Any]:
    return {
        "message": error["message"],
        "type": error["type"],
        "param": None,
        "code": error["type"],
    }


# Keeps the exchange as a conversation: "new", or the id of one of the caller's conversations.
CONVERSATION_HEADER = "X-Conversation-Id"


def start_completion(request: CompletionRequest, headers: Mapping[str, str]) -> Turn:
    """The turn for an OpenAI-style request: stored when the conversation header asks for it."""
    _refuse_empty_user_text(request)
    prompt, system, history, prompts = split_messages(request)
    provider, model = resolve_model(request.model)
    user = current_user()
    keep = headers.get(CONVERSATION_HEADER)
    if not keep:
        return unstored_turn(
            user, prompt, history=(history, prompts), provider=provider, model=model, system=system
        )
    body = ChatBody(
        message=prompt, conversation_id=_conversation_id(keep), provider=provider, model=model
    )
    return begin_turn(user, body, history=(history, prompts), system=system)


def _refuse_empty_user_text(request: CompletionRequest) -> None:
    """400 for a user message without text: Anthropic refuses empty text blocks, and a client's
    mistake must not come back as the provider's 502."""
    for index, message in enumerate(request.messages):
        if message.role == "user" and not text_of(message.content).strip():
            raise BadRequest(f"messages.{index}: a user message needs some text.")


def _conversation_id(value: str) -> uuid.UUID | None:
    if value == "new":
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFoundError("Conversation not found.") from None
