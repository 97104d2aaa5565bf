"""Alert channels: apprise URLs (``mailto://``, ``json://``, ``slack://``, ``msteams://`` ...).

One :class:`Channel` per configured URL, each with a stable id (a digest of its URL, never the
URL) so the outbox can remember which channels already took a message. Sending is blocking
(apprise speaks SMTP and HTTP itself) and is done off the event loop, bounded by a timeout.
What apprise logs about a failure is captured, masked, and carried by :class:`AlertNotSent`;
nothing of apprise's own reaches the process's output.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from sync.foundation.errors import AlertNotSent, ConfigError
from sync.foundation.secrets import REDACTOR, Secret

_APPRISE_LOG = logging.getLogger("apprise")
_APPRISE_LOG.addHandler(logging.NullHandler())
_APPRISE_LOG.propagate = False


def _apprise() -> ModuleType:
    """apprise, imported on first use: it takes most of a second, paid only with channels."""
    import apprise

    return apprise


@dataclass(frozen=True)
class Channel:
    """One destination: ``name`` is safe to show (apprise's privacy form, masked again)."""

    id: str
    name: str
    url: Secret

    def send(self, title: str, body: str, *, timeout: float) -> None:
        """Deliver one message; AlertNotSent with the (masked) reason when it was not taken."""
        apprise = _apprise()
        target = apprise.Apprise()
        target.add(self.url.reveal())
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = target.notify(body=REDACTOR(body), title=REDACTOR(title), timeout=timeout)
        if not ok:
            reason = " ".join(str(captured.getvalue()).split())[-500:] or "no reason given"
            raise AlertNotSent(f"{self.name}: not delivered: {REDACTOR(reason)}")


def channel_id(url: str) -> str:
    """A short stable id for a channel URL (it reveals nothing of the URL)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def build_channels(urls: Sequence[Secret]) -> list[Channel]:
    """A channel per URL; ConfigError naming the line when apprise does not know a URL."""
    channels: list[Channel] = []
    for n, url in enumerate(urls, 1):
        plugin = _apprise().Apprise.instantiate(url.reveal())
        if not plugin:
            raise ConfigError(f"line {n} of {url.origin} is not an alert URL apprise knows "
                              "(see apprise's list of services)", key="alerts.urls_file")
        shown = str(plugin.url(privacy=True))
        name = REDACTOR(shown.split("?")[0])
        channels.append(Channel(channel_id(url.reveal()), f"channel {n} ({name})", url))
    return channels
