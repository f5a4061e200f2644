"""Settings: one pydantic-settings model read from the environment, ``.env`` and NAME_FILE secrets.

Every variable keeps its historic flat name (``DATABASE_URL``, ``LLM_PROVIDER``,
``ROUTING_THRESHOLD``...); :class:`EnvironmentSource` sorts them into the sections. A bad value
fails start-up with one :class:`ConfigError` line naming the variable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.llm.registry import LLMSettings
from gateway.routing.settings import ROUTING_DOCS, RoutingSettings

# A random key is generated for development and test only: production must set its own.
MIN_SECRET_BYTES = 32
ENVIRONMENTS = ("development", "production", "test")


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line naming the variable."""


def env(name: str, default: Any, description: str, *, secret: bool = False, **rules: Any) -> Any:
    """A field read from the variable ``name``; ``secret`` ones may come from ``NAME_FILE``."""
    extra = {"secret": True} if secret else None
    return Field(
        default, validation_alias=name, description=description, json_schema_extra=extra, **rules
    )


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True)


class DatabaseSettings(Section):
    url: str | None = env(
        "DATABASE_URL",
        None,
        "`postgresql://user:password@host:5432/db`; required in production and test "
        "(development: the embedded PostgreSQL in `instance/postgres`)",
        secret=True,
    )
    connect_deadline: float = env(
        "DB_CONNECT_DEADLINE", 60.0, "seconds start-up keeps retrying the database", gt=0
    )
    # Kept open, all of them: a connection past the pool (overflow) is closed when it is given
    # back, so a busy worker opened one (a PostgreSQL backend forked) per transaction beyond
    # the pool; 10 + 0 holds the same 10 per worker as 5 + 5 did (issue #20: POST /chat at
    # 32 connections, ~7 % less CPU per turn and ~15 % more turns per second).
    pool_size: int = env(
        "DB_POOL_SIZE",
        10,
        "connections per worker, kept open; keep workers × (pool + overflow) below "
        "PostgreSQL's `max_connections`",
        ge=1,
    )
    max_overflow: int = env(
        "DB_MAX_OVERFLOW",
        0,
        "extra connections per worker at peaks (closed again after each use)",
        ge=0,
    )
    pool_timeout: float = env(
        "DB_POOL_TIMEOUT", 5.0, "seconds to wait for a pooled connection before 503", gt=0
    )
    connect_timeout: int = env("DB_CONNECT_TIMEOUT", 3, "seconds per connection attempt", ge=1)

    @field_validator("url")
    @classmethod
    def _postgresql(cls, url: str | None) -> str | None:
        if url and not url.startswith(("postgresql://", "postgresql+psycopg2://")):
            raise ValueError("DATABASE_URL: must be a postgresql:// URL")
        return url


class AuthSettings(Section):
    jwt_secret_key: str | None = env(
        "JWT_SECRET_KEY",
        None,
        "signing key for tokens; production requires at least 32 bytes "
        "(development: random, kept in `instance/`)",
        secret=True,
    )
    mock_auth: bool | None = env(
        "MOCK_AUTH",
        None,
        "requests without a token act as a development user; default on in development, "
        "refused elsewhere",
    )
    allow_registration: bool = env(
        "ALLOW_REGISTRATION", True, "`false` closes `POST /auth/register`"
    )
    access_token_minutes: int = env("ACCESS_TOKEN_MINUTES", 15, "access token lifetime", ge=1)
    refresh_token_days: int = env("REFRESH_TOKEN_DAYS", 7, "refresh token lifetime", ge=1)
    admin_email: str | None = env("ADMIN_EMAIL", None, "creates the first admin at start-up")
    admin_password: str | None = env(
        "ADMIN_PASSWORD", None, "the first admin's password", secret=True
    )
    login_max_failures: int = env(
        "LOGIN_MAX_FAILURES", 5, "failed logins per window before throttling", ge=1
    )
    login_window_seconds: int = env(
        "LOGIN_WINDOW_SECONDS", 300, "the login throttling window", ge=1
    )
    api_key_cache_seconds: float = env(
        "API_KEY_CACHE_SECONDS",
        5.0,
        "seconds a worker trusts an API key it has read; a key revoked through another worker "
        "or replica stops within this (`0`: read on every request)",
        ge=0,
    )


