"""Authentication and authorization: accounts, JWTs, API keys, roles, development mock auth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask.cli import with_appcontext

from gateway.auth.tokens import jwt_config, register_jwt_callbacks
from gateway.auth.views import admin_bp, bp, dev_bp
from gateway.services import get_services

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    settings = get_services(app).settings
    app.config.update(jwt_config(settings.auth))
    register_jwt_callbacks(app)
    app.register_blueprint(bp)
    app.register_blueprint(admin_bp)
    if settings.mock_auth_enabled:
        app.register_blueprint(dev_bp)
    app.cli.add_command(create_admin_command)


@click.command("create-admin")
@with_appcontext
@click.argument("email")
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the password from this file instead of prompting.",
)
def create_admin_command(email: str, password_file: Path | None) -> None:
    """Create an admin account, or promote an existing one."""
    from gateway.auth.users import ensure_admin

    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").strip()
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise click.ClickException("the password must be at least 10 characters")
    user = ensure_admin(email, password)
    click.echo(f"{user.email} is an admin")
