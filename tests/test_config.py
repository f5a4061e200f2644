"""Settings: parsing, NAME_FILE secrets, and refusals in production."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config import ConfigError, gunicorn_counts, settings_from_env
from tests.live_server import gunicorn_start_up

STRONG = "s" * 40
PRODUCTION = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql://gw@db/gw",
    "JWT_SECRET_KEY": STRONG,
}
ROOT = Path(__file__).resolve().parent.parent


def test_development_defaults_need_nothing():
    settings = settings_from_env({})
    assert settings.environment == "development"
    assert settings.database_url is None
    assert settings.mock_auth is True
    assert settings.max_request_bytes == 1024 * 1024


def test_production_with_safe_settings_is_accepted():
    settings = settings_from_env(PRODUCTION)
    assert settings.is_production
    assert settings.mock_auth is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT: must be one of"),
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
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: must be text or json"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL: unknown level"),
        ({"MAX_REQUEST_BYTES": "lots"}, "MAX_REQUEST_BYTES: expected a whole number"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE: must be at least 1"),
        ({"DB_CONNECT_DEADLINE": "-1"}, "DB_CONNECT_DEADLINE: must be positive"),
        ({"MOCK_AUTH": "maybe"}, "MOCK_AUTH: expected true or false"),
    ],
)
def test_bad_settings_fail_with_one_line_naming_the_variable(env, message):
    with pytest.raises(ConfigError) as excinfo:
        settings_from_env(env)
    assert str(excinfo.value).startswith(message)
    assert "\n" not in str(excinfo.value)


def test_secrets_can_come_from_files(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(STRONG + "\n")
    env = {**PRODUCTION, "JWT_SECRET_KEY": "", "JWT_SECRET_KEY_FILE": str(secret_file)}
    assert settings_from_env(env).jwt_secret_key == STRONG


def test_secret_and_secret_file_together_is_an_error(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text(STRONG)
    with pytest.raises(ConfigError, match="set either JWT_SECRET_KEY or JWT_SECRET_KEY_FILE"):
        settings_from_env({**PRODUCTION, "JWT_SECRET_KEY_FILE": str(secret_file)})


def test_unreadable_secret_file_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="DATABASE_URL_FILE: cannot read"):
        settings_from_env({"DATABASE_URL_FILE": str(missing)})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GUNICORN_WORKERS": "0"}, "GUNICORN_WORKERS"),
        ({"GUNICORN_THREADS": "x"}, "GUNICORN_THREADS"),
    ],
)
def test_bad_worker_counts_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        gunicorn_counts(env)


def test_gunicorn_refuses_to_start_with_one_clear_line(tmp_path):
    env = {**os.environ, "ENVIRONMENT": "staging", "BIND": "127.0.0.1:0"}
    proc = gunicorn_start_up(env)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "ENVIRONMENT" in line]
    assert len(errors) == 1, proc.stderr
    assert "start-up failed: ENVIRONMENT: must be one of" in errors[0]
    assert "Traceback" not in proc.stderr


def test_production_refuses_the_offline_provider_unless_enabled():
    from gateway.runtime import llm_settings_from

    assert llm_settings_from(settings_from_env(PRODUCTION)).configured() == ()
    enabled = settings_from_env({**PRODUCTION, "LLM_ALLOW_OFFLINE": "true"})
    assert llm_settings_from(enabled).configured() == ("offline",)
    assert llm_settings_from(settings_from_env({})).configured() == ("offline",)


def test_a_bad_llm_setting_is_a_one_line_start_up_error():
    from gateway.runtime import llm_settings_from

    with pytest.raises(ConfigError, match="LLM settings"):
        llm_settings_from(settings_from_env({"LLM_PROVIDER": "nonesuch"}))
