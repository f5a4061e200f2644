"""Once-per-start work, run in the gunicorn master before it forks its workers."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gateway.auth.users import bootstrap_accounts
from gateway.capacity import check_capacity
from gateway.database import upgrade_database
from gateway.embedded_postgres import EmbeddedPostgres
from gateway.extensions import db
from gateway.services import get_services
from gateway.settings import ConfigError, Settings

if TYPE_CHECKING:
    from flask import Flask


def prepare_service(app: Flask) -> None:
    """Migrate, create accounts, check the connection budget; leave no connection to inherit."""
    upgrade_database(app)
    bootstrap_accounts(app)
    settings = get_services(app).settings
    with app.app_context():
        check_capacity(
            db.engine, settings, workers=settings.http.workers, threads=settings.http.threads
        )
        db.engine.dispose()


def refuse_taken_addresses(addresses: Iterable[Any]) -> None:
    """One ConfigError line naming a TCP address already in use, and how to pick another.

    Probed with SO_REUSEADDR like gunicorn's own bind, so a port in TIME_WAIT still counts
    as free; gunicorn would otherwise retry five times and end with "Can't connect".
    """
    for address in addresses:
        if not isinstance(address, tuple):
            continue  # a Unix socket path: gunicorn's own message is clear enough
        host, port = address[0], int(address[1])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise ConfigError(
                        f"BIND: cannot listen on {host}:{port}: {exc.strerror}"
                    ) from None
                shown = f"[{host}]" if family == socket.AF_INET6 else host
                raise ConfigError(
                    f"BIND: port {port} on {host} is already in use; choose another port, "
                    f"e.g. BIND={shown}:{port + 1} make run"
                ) from None


def start_embedded_database(settings: Settings) -> EmbeddedPostgres | None:
    """In development without DATABASE_URL: start the embedded PostgreSQL under instance/."""
    if not settings.is_development or settings.database.url:
        return None
    embedded = EmbeddedPostgres(settings.instance_folder)
    embedded.start()
    return embedded
