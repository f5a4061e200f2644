"""Once-per-start work, run in the gunicorn master before it forks its workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.auth.users import bootstrap_accounts
from gateway.database import upgrade_database
from gateway.extensions import db

if TYPE_CHECKING:
    from flask import Flask


def prepare_service(app: Flask) -> None:
    """Migrate, create the configured accounts, and leave no connection for workers to inherit."""
    upgrade_database(app)
    bootstrap_accounts(app)
    with app.app_context():
        db.engine.dispose()