class EndpointSettings(Section):
    """What ``/mcp`` shows and how much it lets each user call.

    ``roles`` maps a user role to the server names it may see, or ``None`` for every server;
    a role missing from the map sees nothing. ``rate_limit`` calls (tools/call,
    resources/read, prompts/get) per ``rate_window_seconds`` per user; 0 turns it off.
    """

    roles: Mapping[str, frozenset[str] | None] = env(
        "MCP_ENDPOINT_ROLES",
        {"admin": None, "user": None},
        '`/mcp` per-role visibility, e.g. `{"admin": "*", "user": ["time"]}` (a role not in '
        "the map sees no server; default: every role sees every server)",
    )
    tools_mode: Literal["all", "search"] = env(
        "MCP_ENDPOINT_TOOLS",
        "all",
        "what `/mcp` lists by default: `all`, or `search` (the `always` servers' tools plus a "
        "search tool over the rest; per request: `?tools=search`)",
    )
    rate_limit: int = env(
        "MCP_ENDPOINT_RATE_LIMIT",
        120,
        "calls through `/mcp` (tools, resource reads, prompts) a user may make per window; "
        "`0` turns it off",
        ge=0,
    )
    rate_window_seconds: int = env(
        "MCP_ENDPOINT_RATE_WINDOW_SECONDS", 60, "the `/mcp` rate window", ge=1
    )
    max_streams_per_worker: int = env(
        "MCP_ENDPOINT_MAX_STREAMS",
        0,
        "open `/mcp` listen streams per worker (each holds a thread); `0`: half the threads",
        ge=0,
    )
    catalog_poll_seconds: float = 2.0

    def visible(self, role: str) -> frozenset[str] | None:
        """Server names the role may use; ``None`` means all of them."""
        if role not in self.roles:
            return frozenset()
        return self.roles[role]

    @field_validator("tools_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, raw: Any) -> Any:
        """``{"admin": "*", "user": ["time", "git"]}``: per role, every server or a list."""
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"MCP_ENDPOINT_ROLES: not JSON: {exc}") from None
        if not isinstance(raw, Mapping):
            raise ValueError('MCP_ENDPOINT_ROLES: must be an object like {"admin": "*"}')
        roles: dict[str, frozenset[str] | None] = {}
        for role, servers in raw.items():
            if servers == "*" or servers is None:
                roles[role] = None
            elif isinstance(servers, list | frozenset | set) and all(
                isinstance(s, str) for s in servers
            ):
                roles[role] = frozenset(servers)
            else:
                raise ValueError(
                    f'MCP_ENDPOINT_ROLES: {role}: must be "*" or a list of server names'
                )
        return roles


class MCPSettings(Section):
    config: str = env("MCP_CONFIG", "config/mcp_servers.json", "the `mcpServers` JSON file")
    max_tool_result_bytes: int = env(
        "MAX_TOOL_RESULT_BYTES",
        100_000,
        "longer tool results are truncated, with a marker; over stdio and HTTP a `tools/call` "
        "answer is read only to about twice this size and the rest discarded unparsed",
        ge=1000,
    )
    endpoint: EndpointSettings = Field(default_factory=EndpointSettings)


class LimitsSettings(Section):
    """Abuse limits per user, shared by every worker (PostgreSQL, or Redis with REDIS_URL)."""

    chat_rate_limit: int = env(
        "CHAT_RATE_LIMIT",
        30,
        "chat turns (`/chat` and `/v1/chat/completions`) a user may start per window; more get "
        "429 with `Retry-After`; `0` turns it off",
        ge=0,
    )
    chat_rate_window_seconds: int = env(
        "CHAT_RATE_WINDOW_SECONDS", 60, "the chat rate window", ge=1
    )
    chat_max_concurrent: int = env(
        "CHAT_MAX_CONCURRENT",
        3,
        "chat turns (streamed or not) one user may have running at once, across all workers; "
        "`0` turns it off",
        ge=0,
    )
    chat_lease_seconds: int = env(
        "CHAT_LEASE_SECONDS",
        900,
        "how long a running turn holds its slot at most (frees the slots of a killed worker)",
        ge=10,
    )
    redis_url: str | None = env(
        "REDIS_URL",
        None,
        "count the chat limits in Redis instead of PostgreSQL; when Redis fails, the limits are "
        "skipped (logged), chat goes on",
        secret=True,
    )
    max_message_chars: int = env("MAX_MESSAGE_CHARS", 32_000, "longest chat message", ge=1)
    history_token_budget: int = env(
        "HISTORY_TOKEN_BUDGET",
        24_000,
        "earlier turns replayed to the model, oldest dropped first",
        ge=100,
    )


