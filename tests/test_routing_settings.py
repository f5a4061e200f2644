from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.routing import RoutingSettings
from gateway.settings import ConfigError, Settings


def test_routing_variables_convert_strings() -> None:
    settings = Settings.from_env(
        {
            "ROUTING_THRESHOLD": "0.4",
            "ROUTING_TOOL_BUDGET": "12",
            "ROUTING_SEMANTIC": "off",
            "ROUTING_LEXICAL_WEIGHTS": '{"tool_name": 3}',
            "SQLALCHEMY_DATABASE_URI": "ignored",
        }
    ).routing
    assert settings.threshold == 0.4
    assert settings.tool_budget == 12
    assert settings.semantic is False
    assert settings.lexical_weights["tool_name"] == 3.0
    assert settings.lexical_weights["tool_description"] == 1.0


def test_every_field_can_be_set_as_a_routing_variable() -> None:
    defaults = RoutingSettings()
    for name in ("max_clauses", "history_turns", "learned_examples", "search_max_added"):
        value = getattr(defaults, name) + 1
        settings = Settings.from_env({f"ROUTING_{name.upper()}": str(value)}).routing
        assert getattr(settings, name) == value


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"ROUTING_NOPE": "1"}, "ROUTING_NOPE"),
        ({"ROUTING_THRESHOLD": "high"}, "ROUTING_THRESHOLD"),
        ({"ROUTING_THRESHOLD": "1.5"}, "ROUTING_THRESHOLD"),
        ({"ROUTING_SEMANTIC": "maybe"}, "ROUTING_SEMANTIC"),
        ({"ROUTING_SEMANTIC_BACKEND": "gpu"}, "ROUTING_SEMANTIC_BACKEND"),
        ({"ROUTING_MAX_SERVERS": "0"}, "ROUTING_MAX_SERVERS"),
        ({"ROUTING_LEXICAL_WEIGHTS": '{"tool_name": "heavy"}'}, "ROUTING_LEXICAL_WEIGHTS"),
        ({"ROUTING_FIRST_STAGE": "bert"}, "ROUTING_FIRST_STAGE"),
        ({"ROUTING_TOOLS_PER_SERVER": "-1"}, "ROUTING_TOOLS_PER_SERVER"),
    ],
)
def test_invalid_settings_are_one_line_errors_naming_the_variable(values, name) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env(values)
    assert str(excinfo.value).startswith(f"{name}: ")


def test_code_built_settings_are_checked_too() -> None:
    with pytest.raises(ValueError, match="ROUTING_THRESHOLD"):
        replace(RoutingSettings(), threshold=2.0)
