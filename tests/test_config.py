"""Settings: parsing, NAME_FILE secrets, refusals in production, and the start-up paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import create_app
from gateway.settings import ConfigError, Settings, load_settings
from tests.live_server import gunicorn_start_up

STRONG = "s" * 40
PRODUCTION = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql://gw@db/gw",
    "JWT_SECRET_KEY": STRONG,
    "OPENAI_API_KEY": "sk-test",
}
ROOT = Path(__file__).resolve().parent.parent
# The three examples: each must stop start-up with one line naming the variable.
START_UP_FAILURES = [
    ({"LLM_ALLOW_OFFLINE": "ture"}, "LLM_ALLOW_OFFLINE: "),
    ({**PRODUCTION, "OPENAI_API_KEY": ""}, "LLM_PROVIDER: production has no provider"),
    ({"ROUTING_THRESHOLD": "abc"}, "ROUTING_THRESHOLD: "),
]


def test_development_defaults_need_nothing():
    settings = Settings.from_env({})
    assert settings.environment == "development"
    assert settings.database.url is None
    assert settings.mock_auth_enabled is True
    assert settings.http.max_request_bytes == 1024 * 1024
    assert settings.llm.configured() == ("offline",)


def test_production_with_safe_settings_is_accepted():
    settings = Settings.from_env(PRODUCTION)
    assert settings.is_production
    assert settings.mock_auth_enabled is False
    assert settings.llm.configured() == ("openai",)  # no offline provider unless asked


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT: Input should be 'development'"),
        ({**PRODUCTION, "JWT_SECRET_KEY": "short"}, "JWT_SECRET_KEY: production needs"),
        ({**PRODUCTION, "JWT_SECRET_KEY": ""}, "JWT_SECRET_KEY: production needs"),
        ({**PRODUCTION, "DATABASE_URL": "sqlite:///x.db"}, "DATABASE_URL: must be a postgresql://"),
        ({"DATABASE_URL": "sqlite:///x.db"}, "DATABASE_URL: must be a postgresql://"),
        ({**PRODUCTION, "DATABASE_URL": ""}, "DATABASE_URL: required in production"),
        ({**PRODUCTION, "MOCK_AUTH": "true"}, "MOCK_AUTH: mock authentication is refused"),
        (
            {"ENVIRONMENT": "test", "DATABASE_URL": "postgresql://x/y", "MOCK_AUTH": "1"},
            "MOCK_AUTH",
        ),
        ({"ENVIRONMENT": "test"}, "DATABASE_URL: required when ENVIRONMENT=test"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must be a postgresql://"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: Input should be 'text' or 'json'"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL: Input should be 'DEBUG'"),
        ({"MAX_REQUEST_BYTES": "lots"}, "MAX_REQUEST_BYTES: Input should be a valid integer"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE: Input should be greater than or equal to 1"),
        ({"DB_CONNECT_DEADLINE": "-1"}, "DB_CONNECT_DEADLINE: Input should be greater than 0"),
        ({"MOCK_AUTH": "maybe"}, "MOCK_AUTH: Input should be a valid boolean"),
        ({"GUNICORN_WORKERS": "0"}, "GUNICORN_WORKERS: "),
        ({"GUNICORN_THREADS": "x"}, "GUNICORN_THREADS: "),
        ({"LLM_PROVIDER": "nonesuch"}, "LLM_PROVIDER: unknown LLM provider 'nonesuch'"),
        ({"LLM_TIMEOUT": "soon"}, "LLM_TIMEOUT: "),
        ({"LLM_PRICES": "{not json"}, "LLM_PRICES: not JSON"),
        ({"LLM_PRICES": '{"m": ["x", 1]}'}, "LLM_PRICES: "),
        ({"ANTHROPIC_MAX_TOKENS": "0"}, "ANTHROPIC_MAX_TOKENS: "),
        ({"LLM_ALLOW_UNLISTED_MODELS": "sometimes"}, "LLM_ALLOW_UNLISTED_MODELS: "),
        ({"ROUTING_TOOL_SEARCH": "maybe"}, "ROUTING_TOOL_SEARCH: "),
        ({"ROUTING_SEARCH_RESULTS": "0"}, "ROUTING_SEARCH_RESULTS: "),
        ({"ROUTING_NOPE": "1"}, "ROUTING_NOPE: unknown routing setting"),
        (
            {**PRODUCTION, "LLM_PROVIDER": "anthropic"},
            "LLM_PROVIDER: anthropic cannot answer in production",
        ),
        *START_UP_FAILURES,
    ],
)
def test_bad_settings_fail_with_one_line_naming_the_variable(env, message):
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env(env)
    assert str(excinfo.value).startswith(message)
    assert "\n" not in str(excinfo.value)


def test_a_bad_secret_is_named_but_never_shown():
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("on", True), ("1", True), ("false", False), ("0", False)]
)
def test_booleans_take_the_usual_spellings(raw, expected):
    assert Settings.from_env({"LLM_ALLOW_OFFLINE": raw}).llm.allow_offline is expected


def test_variables_land_in_their_sections():
    settings = Settings.from_env(
        {
            "ANTHROPIC_MAX_TOKENS": "1000",
            "OPENAI_MAX_TOKENS": "500",
            "LLM_ALLOW_UNLISTED_MODELS": "true",
            "LLM_PRICES": '{"gpt-test": [1, 2]}',
            "INSTANCE_PATH": "/srv/gateway",
            "MCP_ENDPOINT_TOOLS": "search",
            "MCP_ENDPOINT_MAX_STREAMS": "7",
            "ROUTING_TOOL_SEARCH": "false",
            "ROUTING_SEARCH_RESULTS": "3",
            "ROUTING_SEARCH_MAX_ADDED": "4",
            "ROUTING_MULTILINGUAL": "off",
            "ROUTING_EMBEDDINGS_URL": "http://embed.example/v1",
            "ROUTING_LEXICAL_WEIGHTS": '{"tool_name": 3}',
            "CHAT_RATE_LIMIT": "0",
            "CORS_ORIGINS": "https://a.example, http://b.example:8080/",
        }
    )
    assert (settings.llm.anthropic_max_tokens, settings.llm.openai_max_tokens) == (1000, 500)
    assert settings.llm.allow_unlisted_models is True
    assert settings.llm.prices["gpt-test"].output_per_mtok == 2.0
    assert settings.instance_folder == "/srv/gateway"
    assert settings.mcp.endpoint.tools_mode == "search"
    assert settings.mcp.endpoint.max_streams_per_worker == 7
    routing = settings.routing
    assert (routing.tool_search, routing.search_results, routing.search_max_added) == (
        False,
        3,
        4,
    )
    assert routing.multilingual is False
    assert routing.semantic_backend == "endpoint"  # a URL alone means "use it"
    assert routing.lexical_weights["tool_name"] == 3.0
    assert routing.lexical_weights["tool_description"] == 1.0  # the rest keep their defaults
    assert settings.limits.chat_rate_limit == 0
    assert settings.http.cors_origins == ("https://a.example", "http://b.example:8080")


def test_secrets_can_come_from_files(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(STRONG + "\n")
    env = {**PRODUCTION, "JWT_SECRET_KEY": "", "JWT_SECRET_KEY_FILE": str(secret_file)}
    assert Settings.from_env(env).auth.jwt_secret_key == STRONG


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("DATABASE_URL", ("database", "url")),
        ("ANTHROPIC_API_KEY", ("llm", "anthropic_api_key")),
        ("OPENAI_API_KEY", ("llm", "openai_api_key")),
        ("ADMIN_PASSWORD", ("auth", "admin_password")),
        ("REDIS_URL", ("limits", "redis_url")),
    ],
)
def test_every_secret_has_a_file_source(tmp_path, name, path):
    value = "postgresql://gw:pw@db/gw" if name == "DATABASE_URL" else "from-a-file"
    (tmp_path / "secret").write_text(value + "\n")
    settings = Settings.from_env({f"{name}_FILE": str(tmp_path / "secret")})
    section, field = path
    assert getattr(getattr(settings, section), field) == value


def test_secret_and_secret_file_together_is_an_error(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(STRONG)
    with pytest.raises(ConfigError, match="set either JWT_SECRET_KEY or JWT_SECRET_KEY_FILE"):
        Settings.from_env({**PRODUCTION, "JWT_SECRET_KEY_FILE": str(secret_file)})


def test_unreadable_secret_file_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="DATABASE_URL_FILE: cannot read"):
        Settings.from_env({"DATABASE_URL_FILE": str(missing)})


def test_the_environment_wins_over_the_env_file(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_FORMAT=json\nMAX_MESSAGE_CHARS=99\n")
    monkeypatch.setenv("MAX_MESSAGE_CHARS", "77")
    settings = load_settings(env_file=env_file)
    assert settings.log_format == "json"
    assert settings.limits.max_message_chars == 77


@pytest.mark.parametrize(("env", "message"), START_UP_FAILURES)
def test_create_app_refuses_to_start_with_one_line(tmp_path, env, message):
    """The real start-up path: create_app() reading the process environment (a subprocess)."""
    script = "from gateway import create_app\ncreate_app()\n"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "ROUTING_"))}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # no .env there
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"gateway.settings.ConfigError: {message}"), proc.stderr


def test_create_app_takes_explicit_settings_and_ignores_the_environment(monkeypatch, database_url):
    monkeypatch.setenv("MAX_REQUEST_BYTES", "5")
    settings = Settings.from_env(
        {"ENVIRONMENT": "test", "DATABASE_URL": database_url, "JWT_SECRET_KEY": STRONG}
    )
    app = create_app(settings)
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
        ({"LLM_ALLOW_OFFLINE": "ture"}, "LLM_ALLOW_OFFLINE"),
    ],
)
def test_gunicorn_refuses_to_start_with_one_clear_line(env, name):
    proc = gunicorn_start_up({**os.environ, "BIND": "127.0.0.1:0", **env})
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if name in line]
    assert len(errors) == 1, proc.stderr
    assert f"configuration error: {name}: " in errors[0]
    assert "Traceback" not in proc.stderr
