"""LLM providers behind one small protocol; the only package that imports the vendor SDKs."""

from __future__ import annotations

from gateway.llm.registry import LLMRegistry, LLMSettings
from gateway.llm.types import (
    ChatEvent,
    ChatRequest,
    ChatResponse,
    Message,
    ModelPrice,
    Provider,
    ToolCall,
    Usage,
    wire_name,
)

__all__ = [
    "ChatEvent",
    "ChatRequest",
    "ChatResponse",
    "LLMRegistry",
    "LLMSettings",
    "Message",
    "ModelPrice",
    "Provider",
    "ToolCall",
    "Usage",
    "wire_name",
]
