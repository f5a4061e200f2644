"""Settings: defaults, the environment (with NAME_FILE secrets and .env), overrides, validation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("development", "production", "test")
SECRET_KEYS = (
    "DATABASE_URL",
    "JWT_SECRET_KEY",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "ADMIN_PASSWORD",
    "REDIS_URL",
)
LLM_MODEL_KEYS = ("ANTHROPIC_MODEL", "OPENAI_MODEL", "ANTHROPIC_MAX_TOKENS", "OPENAI_MAX_TOKENS")
# A random key is generated for development and test only: production must set its own.
MIN_SECRET_BYTES = 32


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line naming the variable."""


@dataclass(frozen=True)
class Settings:
    """Every setting the gateway reads, with its default."""

    environment: str = "development"
    database_url: str | None = None
    jwt_secret_key: str | None = None
    anthropic_api_key: str | None = None
    openai_api_key: str | None = None
    anthropic_base_url: str | None = None
    openai_base_url: str | None = None
    mcp_config: str = "config/mcp_servers.json"
    # Development state (embedded PostgreSQL data, JWT key); default: instance/ in the checkout.
    instance_path: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    max_request_bytes: int = 1024 * 1024
    db_connect_deadline: float = 60.0
    db_pool_size: int = 5
    db_max_overflow: int = 5
    db_pool_timeout: float = 5.0
    db_connect_timeout: int = 3
    mock_auth: bool = False
    allow_registration: bool = True
    access_token_minutes: int = 15
    refresh_token_days: int = 7
    admin_email: str | None = None
    admin_password: str | None = None
    login_max_failures: int = 5
    login_window_seconds: int = 300
    trusted_proxies: int = 0
    max_tool_result_bytes: int = 100_000
    max_message_chars: int = 32_000
    history_token_budget: int = 24_000
    sse_heartbeat_seconds: float = 10.0
    # Abuse limits per user, shared by every worker (PostgreSQL, or Redis when REDIS_URL is set).
    chat_rate_limit: int = 30
    chat_rate_window_seconds: int = 60
    chat_max_concurrent: int = 3
    chat_lease_seconds: int = 900
    redis_url: str | None = None
    # Browser-facing headers: origins allowed by CORS (none by default), and HSTS max-age.
    cors_origins: tuple[str, ...] = ()
    hsts_seconds: int = 0
    # LLM_* (and ANTHROPIC_MODEL, OPENAI_MODEL) as given; gateway.runtime validates them.
    llm_env: Mapping[str, str] = field(default_factory=dict)
    # ROUTING_* as given; gateway.runtime turns them into RoutingSettings.
    routing_env: Mapping[str, str] = field(default_factory=dict)
    # MCP_ENDPOINT_* as given; gateway.mcp_server.settings parses them.
    mcp_endpoint_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def instance_folder(self) -> str:
        """INSTANCE_PATH, else instance/ next to the gateway package (Flask's own default)."""
        default = Path(__file__).resolve().parent.parent / "instance"
        return os.path.abspath(self.instance_path or default)

    @property
    def mock_auth_enabled(self) -> bool:
        """The one switch for mock authentication: development only, never elsewhere."""
        return self.environment == "development" and self.mock_auth


def _read_secret(name: str, environ: Mapping[str, str]) -> str | None:
    """NAME or the contents of the file named by NAME_FILE (compose and Kubernetes secrets)."""
    file_var = f"{name}_FILE"
    if environ.get(file_var):
        if environ.get(name):
            raise ConfigError(f"{name}: set either {name} or {file_var}, not both")
        path = Path(environ[file_var])
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(f"{file_var}: cannot read {path}: {exc.strerror}") from None
    return environ.get(name) or None


