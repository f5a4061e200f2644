"""Gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`.

The master runs the one-time start-up work (settings check, migrations) before it forks;
each worker builds its own app, database pool and MCP sessions after the fork.
"""

import os
import shutil
import sys
import tempfile

# Metrics from all workers are aggregated through files in this directory. It must be set
# before prometheus_client is first imported, which happens when the app is built below.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-")
    _owns_metrics_dir = True
else:
    _owns_metrics_dir = False

from gateway.settings import ConfigError, load_settings  # noqa: E402  (after the line above)

# Every setting is checked here, once, before gunicorn starts: a bad one is one line.
try:
    settings = load_settings()
except ConfigError as exc:
    sys.exit(f"configuration error: {exc}")

workers, threads = settings.http.workers, settings.http.threads
bind = settings.http.bind
# Threads, not processes, wait on LLM and tool calls: each is I/O-bound.
worker_class = "gthread"
# No preloading: per-process resources (database pool, MCP sessions) are created after fork.
preload_app = False
# With gthread this only catches a worker whose main loop is stuck, not a slow request:
# request deadlines (LLM, MCP and database timeouts) live in the application.
timeout = 120
# On SIGTERM, in-flight requests and streams get this long to finish.
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so that a slow leak cannot grow without bound.
max_requests = settings.http.max_requests
max_requests_jitter = max_requests // 10
# The application logs one line per request itself (with the request id).
accesslog = None
errorlog = "-"
loglevel = settings.log_level.lower()
# gunicorn 27's control socket has one default path per user ($HOME/.gunicorn/gunicorn.ctl):
# two gateways on one host (replicas, tests, a benchmark) would answer each other's commands.
control_socket_disable = True


def on_starting(server):
    """Check the port and settings, start the development database, migrate: once, before forks."""
    from gateway import create_app
    from gateway.database import DatabaseUnavailable
    from gateway.embedded_postgres import EmbeddedPostgresError
    from gateway.startup import prepare_service, refuse_taken_addresses, start_embedded_database

    try:
        refuse_taken_addresses(server.cfg.address)
        embedded = start_embedded_database(settings)
        if embedded is not None:
            server.embedded_postgres = embedded
            # The workers inherit the URL and connect; they never start a server themselves.
            os.environ["DATABASE_URL"] = embedded.url
        prepare_service(create_app())
        # Read-only model weights, loaded once here and shared by every worker after the fork.
        from gateway.routing.encoders import preload_models

        loaded = preload_models(settings.routing)
        if loaded:
            server.log.info("routing models loaded before fork: %s", ", ".join(loaded))
    except (ConfigError, DatabaseUnavailable, EmbeddedPostgresError) as exc:
        server.log.error("start-up failed: %s", exc)
        _stop_embedded_database(server)
        sys.exit(1)


def when_ready(server):
    """Refuse connections until a worker is warm: a load balancer then tries another replica.

    Not on sockets handed over by systemd or by an old master (USR2): others serve on them.
    """
    from gateway.listeners import pause

    if server.systemd or server.master_pid:
        return
    if pause(server.LISTENERS):
        server.log.info("refusing connections until a worker is warm")


def _stop_embedded_database(server):
    embedded = getattr(server, "embedded_postgres", None)
    if embedded is not None:
        embedded.stop()


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the aggregated metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """After the last worker has gone: stop the development database, drop the metrics."""
    _stop_embedded_database(server)
    if _owns_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_worker_init(worker):
    """Warm up before taking traffic: MCP sessions, the SDK clients, the router and its model.

    Until the first worker is warm the socket refuses connections (``when_ready``); a worker
    that replaces another warms while its siblings serve, and connections queue as usual.
    """
    from gateway.listeners import resume
    from gateway.services import warm_up

    warm_up(worker.wsgi)

    # The MCP endpoint's loop, after the fork; its open listen streams end as soon as the
    # worker is told to stop, so they do not hold the stop for graceful_timeout.
    from gateway.mcp_server import end_streams_when, start_endpoint

    start_endpoint(worker.wsgi)
    end_streams_when(worker.wsgi, lambda: not worker.alive)
    resume(worker.sockets, worker.cfg.backlog)


def worker_exit(server, worker):
    """End the /mcp endpoint, stop this worker's MCP server processes, close its LLM clients."""
    from gateway.services import close_services

    app = getattr(worker, "wsgi", None)  # absent when the worker failed to boot
    if app is not None:
        close_services(app)
