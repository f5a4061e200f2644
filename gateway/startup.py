"""Once-per-start work, run in the gunicorn master before it forks its workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.auth.users import bootstrap_accounts
from gateway.capacity import check_capacity
from gateway.config import gunicorn_counts
from gateway.database import upgrade_database
from gateway.extensions import db

if TYPE_CHECKING:
    from flask import Flask


def prepare_service(app: Flask) -> None:
    """Migrate, create accounts, check the connection budget; leave no connection to inherit."""
    upgrade_database(app)
    bootstrap_accounts(app)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            workers, threads = gunicorn_counts()
            check_capacity(
                db.engine, app.extensions["gateway.settings"], workers=workers, threads=threads
            )
        db.engine.dispose()
