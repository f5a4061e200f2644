"""Refuse connections until a worker is warm, instead of holding them in the listen backlog.

gunicorn's master binds and listens before it forks, and each worker warms up (MCP servers,
SDKs, the router's model) before it accepts: seconds, tens of seconds on a crowded machine.
Meanwhile the kernel completes every handshake into the backlog, so a load balancer sees a
replica that took the connection and then does not answer; nginx waits its read timeout
(minutes, for LLM turns) instead of trying another replica. A refused connection is an
error nginx retries at once on the next replica (``proxy_next_upstream error``).

Linux only, where ``shutdown(SHUT_RD)`` on a listening TCP socket stops listening and keeps
the bound address (``inet_shutdown`` in net/ipv4/af_inet.c; HAProxy pauses listeners the
same way), and ``listen()`` again resumes. Elsewhere, and for UNIX sockets or an ephemeral
port (``listen()`` would pick a new one), connections wait in the backlog as before.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterable
from typing import Protocol

log = logging.getLogger(__name__)


class Listener(Protocol):
    """gunicorn's listener wrapper (``gunicorn.sock.BaseSocket``): the socket is ``.sock``."""

    sock: socket.socket


def _pausable(listener: Listener) -> bool:
    sock = listener.sock
    if sys.platform != "linux" or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    return sock.getsockname()[1] != 0


def pause(listeners: Iterable[Listener]) -> list[Listener]:
    """Stop listening on each TCP listener, keeping its address: connections are refused.

    Returns the listeners paused (the others keep queueing). Called in the master before the
    first worker is forked (gunicorn's ``when_ready``).
    """
    paused = []
    for listener in listeners:
        if not _pausable(listener):
            continue
        try:
            listener.sock.shutdown(socket.SHUT_RD)
        except OSError as exc:
            log.warning("cannot refuse connections on %s while warming: %s", listener, exc)
            continue
        paused.append(listener)
    return paused


def resume(listeners: Iterable[Listener], backlog: int) -> None:
    """Listen again (``backlog`` connections queued); harmless on a socket that listens.

    Called by every worker once it is warm (gunicorn's ``post_worker_init``): the first one
    reopens the socket every worker shares.
    """
    for listener in listeners:
        listener.sock.listen(backlog)