class HTTPSettings(Section):
    bind: str = env("BIND", "0.0.0.0:8000", "listen address (`make run`: `127.0.0.1:8000`)")
    workers: int = env("GUNICORN_WORKERS", 2, "worker processes", ge=1)
    # Threads mostly wait on the model: a streamed turn uses two, so 2 x 64 serve ~64 streams.
    threads: int = env(
        "GUNICORN_THREADS",
        64,
        "threads per worker; they mostly wait on the model (a streamed turn holds two), and "
        "database connections are held only around database work",
        ge=1,
    )
    # A worker's restart costs ~3 s of CPU (imports, models, warm-up) and ends its streams
    # after the graceful timeout: at 5,000 a worker under load restarted every ~15 s (issue
    # #20, seen in the benchmark's log).
    max_requests: int = env(
        "GUNICORN_MAX_REQUESTS",
        50_000,
        "requests after which a worker is replaced (±10 %), a bound on slow leaks; `0`: never",
        ge=0,
    )
    max_request_bytes: int = env(
        "MAX_REQUEST_BYTES", 1024 * 1024, "larger request bodies get 413", ge=1
    )
    trusted_proxies: int = env(
        "TRUSTED_PROXIES",
        0,
        "proxies in front (nginx: 1) whose `X-Forwarded-For` is believed",
        ge=0,
    )
    # Browser-facing headers: origins allowed by CORS (none by default), and HSTS max-age.
    cors_origins: tuple[str, ...] = env(
        "CORS_ORIGINS",
        (),
        "comma-separated origins allowed to call the API from a browser, e.g. "
        "`https://chat.example.com`; `*` is refused",
    )
    hsts_seconds: int = env(
        "HSTS_SECONDS",
        0,
        "`Strict-Transport-Security` max-age; set it when TLS ends in front of the gateway",
        ge=0,
    )
    sse_heartbeat_seconds: float = env(
        "SSE_HEARTBEAT_SECONDS", 10.0, "`: keepalive` comments while a stream is quiet", gt=0
    )
    metrics_dir: str | None = env(
        "PROMETHEUS_MULTIPROC_DIR",
        None,
        "directory through which gunicorn's workers share metrics (gunicorn.conf.py sets one)",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, raw: Any) -> Any:
        """Comma-separated exact origins (scheme://host[:port]); a wildcard is refused."""
        items = raw.split(",") if isinstance(raw, str) else raw
        origins = tuple(o.strip().rstrip("/") for o in items if o.strip())
        for origin in origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
                raise ValueError(
                    f"CORS_ORIGINS: {origin!r} is not an origin like https://app.example"
                )
        return origins


