"""MCP Gateway: an AI chat gateway with intelligent MCP routing."""

from __future__ import annotations

import atexit
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import (  # noqa: F401  (models registers the tables)
    access,
    auth,
    catalog,
    chat,
    compat,
    health,
    mcp_server,
    metrics,
    models,
    openapi,
    security,
)
from gateway.database import MIGRATIONS_DIR, engine_options
from gateway.embedded_postgres import EmbeddedPostgres, running_url
from gateway.errors import register_error_handlers
from gateway.extensions import db, jwt, migrate
from gateway.json_body import JSONRequest
from gateway.logs import configure_logging
from gateway.services import register_services
from gateway.settings import Settings, load_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the application from ``settings`` (default: the environment and ``.env``).

    Raises ConfigError, one line naming the variable, for a bad setting or MCP config file.
    """
    if settings is None:
        settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__, static_folder=None, instance_path=settings.instance_folder)
    app.request_class = JSONRequest
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_services(app, settings)
    app.config.update(_flask_config(settings, app))
    if settings.http.trusted_proxies:
        # Behind nginx, the client address (login throttling, logs) is in X-Forwarded-For.
        proxies = settings.http.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    jwt.init_app(app)
    register_error_handlers(app)
    access.init_app(app)
    security.init_app(app)
    auth.init_app(app)
    catalog.init_app(app)
    chat.init_app(app)
    compat.init_app(app)
    mcp_server.init_app(app)

    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    return app


def _flask_config(settings: Settings, app: Flask) -> dict[str, Any]:
    database_url = _with_driver(settings.database.url) or _embedded_database(app)
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(settings.database, database_url),
        "MAX_CONTENT_LENGTH": settings.http.max_request_bytes,
        "JWT_SECRET_KEY": settings.auth.jwt_secret_key or _development_secret(app),
    }


def _with_driver(url: str | None) -> str | None:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg 3; we ship psycopg2."""
    if url and url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _embedded_database(app: Flask) -> str:
    """Development default: the embedded PostgreSQL under instance/ (gateway.embedded_postgres).

    `make run` starts it in gunicorn's master and hands its URL to the workers; a lone
    process (the `flask` CLI) uses the running one, or starts one for its own lifetime.
    """
    url = running_url(app.instance_path)
    if url is None:
        server = EmbeddedPostgres(app.instance_path)
        url = server.start()
        atexit.register(server.stop)
    return _with_driver(url)


def _development_secret(app: Flask) -> str:
    """A random key kept in instance/, shared by every worker; production refuses to get here."""
    os.makedirs(app.instance_path, exist_ok=True)
    path = Path(app.instance_path) / "dev-jwt-secret"
    if not path.exists():
        # Written aside then linked into place, so a worker never reads a half-written key.
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text(encoding="utf-8").strip()
