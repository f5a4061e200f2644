"""The tool catalog: which MCP tools exist, which definitions are trusted, which are offered."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from flask.cli import AppGroup

if TYPE_CHECKING:
    from flask import Flask

routing_cli = AppGroup("routing", help="Inspect intelligent routing.")


@routing_cli.command("explain")
@click.argument("prompt")
def explain_command(prompt: str) -> None:
    """Print the ranking of the live catalog for PROMPT."""
    from gateway.services import get_services

    click.echo(get_services().tools.router().explain(prompt))


def init_app(app: Flask) -> None:
    app.cli.add_command(routing_cli)
