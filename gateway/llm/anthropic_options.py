"""OpenAI request values and their Anthropic Messages equivalents (docs/openai-compatibility.md).

Apart from ``gateway.llm.anthropic`` so that /v1's field check can read them without importing
the Anthropic SDK (~38 MB per worker) in a gateway that has no Anthropic provider.
"""

from __future__ import annotations

# OpenAI's ``service_tier`` values -> Anthropic's; /v1 refuses the others (gateway.compat.fields).
ANTHROPIC_SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}
# OpenAI's ``reasoning_effort`` values -> Anthropic's ``output_config.effort``.
ANTHROPIC_EFFORTS = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
}
