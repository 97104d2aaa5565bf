"""S20: the webhook receiver under bad tokens and malformed bodies, over real loopback HTTP.

Wrong, empty, missing, repeated, non-ASCII, oversized (513 bytes and 1 MB) and padded tokens get
401 (or a 4xx from the HTTP layer itself, for a header too big to parse); malformed, oversized,
streamed-oversized and shape-less bodies get 400. Never a 5xx, nothing reaches the ERP or the
ledger, and neither the accepted token nor the presented ones appear in any log line.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sync.state.store import StateStore
from sync.transactions.webhook import token_problem
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID
from tests.transactions.world import WEBHOOK_TOKEN, TxWorld, WebhookServer, captured_logs

HEADER = "x-compleat-secret-token"
LIMIT = 200_000  # [webhook] max_body_bytes in the test configuration
BAD_TOKENS: dict[str, bytes] = {
    "wrong": b"whk-canary-0000000000000000",
    "empty": b"",
    "non-ascii": WEBHOOK_TOKEN.encode()[:-1] + "é".encode(),
    "latin-1": WEBHOOK_TOKEN.encode() + b"\xe9",
    "oversized": WEBHOOK_TOKEN.encode() + b"x" * 600,
    "prefix-padded": b"0" + WEBHOOK_TOKEN.encode(),
    "suffix-padded": WEBHOOK_TOKEN.encode() + b"=",
    "inner-space": WEBHOOK_TOKEN.encode() + b" x",
    "truncated": WEBHOOK_TOKEN.encode()[:-1],
    "other-case": WEBHOOK_TOKEN.upper().encode(),
    "api-key-instead": CANARY_KEY.encode(),
}


@pytest.fixture
def world(sandbox: Any, tmp_path: Path) -> TxWorld:
    """The sandbox, a SQLite ERP and a state DB, with the config between them."""
    return TxWorld(sandbox, tmp_path)


@dataclass
class Hook:
    """A running receiver, one approved transaction (id and detail) and the captured log."""

    server: WebhookServer
    tx_id: str
    body: dict[str, Any]
    logs: io.StringIO

    def endpoint(self) -> str:
        """The invoices endpoint."""
        return self.server.endpoint()


@pytest.fixture
def hook(world: TxWorld) -> Iterator[Hook]:
    """A receiver on loopback with every log line captured."""
    tx_id = world.approved(1)[0]
    body = dict(world.state.transaction(TENANT_ID, tx_id))
    with captured_logs() as logs, WebhookServer(world.write_config()) as server:
        yield Hook(server, tx_id, body, logs)


def raw(url: str, head: bytes, body: bytes = b"") -> int:
    """Send one hand-made HTTP/1.1 request; the status code (0 if the server hung up)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as conn:
        conn.sendall(head + b"\r\n" + body)
        first = conn.makefile("rb").readline()
    return int(first.split()[1]) if first.startswith(b"HTTP/") else 0


