"""The answers of the ``/v1`` surface, in OpenAI's shapes; the request is ``CompletionRequest``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class OpenAIModelList(BaseModel):
    object: Literal["list"]
    data: list[OpenAIModel]


class ChatCompletion(BaseModel):
    """A ``chat.completion`` object (OpenAI's Chat Completions API)."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, Any] | None = None


class CompletionChunkEvent(BaseModel):
    """One Server-Sent Event of a streamed completion, as OpenAI sends them (no event names)."""

    data: str = Field(
        description="A `chat.completion.chunk` as JSON, an `error` object, or `[DONE]` last."
    )
