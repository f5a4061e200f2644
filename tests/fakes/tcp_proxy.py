"""A small fault-injecting TCP proxy on loopback: forward, refuse, or cut connections."""

from __future__ import annotations

import socket
import threading
from urllib.parse import parse_qs, unquote, urlsplit


class TCPProxy:
    """Forwards 127.0.0.1:<port> to a target; ``up`` decides whether connections are accepted."""

    def __init__(
        self, target_port: int, *, target_host: str = "127.0.0.1", target_socket: str | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self.target_socket = target_socket
        self._listener: socket.socket | None = None
        self._port: int | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @classmethod
    def for_database(cls, url: str) -> TCPProxy:
        """A proxy to the PostgreSQL server of ``url``: TCP, or a Unix socket (``?host=/dir``)."""
        parts = urlsplit(url)
        port = parts.port or 5432
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        if socket_dir.startswith("/"):
            return cls(port, target_socket=f"{unquote(socket_dir)}/.s.PGSQL.{port}")
        return cls(port, target_host=parts.hostname or "127.0.0.1")

    def _connect_target(self) -> socket.socket:
        if self.target_socket is None:
            return socket.create_connection(self.target, timeout=5)
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.settimeout(5)
        try:
            upstream.connect(self.target_socket)
        except OSError:
            upstream.close()
            raise
        return upstream

    @property
    def port(self) -> int:
        if self._port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self._port = probe.getsockname()[1]
        return self._port

    @property
    def up(self) -> bool:
        return self._listener is not None

    def start(self) -> TCPProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (the server "goes down")."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave the
            # socket listening until that accept() returned one more connection.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._connect_target()
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
