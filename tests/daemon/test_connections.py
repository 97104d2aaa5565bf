"""The connection guard: a cap below the descriptor limit, oldest idle evicted, busy kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.daemon.connections import ConnectionGuard, connection_limit


@dataclass
class _Transport:
    written: list[bytes] = field(default_factory=list)
    closed: str = ""

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = "close"

    def abort(self) -> None:
        self.closed = "abort"


@dataclass(eq=False)
class _Conn:
    transport: _Transport = field(default_factory=_Transport)


def test_the_cap_leaves_a_quarter_of_the_descriptors() -> None:
    """512 configured fits 4,096; at 1,024 descriptors the cap drops to 768; never below 8."""
    assert connection_limit(512, 4096) == 512
    assert connection_limit(2000, 1024) == 768
    assert connection_limit(512, 40) == 8


def test_the_oldest_connection_without_a_request_is_evicted() -> None:
    """Past the cap the oldest idle connection is aborted; a busy one is never touched."""
    guard = ConnectionGuard(limit=3, header_timeout=10)
    busy, idle_old, idle_new = _Conn(), _Conn(), _Conn()
    for conn in (busy, idle_old, idle_new):
        assert guard.opened(conn)
    guard.started(busy)
    prober = _Conn()
    assert guard.opened(prober)
    assert idle_old.transport.closed == "abort"
    assert not busy.transport.closed
    assert not idle_new.transport.closed
    assert guard.counts["evicted"] == 1


def test_when_all_are_busy_the_newcomer_gets_503() -> None:
    """No connection to evict: the new one is answered 503 and closed at once."""
    guard = ConnectionGuard(limit=2, header_timeout=10)
    first, second = _Conn(), _Conn()
    for conn in (first, second):
        guard.opened(conn)
        guard.started(conn)
    late = _Conn()
    assert not guard.opened(late)
    assert late.transport.written[0].startswith(b"HTTP/1.1 503")
    assert late.transport.closed == "close"


def test_a_connection_without_headers_in_time_is_closed() -> None:
    """The header deadline closes a waiting connection, and not one whose request started."""
    guard = ConnectionGuard(limit=10, header_timeout=1)
    slow, quick = _Conn(), _Conn()
    guard.opened(slow)
    guard.opened(quick)
    guard.started(quick)
    guard.timed_out(slow)
    guard.timed_out(quick)
    assert slow.transport.closed == "abort"
    assert not quick.transport.closed
    assert guard.counts["header_timeout"] == 1
