from __future__ import annotations

import pytest

from gateway.routing import RoutingSettings


def test_settings_from_config_keys_convert_strings() -> None:
    settings = RoutingSettings.from_mapping(
        {
            "ROUTING_THRESHOLD": "0.4",
            "ROUTING_TOOL_BUDGET": "12",
            "ROUTING_SEMANTIC": "off",
            "ROUTING_LEXICAL_WEIGHTS": {"tool_name": 3},
            "SQLALCHEMY_DATABASE_URI": "ignored",
        }
    )
    assert settings.threshold == 0.4
    assert settings.tool_budget == 12
    assert settings.semantic is False
    assert settings.lexical_weights["tool_name"] == 3.0
    assert settings.lexical_weights["tool_description"] == 1.0


@pytest.mark.parametrize(
    "values",
    [
        {"ROUTING_NOPE": "1"},
        {"ROUTING_THRESHOLD": "high"},
        {"ROUTING_THRESHOLD": "1.5"},
        {"ROUTING_SEMANTIC": "maybe"},
        {"ROUTING_SEMANTIC_BACKEND": "gpu"},
        {"ROUTING_MAX_SERVERS": "0"},
        {"ROUTING_FIRST_STAGE": "bert"},
        {"ROUTING_TOOLS_PER_SERVER": "-1"},
    ],
)
def test_invalid_settings_are_rejected(values: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        RoutingSettings.from_mapping(values)
