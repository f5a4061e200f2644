"""OpenAI Chat Completions on top of the gateway's turn: requests in, responses and chunks out."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.auth.guard import current_user
from gateway.chat import pending
from gateway.chat.recorder import Turn
from gateway.chat.schemas import ChatBody
from gateway.chat.service import begin_turn, unstored_turn
from gateway.compat import fields
from gateway.compat.messages import to_history
from gateway.errors import InvalidParameter, ModelNotFound, NotFoundError, openai_event_error
from gateway.llm import wire_name
from gateway.services import get_services

FINISH_REASONS = {"max_tokens": "length", "refusal": "content_filter"}


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer (2020-12 validation, 6.1.1): ``2.0`` is one; ``true``, ``"2"`` not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A count of the strict request models: any JSON number without a fraction, at least 1.
PositiveJsonInt = Annotated[int, Field(ge=1), BeforeValidator(_json_integer)]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    # OpenAI's rule for function names, which Anthropic's tool names share.
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ClientTool(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["function"]
    function: FunctionSpec


class StreamOptions(BaseModel):
    """``stream_options``: the gateway reads ``include_usage``; other options are kept, unread."""

    model_config = ConfigDict(extra="allow", strict=True)
    include_usage: bool | None = None


class CompletionRequest(BaseModel):
    """The fields the gateway consumes; every other field's fate is in ``compat.fields``.

    Rules beyond this schema (400 ``invalid_request_error`` naming the ``param``): the last
    message is the user's or a tool result; a user message has some content; a tool message
    names its ``tool_call_id``; content parts have a ``type``; ``n`` is 1; no ``logprobs``,
    ``functions`` or ``function_call``; fields the answering provider cannot honour are refused
    (docs/openai-compatibility.md). Types are strict, as OpenAI's own validation is: ``"stream":
    "yes"`` or ``"n": true`` is a 400, never read as a boolean or a number.
    """

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ClientTool] | None = Field(default=None, max_length=128)
    max_tokens: PositiveJsonInt | None = None
    max_completion_tokens: PositiveJsonInt | None = None
    n: PositiveJsonInt | None = None

    def options(self) -> dict[str, Any]:
        """The fields that go to the provider: all but the ones the gateway consumes."""
        return fields.options_of(self.model_dump(exclude_unset=True))


# Model ids that mean "the default provider's default model"; /v1/models lists "default".
DEFAULT_MODEL_ALIASES = ("gateway", "default")


def resolve_model(model_id: str) -> tuple[str | None, str | None]:
    """``provider/model``, a listed model, or the default provider's default (``gateway``).

    An id no provider lists is a 404 ``model_not_found``, unless the operator allows
    unlisted names (``LLM_ALLOW_UNLISTED_MODELS``): then the default provider gets it.
    """
    registry = get_services().llm
    rows = registry.list_models()
    for row in rows:
        if model_id in (f"{row['provider']}/{row['model']}", row["model"]):
            return row["provider"], row["model"]
    if model_id in DEFAULT_MODEL_ALIASES:
        return None, None
    if not registry.settings.allow_unlisted_models:
        raise ModelNotFound(
            f"The model `{model_id}` does not exist or you do not have access to it."
        )
    provider, sep, model = model_id.partition("/")
    if sep and provider in {row["provider"] for row in rows}:
        return provider, model
    return None, model_id


def provider_kinds(provider: str | None) -> tuple[fields.ProviderKind, ...]:
    """The kinds of provider that may answer: the chosen one and its fallback."""
    registry = get_services().llm
    name = registry.get(provider).name
    fallback = registry.fallback_for(name)
    names = (name, fallback.name) if fallback is not None else (name,)
    return tuple(n for n in names if n in ("openai", "anthropic", "offline"))  # type: ignore[misc]


def client_tools(request: CompletionRequest) -> tuple[dict[str, Any], ...]:
    """The client's tools as sent; 400 when a name is taken by a gateway (MCP) tool."""
    if not request.tools:
        return ()
    taken = {wire_name(tool) for tool in get_services().mcp.list_tools()}
    names: set[str] = set()
    for index, tool in enumerate(request.tools):
        name = tool.function.name
        if name in taken or name in names:
            raise InvalidParameter(
                f"The tool name `{name}` is already taken by "
                + ("a gateway tool." if name in taken else "another tool of this request."),
                param=f"tools[{index}].function.name",
            )
        names.add(name)
    return tuple(tool.model_dump(exclude_none=True) for tool in request.tools)


