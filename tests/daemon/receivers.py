"""Real local alert receivers: an SMTP server (aiosmtpd) and an HTTP endpoint, on loopback.

Both keep every message they took as ``(title, body)``; the HTTP one can be told to answer 500
to the next N requests, to prove that a failed send is retried and not repeated elsewhere.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.daemon.world import free_port

HTTP_USER, HTTP_PASSWORD = "alerts", "icsync-canary-alert-pass-5e1b7c"


@dataclass
class Inbox:
    """Messages taken by one receiver."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, title: str, body: str) -> None:
        with self.lock:
            self.messages.append((title, body))

    def titles(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.messages]

    def starts(self, needle: str) -> list[str]:
        """Start (and digest) titles containing ``needle``."""
        return [t for t in self.titles() if needle in t and "cleared:" not in t]

    def clears(self, needle: str) -> list[str]:
        """Clear titles containing ``needle``."""
        return [t for t in self.titles() if needle in t and "cleared:" in t]


class _Smtp:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        self.inbox.add(str(msg["Subject"]), part.get_content() if part else "")
        return "250 OK"


class HttpReceiver:
    """A JSON webhook receiver (apprise's ``json://``) on loopback."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.fail_next = 0
        self.delay = 0.0
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length)
                receiver.requests += 1
                time.sleep(receiver.delay)
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                doc = json.loads(data)
                receiver.inbox.add(doc.get("title", ""), doc.get("message", ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self) -> str:
        return f"json://{HTTP_USER}:{HTTP_PASSWORD}@127.0.0.1:{self.port}/hooks/icsync"


@dataclass
class Receivers:
    """Both receivers and the urls file naming them."""

    smtp: Inbox
    http: HttpReceiver
    smtp_port: int
    urls_file: Path

    def inboxes(self) -> list[Inbox]:
        return [self.smtp, self.http.inbox]

    def wait(self, predicate: Any, seconds: float = 20, what: str = "alerts") -> None:
        """Block until ``predicate(inbox)`` holds for both inboxes."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(predicate(i) for i in self.inboxes()):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: smtp {self.smtp.titles()}, "
                             f"http {self.http.inbox.titles()}")

    def all_text(self) -> str:
        return "\n".join(f"{t}\n{b}" for i in self.inboxes() for t, b in i.messages)


def smtp_url(port: int) -> str:
    """An apprise URL for the loopback SMTP server (plain SMTP, no login)."""
    return (f"mailto://127.0.0.1:{port}?from=icsync@example.com&to=ops@example.com"
            "&mode=insecure")


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    """An SMTP and an HTTP receiver on loopback, and a urls file with both."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(_Smtp(inbox), hostname="127.0.0.1", port=port)
    controller.start()
    http = HttpReceiver()
    http.thread.start()
    urls = tmp_path / "alert-urls"
    urls.write_text(f"# operators\n{smtp_url(port)}\n{http.url()}\n", encoding="utf-8")
    try:
        yield Receivers(inbox, http, port, urls)
    finally:
        http.server.shutdown()
        http.server.server_close()
        controller.stop()