class Settings(BaseSettings):
    """Every setting the gateway reads, with its default, in sections."""

    model_config = SettingsConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True)

    environment: Literal["development", "production", "test"] = env(
        "ENVIRONMENT",
        "development",
        "`development`, `production` or `test`; anything else is refused",
    )
    instance_path: str | None = env(
        "INSTANCE_PATH",
        None,
        "development state: the embedded PostgreSQL's data and the generated JWT secret "
        "(default: `instance/` in the checkout)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = env(
        "LOG_LEVEL", "INFO", "`DEBUG`, `INFO`, `WARNING`, `ERROR`"
    )
    log_format: Literal["text", "json"] = env(
        "LOG_FORMAT", "text", "`text` or `json` (one object per line)"
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    mcp: MCPSettings = Field(default_factory=MCPSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    http: HTTPSettings = Field(default_factory=HTTPSettings)
    # The variables the settings were read from: ``${VAR}`` in the MCP config file expands
    # against them. Never shown (it holds secrets).
    environ: Mapping[str, Any] = Field(default_factory=dict, repr=False, exclude=True)

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
        return self.is_development and self.auth.mock_auth is not False

    @field_validator("environment", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _uppercase(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _environment_defaults(cls, values: Any) -> Any:
        """The offline provider is the development default; production must ask for it."""
        if not isinstance(values, dict):
            return values
        environment = values.get("ENVIRONMENT", values.get("environment", "development"))
        llm = values.get("llm")
        if llm is None:
            llm = values["llm"] = {}
        if isinstance(llm, dict):
            llm.setdefault("allow_offline", str(environment).strip().lower() != "production")
            # LLM_PRICES gives [input, output] pairs.
            prices = llm.get("prices")
            if isinstance(prices, Mapping):
                llm["prices"] = {
                    model: dict(zip(("input_per_mtok", "output_per_mtok"), price, strict=False))
                    if isinstance(price, list | tuple)
                    else price
                    for model, price in prices.items()
                }
        return values

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Settings:
        """Refuse unsafe combinations: mock auth outside development, production without a
        database, a strong JWT secret or a provider that can answer, test without a database."""
        if self.auth.mock_auth and not self.is_development:
            raise ValueError(
                f"MOCK_AUTH: mock authentication is refused when ENVIRONMENT={self.environment}"
            )
        if self.environment == "test" and not self.database.url:
            raise ValueError("DATABASE_URL: required when ENVIRONMENT=test")
        if not self.is_production:
            return self
        if not self.database.url:
            raise ValueError("DATABASE_URL: required in production")
        if len((self.auth.jwt_secret_key or "").encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"JWT_SECRET_KEY: production needs a secret of at least {MIN_SECRET_BYTES} bytes"
            )
        provider = self.llm.default_provider
        configured = self.llm.configured()
        if provider == "auto" and not configured:
            raise ValueError(
                "LLM_PROVIDER: production has no provider that can answer: set "
                "ANTHROPIC_API_KEY, OPENAI_API_KEY or OPENAI_BASE_URL (or LLM_ALLOW_OFFLINE=true)"
            )
        if provider != "auto" and provider not in configured:
            raise ValueError(
                f"LLM_PROVIDER: {provider} cannot answer in production: it is not configured"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _SOURCE.get()
        if environ is None:
            environ = process_environment()
        return (init_settings, EnvironmentSource(settings_cls, environ))

    @classmethod
    def from_env(cls, environ: Mapping[str, Any]) -> Settings:
        """Settings from ``environ`` alone (not the process environment); raises ConfigError."""
        token = _SOURCE.set(environ)
        try:
            return cls()
        except ValidationError as exc:
            raise config_error(exc) from None
        finally:
            _SOURCE.reset(token)


# The mapping Settings.from_env reads instead of the process environment (this thread only).
_SOURCE: ContextVar[Mapping[str, Any] | None] = ContextVar("settings_source", default=None)


def process_environment(
    env_file: str | os.PathLike[str] = ".env", environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``environ`` (default: the process environment) over an optional ``.env`` file."""
    from dotenv import dotenv_values

    file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**file_values, **(os.environ if environ is None else environ)}


def load_settings(*, env_file: str | os.PathLike[str] = ".env") -> Settings:
    """Settings from the process environment over ``env_file``; raises ConfigError."""
    return Settings.from_env(process_environment(env_file))


@dataclasses.dataclass(frozen=True)
class Variable:
    """One environment variable: where it lands in :class:`Settings`, and how it is shown."""

    name: str
    path: tuple[str, ...]
    default: Any
    description: str
    secret: bool = False
    json: bool = False


def variables() -> Iterator[Variable]:
    """Every variable the settings read, in the model's order."""
    yield from _model_variables(Settings, ())


def _model_variables(model: type[BaseModel], path: tuple[str, ...]) -> Iterator[Variable]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _model_variables(annotation, (*path, name))
        elif annotation is LLMSettings:
            for field in dataclasses.fields(LLMSettings):
                if field.metadata.get("env"):
                    yield Variable(
                        field.metadata["env"],
                        (*path, name, field.name),
                        _dataclass_default(field),
                        field.metadata.get("doc", ""),
                        secret=field.metadata.get("secret", False),
                        json=field.name == "prices",
                    )
        elif annotation is RoutingSettings:
            for field in dataclasses.fields(RoutingSettings):
                yield Variable(
                    f"ROUTING_{field.name.upper()}",
                    (*path, name, field.name),
                    _dataclass_default(field),
                    ROUTING_DOCS.get(field.name, ""),
                    json=field.name == "lexical_weights",
                )
        elif isinstance(info.validation_alias, str):
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            yield Variable(
                info.validation_alias,
                (*path, info.validation_alias),
                info.default,
                info.description or "",
                secret=bool(extra.get("secret")),
            )


def _dataclass_default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


class EnvironmentSource(PydanticBaseSettingsSource):
    """Flat variables (and NAME_FILE secrets) sorted into the settings' sections."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        env = self.environ
        values: dict[str, Any] = {"environ": dict(env)}
        known: set[str] = set()
        for variable in variables():
            known.add(variable.name)
            raw = _secret(variable.name, env) if variable.secret else env.get(variable.name)
            # An empty variable is an unset one (compose blanks a variable that way).
            if raw is None or raw == "":
                continue
            if variable.json and isinstance(raw, str):
                try:
                    raw = json.loads(raw)
                except ValueError as exc:
                    raise ConfigError(f"{variable.name}: not JSON: {exc}") from None
            target = values
            for part in variable.path[:-1]:
                target = target.setdefault(part, {})
            target[variable.path[-1]] = raw
        unknown = sorted(k for k in env if k.startswith("ROUTING_") and k not in known)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown routing setting")
        routing = values.get("routing", {})
        if "embeddings_url" in routing and "semantic_backend" not in routing:
            routing["semantic_backend"] = "endpoint"  # a URL alone means "use it"
        return values


def _secret(name: str, environ: Mapping[str, Any]) -> Any:
    """NAME or the contents of the file named by NAME_FILE (compose and Kubernetes secrets)."""
    file_var = f"{name}_FILE"
    if not environ.get(file_var):
        return environ.get(name)
    if environ.get(name):
        raise ConfigError(f"{name}: set either {name} or {file_var}, not both")
    path = Path(environ[file_var])
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ConfigError(f"{file_var}: cannot read {path}: {exc.strerror}") from None


def config_error(exc: ValidationError) -> ConfigError:
    """The first error as one line naming its variable; a secret's value is never shown."""
    error = exc.errors(include_url=False)[0]
    message = error["msg"].removeprefix("Value error, ")
    if re.match(r"[A-Z][A-Z0-9_]+: ", message):
        return ConfigError(message.splitlines()[0])
    by_path = {v.path: v for v in variables()}
    by_name = {v.name: v for v in variables()}
    loc = tuple(str(part) for part in error["loc"])
    # The longest known prefix: an error inside LLM_PRICES is at llm.prices.<model>...
    prefixes = (by_path.get(loc[:n]) for n in range(len(loc), 0, -1))
    variable = next((v for v in prefixes if v), None) or by_name.get(loc[-1] if loc else "")
    if variable is None:
        return ConfigError(f"{'.'.join(loc) or 'settings'}: {message}".splitlines()[0])
    shown = error.get("input")
    if not variable.secret and isinstance(shown, str | int | float):
        message = f"{message}, got {shown!r}"
    return ConfigError(f"{variable.name}: {message}".splitlines()[0])


README_START = (
    "<!-- settings table: generated by `make settings-table` from gateway/settings.py -->"
)
README_END = "<!-- end of settings table -->"


def markdown_table() -> str:
    """README's configuration table: every variable, its default and its meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for variable in variables():
        name = f"`{variable.name}`" + (" *(secret)*" if variable.secret else "")
        meaning = variable.description.replace("|", "\\|") or "—"
        rows.append(f"| {name} | {_shown_default(variable.name, variable.default)} | {meaning} |")
    return "\n".join(rows) + "\n"


# Defaults that depend on something else, as the table shows them.
_SHOWN_DEFAULTS = {
    "DATABASE_URL": "development: the embedded PostgreSQL",
    "JWT_SECRET_KEY": "development: random, kept in `instance/`",
    "INSTANCE_PATH": "`instance/` in the checkout",
    "MOCK_AUTH": "`true` in development only",
    "LLM_ALLOW_OFFLINE": "`true`, production `false`",
    "ANTHROPIC_BASE_URL": "SDK default",
    "OPENAI_BASE_URL": "SDK default",
    "MCP_ENDPOINT_ROLES": "every role sees every server",
    "MCP_ENDPOINT_MAX_STREAMS": "half the threads",
    "CORS_ORIGINS": "— (CORS closed)",
    "HSTS_SECONDS": "`0` (off)",
    "PROMETHEUS_MULTIPROC_DIR": "gunicorn: a temporary directory",
}


def _shown_default(name: str, value: Any) -> str:
    if name in _SHOWN_DEFAULTS:
        return _SHOWN_DEFAULTS[name]
    if value is None or value == () or value == "":
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, Mapping):
        shown = {k: "*" if v is None else v for k, v in value.items()}
        return f"`{json.dumps(shown, separators=(', ', ': '))}`"
    return f"`{value}`"


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the table's markers replaced by :func:`markdown_table`."""
    head, start, rest = readme.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        raise ValueError("README has no settings table markers")
    return f"{head}{start}\n{markdown_table()}{end}{tail}"


def write_readme_table(path: str | os.PathLike[str] = "README.md") -> None:
    """Rewrite the table in the README at ``path`` (``make settings-table``)."""
    readme = Path(path)
    readme.write_text(readme_with_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
