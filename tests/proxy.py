"""A TCP forwarder for fault tests: it stands between workers and their database, and can cut
every connection and refuse new ones for a while, as a restarting server or a dropped network
does."""

from __future__ import annotations

import socket
import threading
import time


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target`; `cut(seconds)` drops every open connection and
    closes each new one at once until the time is up (`restore()` ends it early)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        self._refuse_until = 0.0  # time.monotonic() before which new connections are closed
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def cut(self, seconds: float) -> None:
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
            self.cuts += 1
            for sock in self._open:
                _shut(sock)
            self._open.clear()

    def restore(self) -> None:
        self._refuse_until = 0.0

    def close(self) -> None:
        self._closed = True
        self.cut(0)
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                _shut(client)  # the database looks gone: the client's handshake meets EOF
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                _shut(client)
                continue
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _shut(source)
            _shut(sink)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
