"""sd_notify against a real AF_UNIX datagram socket, by path and by abstract name."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.daemon.notify import Notifier, message, socket_address, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a file path, as systemd creates it."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def _fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_status_watchdog_stopping_over_a_path(listener: tuple[socket.socket, str]) -> None:
    """Each notification arrives as one datagram of KEY=value lines."""
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("serving 2 companies")
    assert _fields(sock) == {"READY": "1", "STATUS": "serving 2 companies",
                             "MAINPID": str(os.getpid())}
    notifier.status("uk:reference running")
    assert _fields(sock) == {"STATUS": "uk:reference running"}
    notifier.watchdog()
    assert _fields(sock) == {"WATCHDOG": "1"}
    notifier.stopping()
    assert _fields(sock)["STOPPING"] == "1"
    assert notifier.sent == 4


def test_abstract_socket_name() -> None:
    """A NOTIFY_SOCKET starting with @ reaches an abstract-namespace socket."""
    name = f"icsync-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert sock.recv(100) == b"STATUS=hello"


def test_no_socket_is_a_quiet_no_op() -> None:
    """Outside systemd nothing is sent and nothing fails."""
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.sent == 0


def test_gone_socket_is_logged_not_raised(tmp_path: Path) -> None:
    """A notify socket that vanished does not break the service."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert notifier.status("x") is False


def test_newlines_in_values_cannot_inject_fields() -> None:
    """A status with a newline stays one STATUS line."""
    assert message(status="a\nREADY=1") == b"STATUS=a READY=1"


@pytest.mark.parametrize(("env", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "0"}, None),
    ({}, None),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
])
def test_watchdog_interval_is_half_the_usec(env: dict[str, str], expected: float | None) -> None:
    """Pings every WATCHDOG_USEC/2, only for the PID systemd names."""
    assert watchdog_interval(env) == expected


async def test_watchdog_loop_pings_repeatedly(listener: tuple[socket.socket, str]) -> None:
    """The loop pings at the interval until cancelled."""
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    task = asyncio.create_task(notifier.watchdog_loop())
    await asyncio.sleep(0.18)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert notifier.sent >= 3
    assert _fields(sock) == {"WATCHDOG": "1"}


def test_socket_address_forms() -> None:
    """Paths stay text; @names become NUL-prefixed bytes."""
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abc") == b"\0abc"
