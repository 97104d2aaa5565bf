"""systemd's notify protocol (``Type=notify``), spoken over ``$NOTIFY_SOCKET``.

:class:`Notifier` sends ``READY=1`` once the daemon serves, ``STATUS=...`` as jobs run,
``WATCHDOG=1`` at half of ``$WATCHDOG_USEC`` while the event loop is healthy, and ``STOPPING=1``
on shutdown. ``$NOTIFY_SOCKET`` is a filesystem path or, starting with ``@``, an abstract socket
name. Without it (not under systemd) every call is a no-op, so the same code runs anywhere.
A failed send is logged, never raised: the service keeps working if the notify socket is gone.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

from sync.foundation.logs import get_logger

log = get_logger("icsync.notify")


def socket_address(raw: str) -> str | bytes:
    """The AF_UNIX address for a ``$NOTIFY_SOCKET`` value (``@name`` is abstract: ``\\0name``)."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), or None when not asked for.

    ``WATCHDOG_PID``, when set, must be this process: the pings are for the service's main PID.
    """
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


def message(**fields: str) -> bytes:
    """A notify datagram: one ``KEY=value`` a line (newlines in values become spaces)."""
    lines = (f"{k.upper()}={' '.join(str(v).splitlines())}" for k, v in fields.items())
    return "\n".join(lines).encode()


class Notifier:
    """Talks to systemd's notify socket; silent when there is none."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = socket_address(raw) if raw else None
        self.watchdog_seconds = watchdog_interval(env)
        self.sent = 0

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to talk to."""
        return self.address is not None

    def notify(self, **fields: str) -> bool:
        """Send one datagram of ``KEY=value`` fields; True when it was sent."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message(**fields), self.address)
        except OSError as exc:
            log.warning("notify_failed", error=exc.strerror or str(exc),
                        fields=sorted(fields))
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "serving") -> bool:
        """Tell systemd start-up is complete."""
        return self.notify(ready="1", status=status, mainpid=str(os.getpid()))

    def status(self, text: str) -> bool:
        """Show ``text`` in ``systemctl status``."""
        return self.notify(status=text)

    def watchdog(self) -> bool:
        """Keep-alive ping."""
        return self.notify(watchdog="1")

    def stopping(self, status: str = "stopping") -> bool:
        """Tell systemd shutdown has begun."""
        return self.notify(stopping="1", status=status)

    async def watchdog_loop(self) -> None:
        """Ping at half the watchdog interval until cancelled (a stuck loop stops the pings)."""
        if self.watchdog_seconds is None or not self.enabled:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(self.watchdog_seconds)