def model_list() -> dict[str, Any]:
    """``default`` first (the default provider's default model: a client that offers a pick from
    this list can follow the operator's choice), then every ``provider/model``."""
    return {
        "object": "list",
        "data": [
            _alias_json(DEFAULT_MODEL_ALIASES[1]),
            *(
                {
                    "id": f"{row['provider']}/{row['model']}",
                    "object": "model",
                    "created": 0,
                    "owned_by": row["provider"],
                }
                for row in get_services().llm.list_models()
            ),
        ],
    }


def _alias_json(alias: str) -> dict[str, Any]:
    owner = get_services().llm.default_name
    return {"id": alias, "object": "model", "created": 0, "owned_by": owner}


def model_json(model_id: str) -> dict[str, Any]:
    """One model of ``model_list`` (``GET /v1/models/{id}``), or an alias of the default model
    (chat completions take them, so they exist); 404 ``model_not_found``."""
    if model_id in DEFAULT_MODEL_ALIASES:
        return _alias_json(model_id)
    for model in model_list()["data"][1:]:
        if model_id in (model["id"], model["id"].partition("/")[2]):
            return model
    raise ModelNotFound(f"The model `{model_id}` does not exist or you do not have access to it.")


def _finish_reason(result: dict[str, Any]) -> str:
    if result.get("client_tool_calls"):
        return "tool_calls"
    return FINISH_REASONS.get(result["stop_reason"], "stop")


def completion_json(result: dict[str, Any], model_id: str) -> dict[str, Any]:
    usage = result["usage"]
    message: dict[str, Any] = {"role": "assistant", "content": result["message"]["content"]}
    if result.get("client_tool_calls"):
        message["content"] = message["content"] or None
        message["tool_calls"] = result["client_tool_calls"]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(result),
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
            yield f"data: {json.dumps({'error': openai_event_error(data)})}\n\n"
            return
        elif name == "done":
            for index, call in enumerate(data.get("client_tool_calls") or ()):
                yield chunk({"tool_calls": [{"index": index, **call}]})
            yield chunk({}, _finish_reason(data))
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


# Keeps the exchange as a conversation: "new", or the id of one of the caller's conversations.
CONVERSATION_HEADER = "X-Conversation-Id"


def start_completion(request: CompletionRequest, headers: Mapping[str, str]) -> Turn:
    """The turn for an OpenAI-style request: stored when the conversation header asks for it.

    Every field is checked against the provider (and fallback) that may answer before
    anything is stored; the messages go to the model as sent, the last user message is the
    prompt the router and the conversation store see.
    """
    refuse_empty_user_message(request)
    provider, model = resolve_model(request.model)
    kinds = provider_kinds(provider)
    options = request.options()
    fields.check_fields(options, kinds)
    messages = to_history([m.model_dump(exclude_unset=True) for m in request.messages], kinds)
    if messages[-1].role not in ("user", "tool"):
        raise InvalidParameter(
            "The last message must be a user message or a tool result.",
            param=f"messages[{len(messages) - 1}].role",
        )
    prompts = [m.content for m in messages if m.role == "user"]
    prompt = prompts[-1] if prompts else ""
    user = current_user()
    fields_for_model = {
        "messages": tuple(pending.restore(user.id, messages)),
        "options": options,
        "client_tools": client_tools(request),
        # The client's SDK retries (and sees the upstream's status and Retry-After): retrying
        # here as well would multiply every upstream failure.
        "max_retries": 0,
    }
    keep = headers.get(CONVERSATION_HEADER)
    history = ([], prompts[-4:-1])
    if not keep:
        turn = unstored_turn(
            user, prompt, history=history, provider=provider, model=model, system=None
        )
    else:
        body = ChatBody(
            message=prompt, conversation_id=_conversation_id(keep), provider=provider, model=model
        )
        turn = begin_turn(user, body, history=history)
    return replace(turn, request_fields=fields_for_model)


def refuse_empty_user_message(request: CompletionRequest) -> None:
    """400 for a user message with nothing in it (no text, no image): Anthropic refuses empty
    text blocks, and a client's mistake must not come back as the provider's 502."""
    for index, message in enumerate(request.messages):
        if message.role == "user" and not _has_content(message.content):
            raise InvalidParameter(
                f"messages.{index}: a user message needs some content.",
                param=f"messages[{index}].content",
                openai_code="invalid_value",
            )


def _has_content(content: str | list[dict[str, Any]] | None) -> bool:
    if isinstance(content, str) or content is None:
        return bool(content and content.strip())
    return any(
        part.get("type") != "text" or str(part.get("text") or "").strip() for part in content
    )


def _conversation_id(value: str) -> uuid.UUID | None:
    if value == "new":
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFoundError("Conversation not found.") from None
