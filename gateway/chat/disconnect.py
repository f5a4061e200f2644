"""Whether the client of a non-streamed request is still there, without writing to it.

gunicorn puts the connection's socket in the WSGI environ (``gunicorn.socket``). The request
body has been read in full before a turn starts, so the socket being readable with nothing
left to read (a zero-byte peek) means the peer closed its side: the client, or nginx, which
closes the upstream connection when its client goes (``proxy_ignore_client_abort off``).
A readable socket with bytes waiting is a pipelined next request, not a disconnect.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Mapping
from typing import Any


def client_gone(environ: Mapping[str, Any]) -> Callable[[], bool]:
    """A check that is true once the peer has closed the connection (never true off gunicorn)."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False

    def gone() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except (OSError, ValueError):
            return True

    return gone
