"""Bounds on the daemon's HTTP connections, so that no client can stall it.

A client that opens connections and sends half a header (or nothing) would otherwise hold one
file descriptor each, forever: at the descriptor limit /healthz stops answering and the jobs fail
with "Too many open files". :class:`ConnectionGuard` keeps the daemon far from that limit:

- at most ``limit`` connections are open (``[service] max_connections``, lowered to leave a
  quarter of the process's descriptor limit, and at least 64, to the jobs and the state DB);
- a new connection beyond the limit evicts the OLDEST connection that has no request under way
  (half-sent headers, idle keep-alive); when every open connection is busy, the new one is
  answered 503 and closed at once. So a flood of half-open connections cannot lock out a
  prober: its fresh connection always finds room, and is the last to be evicted;
- a connection must deliver a request's complete headers within ``header_timeout`` seconds of
  opening (or of its previous answer), else it is closed; bodies have their own deadline where
  they are read (the webhook, ``[service] body_timeout_seconds``).

asyncio accepts up to its ``backlog`` connections per wake-up before any protocol sees one, so
that number (:data:`ACCEPT_BATCH`) is kept small, or a burst would take the descriptors before
the guard could shed a single connection; the kernel's queue of pending connections is made
long again afterwards (:data:`LISTEN_QUEUE`), so a prober is never left waiting for a SYN retry.

Evictions, refusals and timeouts are counted and logged as one line per kind at most every
10 s (with the count), never one line per connection.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from sync.foundation.logs import get_logger

log = get_logger("icsync.http")
REPORT_SECONDS = 10.0
ACCEPT_BATCH = 32
LISTEN_QUEUE = 1024
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n"
            b"Retry-After: 1\r\n\r\n")


def connection_limit(configured: int, nofile: int | None = None) -> int:
    """``configured``, lowered so a quarter of the descriptor limit (at least 64) stays free."""
    soft = nofile if nofile is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return configured
    return max(8, min(configured, soft - max(64, soft // 4)))


class ConnectionGuard:
    """Admits, evicts and times out the connections of one HTTP server."""

    def __init__(self, limit: int, header_timeout: float) -> None:
        self.limit, self.header_timeout = limit, header_timeout
        self.live: set[Any] = set()
        self.waiting: OrderedDict[Any, None] = OrderedDict()  # no request under way, oldest first
        self.counts = {"evicted": 0, "refused": 0, "header_timeout": 0}
        self.peak = 0
        self._reported = {name: 0 for name in self.counts}
        self._next_report = 0.0

    def opened(self, conn: Any) -> bool:
        """Admit ``conn``; False when it was refused (every other connection is busy)."""
        self.live.add(conn)
        while len(self.live) > self.limit and self.waiting:
            oldest, _ = self.waiting.popitem(last=False)
            self._drop(oldest, "evicted")
        if len(self.live) > self.limit:
            self._drop(conn, "refused")
            return False
        self.peak = max(self.peak, len(self.live))
        self.waiting[conn] = None
        return True

    def started(self, conn: Any) -> None:
        """``conn``'s request headers arrived: it is busy, never evicted."""
        self.waiting.pop(conn, None)

    def idle(self, conn: Any) -> None:
        """``conn`` answered and waits for another request: evictable again (newest)."""
        if conn in self.live:
            self.waiting[conn] = None
            self.waiting.move_to_end(conn)

    def timed_out(self, conn: Any) -> None:
        """``conn`` did not send complete headers in time: close it."""
        if conn in self.waiting:
            self.waiting.pop(conn)
            self._drop(conn, "header_timeout")

    def closed(self, conn: Any) -> None:
        """``conn`` is gone (whoever closed it)."""
        self.live.discard(conn)
        self.waiting.pop(conn, None)

    def _drop(self, conn: Any, why: str) -> None:
        self.live.discard(conn)
        self.counts[why] += 1
        transport = conn.transport
        if why == "refused":
            transport.write(_REFUSAL)
            transport.close()
        else:
            transport.abort()  # frees the descriptor now; nothing useful was sent on it
        self._report()

    def _report(self) -> None:
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + REPORT_SECONDS
        new = {k: v - self._reported[k] for k, v in self.counts.items() if v > self._reported[k]}
        self._reported = dict(self.counts)
        if new:
            log.warning("http_connections_shed", open=len(self.live), limit=self.limit, **new,
                        hint="many connections without complete requests: a client is holding "
                             "connections open, or [service] max_connections is too low")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol under a :class:`ConnectionGuard` (see the module doc)."""

    guard: ConnectionGuard

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Admit the connection (or refuse it) and start its header deadline."""
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        if self.guard.opened(self):
            self._arm()

    def handle_events(self) -> None:
        """As uvicorn, noting when a request's headers have arrived."""
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:
            self._disarm()
            self.guard.started(self)

    def on_response_complete(self) -> None:
        """As uvicorn; then the connection waits for its next request under a deadline."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self.guard.idle(self)
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._disarm()
        self.guard.closed(self)
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.guard.header_timeout, self.guard.timed_out,
                                              self)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """A protocol class bound to ``guard``, for ``uvicorn.Config(http=...)``."""
    return type("BoundGuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