def request_head(url: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers (each ending in CRLF) of a POST to ``url``."""
    parts = urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1".encode(), f"Host: {parts.netloc}".encode(),
             b"Content-Type: application/json", b"Connection: close",
             *(name + b": " + value for name, value in headers)]
    return b"".join(line + b"\r\n" for line in lines)


def assert_nothing_posted(world: TxWorld) -> None:
    """No ERP entry, no ledger row, no journal number in iCompleat."""
    assert world.erp_entries() == {}
    assert set(world.remote_journals().values()) == {None}
    with StateStore.open(f"sqlite:///{world.state_path}") as store:
        assert store.ledger_rows(COMPANY_ID) == []


def assert_no_secret_logged(hook: Hook, presented: list[bytes]) -> None:
    """Neither the accepted token, the API key, nor any presented token is in the log."""
    logs = hook.logs.getvalue()
    for secret in [WEBHOOK_TOKEN.encode(), CANARY_KEY.encode(), *presented]:
        if len(secret) >= 8:
            assert secret.decode("utf-8", "replace") not in logs
            assert secret.decode("latin-1") not in logs


def test_s20_bad_tokens_are_401(world: TxWorld, hook: Hook) -> None:
    """Every bad token header is 401 with a reason that does not echo it; nothing posted."""
    server, payload = hook.server, json.dumps(hook.body).encode()
    statuses = {}
    for name, token in BAD_TOKENS.items():
        head = request_head(server.endpoint(), [(HEADER.encode(), token),
                                                (b"Content-Length", str(len(payload)).encode())])
        statuses[name] = raw(server.endpoint(), head, payload)
    missing = httpx.post(server.endpoint(), content=payload)
    repeated = raw(server.endpoint(), request_head(server.endpoint(), [
        (HEADER.encode(), WEBHOOK_TOKEN.encode()), (HEADER.encode(), WEBHOOK_TOKEN.encode()),
        (b"Content-Length", str(len(payload)).encode())]), payload)
    assert statuses == dict.fromkeys(BAD_TOKENS, 401)
    assert (missing.status_code, repeated) == (401, 401)
    assert "refused (missing)" in missing.json()["error"]
    assert_nothing_posted(world)
    # Every kind of refusal is logged; identical refusals are rate-limited to one line
    # (sync.foundation.logs).
    refused = [json.loads(line) for line in hook.logs.getvalue().splitlines()
               if "webhook_token_refused" in line]
    assert {r["problem"] for r in refused} == {
        token_problem([token], [WEBHOOK_TOKEN.encode()]) for token in BAD_TOKENS.values()
    } | {"missing", "repeated"}
    assert len(refused) <= len(BAD_TOKENS) + 2
    assert_no_secret_logged(hook, list(BAD_TOKENS.values()))


def test_s20_one_megabyte_token_never_a_5xx(world: TxWorld, hook: Hook) -> None:
    """A 1 MB token header is refused by the HTTP layer or by the check, never with a 5xx."""
    server, payload = hook.server, json.dumps(hook.body).encode()
    head = request_head(server.endpoint(), [(HEADER.encode(), b"A" * 1_000_000),
                                            (b"Content-Length", str(len(payload)).encode())])
    try:
        status = raw(server.endpoint(), head, payload)
    except (ConnectionResetError, BrokenPipeError):
        status = 0  # the server hung up on an unparseable request: also not a 5xx
    assert status == 0 or 400 <= status < 500
    assert_nothing_posted(world)


@pytest.mark.parametrize(("name", "content"), [
    ("not json", b"{Id: 1}"),
    ("empty", b""),
    ("invalid utf-8", b'{"Id": "\xff\xfe"}'),
    ("array", b"[]"),
    ("string", b'"hello"'),
    ("no id", b'{"Status": "APPR"}'),
    ("null id", b'{"Id": null}'),
    ("object id", b'{"Id": {"a": 1}}'),
    ("deep nesting", b"[" * 50_000 + b"]" * 50_000),
    ("truncated", b'{"Id": "abc", "Lines": ['),
    ("too big", b'{"Id": "' + b"x" * (LIMIT + 10) + b'"}'),
])
def test_s20_malformed_bodies_are_400(world: TxWorld, hook: Hook, name: str,
                                      content: bytes) -> None:
    """Each malformed or oversized body with a good token is a 400 naming the problem."""
    answer = httpx.post(hook.endpoint(), content=content, timeout=30,
                        headers={HEADER: WEBHOOK_TOKEN, "content-type": "application/json"})
    assert answer.status_code == 400, name
    assert answer.json()["error"]
    assert_nothing_posted(world)
    assert_no_secret_logged(hook, [])


def test_s20_streamed_body_over_the_limit_is_400(world: TxWorld, hook: Hook) -> None:
    """A chunked body without Content-Length is counted while streaming and cut at the limit."""

    def chunks() -> Iterator[bytes]:
        yield b'{"Id": "'
        for _ in range(50):
            yield b"y" * 10_000

    answer = httpx.post(hook.endpoint(), content=chunks(), timeout=30,
                        headers={HEADER: WEBHOOK_TOKEN})
    assert answer.status_code == 400
    assert "larger than" in answer.json()["error"]
    assert_nothing_posted(world)


@pytest.mark.parametrize("length", [b"abc", b"-5", str(LIMIT * 10).encode()])
def test_s20_bad_or_huge_content_length_is_400(world: TxWorld, hook: Hook,
                                               length: bytes) -> None:
    """A Content-Length that is not a number, or over the limit, is refused before reading."""
    head = request_head(hook.endpoint(), [(HEADER.encode(), WEBHOOK_TOKEN.encode()),
                                          (b"Content-Length", length)])
    status = raw(hook.endpoint(), head, b"{}")
    assert 400 <= status < 500
    assert_nothing_posted(world)


def test_s20_good_token_after_all_that_still_posts(world: TxWorld, hook: Hook) -> None:
    """The receiver is unharmed by bad input: the genuine push is answered with its number."""
    for token in BAD_TOKENS.values():
        raw(hook.endpoint(), request_head(hook.endpoint(), [
            (HEADER.encode(), token), (b"Content-Length", b"2")]), b"{}")
    answer = httpx.post(hook.endpoint(), json=hook.body, headers={HEADER: WEBHOOK_TOKEN},
                        timeout=30)
    assert answer.status_code == 200
    assert world.erp_entries() == {hook.tx_id: [answer.json()["JournalNumber"]]}
    assert_no_secret_logged(hook, list(BAD_TOKENS.values()))
