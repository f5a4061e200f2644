"""What the router chooses from: server descriptors and their tools, plus a stable fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.tools import Tool


@dataclass(frozen=True)
class ServerDescriptor:
    """One MCP server as the router sees it; ``always`` servers are offered on every turn."""

    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    always: bool = False


@dataclass(frozen=True)
class Catalog:
    """Servers and their tools; tools of unknown servers are ignored."""

    servers: tuple[ServerDescriptor, ...]
    tools: tuple[Tool, ...] = ()
    _by_server: dict[str, tuple[Tool, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        names = {s.name for s in self.servers}
        grouped: dict[str, list[Tool]] = {s.name: [] for s in self.servers}
        for tool in self.tools:
            if tool.server in names:
                grouped[tool.server].append(tool)
        self._by_server.update({name: tuple(tools) for name, tools in grouped.items()})

    @classmethod
    def build(cls, servers: Iterable[ServerDescriptor], tools: Iterable[Tool] = ()) -> Catalog:
        """A catalog from any iterables, in a stable order."""
        return cls(servers=tuple(servers), tools=tuple(tools))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Catalog:
        """Read the common routing-data format (``{"servers": {...}}``, camelCase schemas)."""
        servers: list[ServerDescriptor] = []
        tools: list[Tool] = []
        for name, spec in data.get("servers", {}).items():
            servers.append(
                ServerDescriptor(
                    name=name,
                    description=spec.get("description", "") or "",
                    keywords=tuple(spec.get("keywords", ())),
                    always=bool(spec.get("always", False)),
                )
            )
            for raw in spec.get("tools", ()):
                tools.append(
                    Tool(
                        server=name,
                        name=raw["name"],
                        description=raw.get("description", "") or "",
                        input_schema=raw.get("inputSchema") or raw.get("input_schema") or {},
                    )
                )
        return cls.build(servers, tools)

    def tools_of(self, server: str) -> tuple[Tool, ...]:
        """The tools of one server, in catalog order."""
        return self._by_server.get(server, ())

    def server(self, name: str) -> ServerDescriptor | None:
        """The descriptor of a server by exact name."""
        return next((s for s in self.servers if s.name == name), None)

    def fingerprint(self) -> str:
        """Hash of everything that shapes the index, so caches survive only unchanged catalogs."""
        payload = {
            "servers": [[s.name, s.description, list(s.keywords)] for s in self.servers],
            "tools": [
                [t.server, t.name, t.description, t.input_schema]
                for s in self.servers
                for t in self.tools_of(s.name)
            ],
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
