"""The MCP servers file: the ecosystem's ``mcpServers`` JSON format plus the gateway's own keys.

Shared with Claude Desktop, VS Code and Cursor: ``command``, ``args``, ``env``, ``cwd`` (stdio);
``url``, ``headers`` and ``transport`` (``streamable-http``, the default, or ``sse``; VS Code's
``type`` with ``http``/``sse``/``stdio`` is accepted too). ``${VAR}`` in ``env`` and ``headers``
values is taken from the environment given to the loader. The command ``python`` (or
``python3``) means the interpreter running the gateway, so servers installed in the gateway's
venv start with ``"command": "python", "args": ["-m", "mcp_server_time"]``.

Our keys: ``description``, ``keywords``, ``always`` (for the router), ``enabled`` (default
true), ``timeout`` (per call, s), ``connect_timeout`` (s), ``protocol`` (``auto``, ``legacy``
for handshake-only servers such as the Node reference servers, or ``2026-07-28``),
``allowed_tools`` and ``blocked_tools``. Unknown keys are errors, so typos do not pass silently.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

Transport = Literal["stdio", "streamable-http", "sse"]
# Which protocol era the SDK client speaks (its ``mode``): the handshake era, 2026-07-28, or
# whichever the server answers.
ProtocolMode = Literal["auto", "legacy", "2026-07-28"]

# Commands that mean "the interpreter running the gateway", so a config works in any venv.
PYTHON_ALIASES = frozenset({"python", "python3"})

_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,48}")


class MCPConfigError(ValueError):
    """The MCP servers file is unreadable or invalid; ``str()`` is one line naming server, field."""


class ServerConfig(BaseModel):
    """One MCP server entry; ``env`` and ``headers`` values are secrets and never shown."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    transport: Transport = "stdio"
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, SecretStr] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    description: str = ""
    keywords: tuple[str, ...] = ()
    enabled: bool = True
    timeout: float = Field(default=30.0, gt=0, le=3600)
    connect_timeout: float = Field(default=15.0, gt=0, le=600)
    protocol: ProtocolMode = "auto"
    allowed_tools: tuple[str, ...] | None = None
    blocked_tools: tuple[str, ...] = ()
    always: bool = False

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        # Names end up in provider tool names (``server__tool``), which allow only these characters.
        if not _SERVER_NAME.fullmatch(value) or "__" in value:
            raise ValueError("server names are 1-48 of [A-Za-z0-9_-] without '__'")
        return value

    @model_validator(mode="after")
    def _check_transport(self) -> ServerConfig:
        if self.transport == "stdio":
            if not self.command:
                raise ValueError("a stdio server needs 'command' (or give 'url' for a remote one)")
            if self.url or self.headers:
                raise ValueError("'url'/'headers' are for remote servers, not stdio ones")
            return self
        if not self.url:
            raise ValueError(f"a {self.transport} server needs 'url'")
        if not re.match(r"https?://[^/\s]+", self.url):
            raise ValueError("'url' must be an http:// or https:// URL")
        if self.command or self.args or self.env or self.cwd:
            raise ValueError("'command'/'args'/'env'/'cwd' are for stdio servers, not remote ones")
        return self

    def allows(self, tool: str) -> bool:
        """Whether the allowed/blocked lists let the model see and call this tool."""
        if tool in self.blocked_tools:
            return False
        return self.allowed_tools is None or tool in self.allowed_tools

    def resolved_command(self) -> str:
        """The executable to spawn: ``python`` means the interpreter running the gateway."""
        assert self.command is not None
        return sys.executable if self.command in PYTHON_ALIASES else self.command

    def secret_env(self) -> dict[str, str]:
        """The child's extra environment, revealed only for spawning."""
        return {k: v.get_secret_value() for k, v in self.env.items()}

    def secret_headers(self) -> dict[str, str]:
        """The HTTP headers, revealed only for connecting."""
        return {k: v.get_secret_value() for k, v in self.headers.items()}

    def public(self) -> dict[str, Any]:
        """A view safe to log or return from an API: env and header names only, never values."""
        view = self.model_dump(exclude={"env", "headers"})
        view["env"] = sorted(self.env)
        view["headers"] = sorted(self.headers)
        if self.url:
            # Credentials may hide in the URL's userinfo or query string.
            view["url"] = re.sub(r"//[^/@]*@", "//***@", self.url.split("?", 1)[0])
        return view


def load_mcp_config(path: str | Path, environ: Mapping[str, str]) -> list[ServerConfig]:
    """Read and validate an ``mcpServers`` file; ``${VAR}`` in env and headers uses ``environ``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MCPConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise MCPConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    return parse_mcp_config(data, environ, source=str(path))


def parse_mcp_config(
    data: Any, environ: Mapping[str, str], *, source: str = "mcp config"
) -> list[ServerConfig]:
    """Validate already-parsed config data (the body of an ``mcpServers`` file)."""
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise MCPConfigError(f"{source}: expected an object with an 'mcpServers' object")
    unknown = sorted(set(data) - {"mcpServers"})
    if unknown:
        raise MCPConfigError(f"{source}: unknown top-level key {unknown[0]!r}")
    configs = []
    for name, entry in data["mcpServers"].items():
        if not isinstance(entry, dict):
            raise MCPConfigError(f"{source}: server {name!r}: expected an object")
        configs.append(_parse_server(name, entry, environ, source))
    return configs


def _parse_server(
    name: str, entry: dict[str, Any], environ: Mapping[str, str], source: str
) -> ServerConfig:
    fields = dict(entry)
    # VS Code spells the transport "type" and calls streamable HTTP "http".
    if "type" in fields:
        if "transport" in fields:
            raise MCPConfigError(f"{source}: server {name!r}: give 'type' or 'transport', not both")
        fields["transport"] = fields.pop("type")
    if fields.get("transport") == "http":
        fields["transport"] = "streamable-http"
    if "transport" not in fields and "url" in fields:
        fields["transport"] = "streamable-http"
    for key in ("env", "headers"):
        if isinstance(fields.get(key), dict):
            fields[key] = {
                k: _expand(v, environ, source, name, f"{key}.{k}") for k, v in fields[key].items()
            }
    try:
        return ServerConfig(name=name, **fields)
    except ValidationError as exc:
        raise MCPConfigError(f"{source}: server {name!r}: {_describe(exc)}") from None
    except TypeError as exc:
        raise MCPConfigError(f"{source}: server {name!r}: {exc}") from None


def _expand(value: Any, environ: Mapping[str, str], source: str, server: str, field: str) -> Any:
    """Replace ``${VAR}`` with the variable's value; an unset or malformed variable is an error."""
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        var = match.group(1)
        if not _VAR_NAME.fullmatch(var):
            raise MCPConfigError(
                f"{source}: server {server!r}: field {field!r}: bad variable reference ${{{var}}}"
            )
        if var not in environ:
            raise MCPConfigError(
                f"{source}: server {server!r}: field {field!r}: variable {var} is not set"
            )
        return environ[var]

    expanded = _VAR.sub(sub, value)
    if "${" in _VAR.sub("", value):
        raise MCPConfigError(f"{source}: server {server!r}: field {field!r}: unterminated '${{'")
    return expanded


def _describe(exc: ValidationError) -> str:
    """All validation errors on one line, each naming its field; input values are left out."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].replace("\n", " ").removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"field {loc!r}: {msg}" if loc else msg)
    return "; ".join(parts)
