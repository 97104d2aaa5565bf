"""A loopback TCP proxy for fault tests: records what a client sends, and can cut it off.

Put between one daemon and a dependency (iCompleat, the state database) to see WHEN that daemon
sent each request, and to partition it (``block``: nothing passes either way, as with a dropped
network, until ``unblock``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

_WRITES = (b"POST ", b"PUT ", b"DELETE ", b"PATCH ")


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``sent`` keeps (time, first bytes) per chunk."""

    target: tuple[str, int]
    sent: list[tuple[float, bytes]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{self.port}").start()

    def block(self) -> None:
        """Stop passing bytes (both ways) until :meth:`unblock`."""
        self._open.clear()

    def unblock(self) -> None:
        """Pass bytes again (what was held is delivered late, as after a partition heals)."""
        self._open.set()

    def writes(self, after: float, before: float = float("inf")) -> list[tuple[float, bytes]]:
        """HTTP write requests (POST, PUT, DELETE) sent in the window ``(after, before)``."""
        with self._lock:
            return [(t, head) for t, head in self.sent
                    if after < t < before and head.startswith(_WRITES)]

    def close(self) -> None:
        """Stop accepting (connections in progress end with their peers)."""
        self._closed = True
        self._open.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for src, dst, record in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(src, dst, record), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while True:
                self._open.wait()
                data = src.recv(65536)
                if not data:
                    break
                while not self._open.is_set() and not self._closed:
                    time.sleep(0.01)
                if record:
                    with self._lock:
                        self.sent.append((time.time(), data[:16]))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