def _parse_int(name: str, raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _parse_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _parse_origins(raw: str) -> tuple[str, ...]:
    """Comma-separated exact origins (scheme://host[:port]); a wildcard is refused."""
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
            raise ConfigError(f"CORS_ORIGINS: {origin!r} is not an origin like https://app.example")
    return origins


_INT_KEYS = {
    "MAX_REQUEST_BYTES": ("max_request_bytes", 1),
    "DB_POOL_SIZE": ("db_pool_size", 1),
    "DB_MAX_OVERFLOW": ("db_max_overflow", 0),
    "DB_CONNECT_TIMEOUT": ("db_connect_timeout", 1),
    "ACCESS_TOKEN_MINUTES": ("access_token_minutes", 1),
    "REFRESH_TOKEN_DAYS": ("refresh_token_days", 1),
    "LOGIN_MAX_FAILURES": ("login_max_failures", 1),
    "LOGIN_WINDOW_SECONDS": ("login_window_seconds", 1),
    "TRUSTED_PROXIES": ("trusted_proxies", 0),
    "MAX_TOOL_RESULT_BYTES": ("max_tool_result_bytes", 1000),
    "MAX_MESSAGE_CHARS": ("max_message_chars", 1),
    "HISTORY_TOKEN_BUDGET": ("history_token_budget", 100),
    "CHAT_RATE_LIMIT": ("chat_rate_limit", 0),
    "CHAT_RATE_WINDOW_SECONDS": ("chat_rate_window_seconds", 1),
    "CHAT_MAX_CONCURRENT": ("chat_max_concurrent", 0),
    "CHAT_LEASE_SECONDS": ("chat_lease_seconds", 10),
    "HSTS_SECONDS": ("hsts_seconds", 0),
}
_FLOAT_KEYS = {
    "DB_CONNECT_DEADLINE": "db_connect_deadline",
    "DB_POOL_TIMEOUT": "db_pool_timeout",
    "SSE_HEARTBEAT_SECONDS": "sse_heartbeat_seconds",
}
_BOOL_KEYS = {"MOCK_AUTH": "mock_auth", "ALLOW_REGISTRATION": "allow_registration"}
_STR_KEYS = {
    "ANTHROPIC_BASE_URL": "anthropic_base_url",
    "OPENAI_BASE_URL": "openai_base_url",
    "MCP_CONFIG": "mcp_config",
    "INSTANCE_PATH": "instance_path",
    "ADMIN_EMAIL": "admin_email",
}


def settings_from_env(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Read every setting, apply overrides, validate; raises ConfigError on the first bad one."""
    env = os.environ if environ is None else environ
    environment = env.get("ENVIRONMENT", "development").strip().lower()
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"ENVIRONMENT: must be one of {', '.join(ENVIRONMENTS)}, got {env['ENVIRONMENT']!r}"
        )
    values: dict[str, Any] = {
        "environment": environment,
        # Mock auth is a development convenience, on by default there and nowhere else.
        "mock_auth": environment == "development",
    }
    values.update(_typed_values(env))
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {f.name for f in fields(Settings)})
    if unknown:
        raise ConfigError(f"{unknown[0].upper()}: unknown setting")
    if "environment" in overrides and "mock_auth" not in overrides:
        overrides["mock_auth"] = overrides["environment"] == "development"
    return validate(Settings(**{**values, **overrides}))


def _typed_values(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in SECRET_KEYS:
        values[key.lower()] = _read_secret(key, env)
    for key, (attr, minimum) in _INT_KEYS.items():
        if env.get(key):
            values[attr] = _parse_int(key, env[key], minimum=minimum)
    for key, attr in _FLOAT_KEYS.items():
        if env.get(key):
            values[attr] = _parse_float(key, env[key])
    for key, attr in _BOOL_KEYS.items():
        if key in env:
            values[attr] = _parse_bool(key, env[key])
    for key, attr in _STR_KEYS.items():
        if env.get(key):
            values[attr] = env[key]
    if env.get("CORS_ORIGINS"):
        values["cors_origins"] = _parse_origins(env["CORS_ORIGINS"])
    values["log_level"] = env.get("LOG_LEVEL", "INFO").upper()
    values["log_format"] = env.get("LOG_FORMAT", "text").lower()
    values["routing_env"] = {k: v for k, v in env.items() if k.startswith("ROUTING_")}
    values["mcp_endpoint_env"] = {k: v for k, v in env.items() if k.startswith("MCP_ENDPOINT_")}
    values["llm_env"] = {
        k: v for k, v in env.items() if k.startswith("LLM_") or k in LLM_MODEL_KEYS
    }
    return values


def validate(settings: Settings) -> Settings:
    """Refuse bad values, and unsafe ones in production."""
    if settings.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL: unknown level {settings.log_level!r}")
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT: must be text or json, got {settings.log_format!r}")
    url = settings.database_url
    if url and not url.startswith(("postgresql://", "postgresql+psycopg2://")):
        raise ConfigError("DATABASE_URL: must be a postgresql:// URL")
    if settings.mock_auth and not settings.is_development:
        raise ConfigError(
            f"MOCK_AUTH: mock authentication is refused when ENVIRONMENT={settings.environment}"
        )
    if not settings.is_production:
        if settings.environment == "test" and not url:
            raise ConfigError("DATABASE_URL: required when ENVIRONMENT=test")
        return settings
    if not url:
        raise ConfigError("DATABASE_URL: required in production")
    secret = settings.jwt_secret_key or ""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"JWT_SECRET_KEY: production needs a secret of at least {MIN_SECRET_BYTES} bytes"
        )
    return settings


def load_settings(
    overrides: Mapping[str, Any] | None = None, *, env_file: str | os.PathLike[str] = ".env"
) -> Settings:
    """Settings from the process environment over an optional ``.env`` file."""
    from dotenv import dotenv_values

    file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return settings_from_env({**file_values, **os.environ}, overrides)


def gunicorn_counts(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Worker processes and threads per worker, from GUNICORN_WORKERS and GUNICORN_THREADS."""
    env = os.environ if environ is None else environ
    workers = _parse_int("GUNICORN_WORKERS", env.get("GUNICORN_WORKERS", "2"), minimum=1)
    # Threads mostly wait on the model: a streamed turn uses two, so 2 x 64 serve ~64 streams.
    threads = _parse_int("GUNICORN_THREADS", env.get("GUNICORN_THREADS", "64"), minimum=1)
    return workers, threads
