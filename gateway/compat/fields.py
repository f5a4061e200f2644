"""What happens to each Chat Completions request field, per provider kind.

The rule (docs/openai-compatibility.md, "Request fields"): a field is acted on by the gateway,
sent unchanged to an OpenAI-compatible upstream, mapped to its Anthropic Messages equivalent,
or refused with a 400 naming it. Nothing is accepted and dropped. ``check_fields`` applies the
rule to one request; ``gateway.llm.anthropic.map_options`` does the Anthropic mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from gateway.errors import InvalidParameter
from gateway.llm.anthropic_options import ANTHROPIC_EFFORTS, ANTHROPIC_SERVICE_TIERS

ProviderKind = Literal["openai", "anthropic", "offline"]

# Fields the compat layer consumes itself; they never reach a provider as options.
HANDLED = frozenset({"model", "messages", "tools", "stream", "stream_options"})

# Fields Anthropic's Messages API has an equivalent for (see map_options).
ANTHROPIC_MAPPED = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "response_format",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "reasoning_effort",
        "service_tier",
        "logprobs",
    }
)

# Legacy function calling: its answers (``function_call``) are not tool calls the gateway can
# run or return, so the field is refused for every provider rather than half-supported.
REFUSED_EVERYWHERE = {
    "functions": "Legacy `functions` are not supported; send `tools` instead.",
    "function_call": "Legacy `function_call` is not supported; send `tool_choice` instead.",
}


def options_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request's fields that go to the provider: all but the ones the gateway consumes."""
    return {k: v for k, v in body.items() if k not in HANDLED and v is not None}


def check_fields(options: Mapping[str, Any], kinds: Iterable[ProviderKind]) -> None:
    """Refuse, with a 400 naming the field, anything a provider in ``kinds`` cannot honour.

    ``kinds`` holds the provider that answers and its fallback, if any: a request must be
    valid for both, as either may end up answering it.
    """
    for name, message in REFUSED_EVERYWHERE.items():
        if name in options:
            raise InvalidParameter(message, param=name)
    n = options.get("n", 1)
    if n != 1:
        raise InvalidParameter(
            "Only n=1 is supported: a turn (with its tool rounds) yields one choice.", param="n"
        )
    if options.get("logprobs") or "top_logprobs" in options:
        param = "logprobs" if options.get("logprobs") else "top_logprobs"
        raise InvalidParameter(
            "logprobs are not returned through the gateway's turn; leave them unset.",
            param=param,
        )
    for kind in set(kinds):
        if kind == "anthropic":
            _check_anthropic(options)


# The JSON type each mapped field must have before it can be mapped.
_ANTHROPIC_TYPES: dict[str, tuple[type, ...]] = {
    "stop": (str, list),
    "response_format": (dict,),
    "tool_choice": (str, dict),
    "parallel_tool_calls": (bool,),
    "user": (str,),
    "reasoning_effort": (str,),
    "service_tier": (str,),
}


def _check_anthropic(options: Mapping[str, Any]) -> None:
    for name, kinds in _ANTHROPIC_TYPES.items():
        value = options.get(name)
        if value is not None and not isinstance(value, kinds):
            raise InvalidParameter(f"`{name}` has the wrong type.", param=name)
    stop = options.get("stop")
    if isinstance(stop, list) and not all(isinstance(s, str) for s in stop):
        raise InvalidParameter("`stop` must be a string or a list of strings.", param="stop")
    for name in options:
        if name not in ANTHROPIC_MAPPED:
            raise InvalidParameter(
                f"`{name}` has no equivalent in Anthropic's Messages API (this model's provider).",
                param=name,
            )
    response_format = options.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema", {}), Mapping):
            raise InvalidParameter(
                "A json_schema response_format needs json_schema.schema (an object).",
                param="response_format",
            )
    if kind == "json_object":
        raise InvalidParameter(
            "Anthropic has no JSON mode without a schema; send a json_schema response_format.",
            param="response_format",
        )
    tier = options.get("service_tier")
    if tier is not None and tier not in ANTHROPIC_SERVICE_TIERS:
        raise InvalidParameter(
            f"Anthropic has service tiers for {sorted(ANTHROPIC_SERVICE_TIERS)} only.",
            param="service_tier",
        )
    effort = options.get("reasoning_effort")
    if effort is not None and effort != "none" and effort not in ANTHROPIC_EFFORTS:
        raise InvalidParameter(
            f"reasoning_effort must be one of {sorted(ANTHROPIC_EFFORTS)} or none.",
            param="reasoning_effort",
        )
