"""Pushes as the live service may send them: wrapped or bare, receipts, a Bearer-style header."""

from __future__ import annotations

import json
from typing import Any

import httpx

from sync.foundation.config import Config, load_config
from sync.transactions.webhook import strip_prefix, unwrap
from tests.fixtures.sandbox import TENANT_ID
from tests.transactions.world import WEBHOOK_TOKEN, TxWorld, WebhookServer, captured_logs

HEADERS = {"x-compleat-secret-token": WEBHOOK_TOKEN}


def push(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST ``body`` (JSON) to a webhook endpoint."""
    return httpx.post(url, content=json.dumps(body).encode(), timeout=30,
                      headers={"content-type": "application/json", **(headers or HEADERS)})


def _with_header(world: TxWorld, header: str, prefix: str) -> Config:
    world.write_config()
    text = world.config_path.read_text(encoding="utf-8").replace(
        "refetch = ", f'header = "{header}"\ntoken_prefix = "{prefix}"\nrefetch = ', 1)
    world.config_path.write_text(text, encoding="utf-8")
    return load_config(world.config_path)


def test_wrapped_and_bare_pushes_get_the_same_journal_number(world: TxWorld) -> None:
    """`{"Transaction": {...}}` and the bare detail are one transaction, posted once."""
    config = world.write_config()
    tx_id = world.approved(1)[0]
    detail = world.state.transaction(TENANT_ID, tx_id)
    with WebhookServer(config) as hook:
        wrapped = push(hook.endpoint(), {"Transaction": detail})
        bare = push(hook.endpoint(), detail)
        lower = push(hook.endpoint(), {"transaction": detail})
    assert (wrapped.status_code, bare.status_code, lower.status_code) == (200, 200, 200)
    assert wrapped.json() == bare.json() == lower.json()
    assert len(world.erp_entries()[tx_id]) == 1


def test_a_receipt_push_is_answered_200_and_logged(world: TxWorld) -> None:
    """A receipt is never a 404: 200, and a log line naming it and its order."""
    config = world.write_config()
    receipt = {"Receipt": {"Id": "rcpt-1", "References": {"PurchaseOrder": "PO-00042"}}}
    with captured_logs() as logs, WebhookServer(config) as hook:
        answer = push(hook.endpoint("receipts"), receipt)
        refused = push(hook.endpoint("receipts"), receipt, {"x-compleat-secret-token": "nope"})
    assert answer.status_code == 200
    assert answer.json()["Posted"] is False
    assert refused.status_code == 401
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    seen = [e for e in lines if e.get("event") == "webhook_receipt_not_posted"]
    assert [(e["receipt_id"], e["order"]) for e in seen] == [("rcpt-1", "PO-00042")]
    assert world.erp_entries() == {}


def test_a_receipt_with_an_unusable_id_is_a_400(world: TxWorld) -> None:
    """A receipt Id that is not short printable text is refused with 400, never a 5xx."""
    config = world.write_config()
    with WebhookServer(config) as hook:
        long = push(hook.endpoint("receipts"), {"Receipt": {"Id": "r" * 101}})
        control = push(hook.endpoint("receipts"), {"Id": "rcpt\n2"})
        number = push(hook.endpoint("receipts"), {"Id": 7})
    assert (long.status_code, control.status_code, number.status_code) == (400, 400, 400)
    assert world.erp_entries() == {}


def test_header_name_and_value_prefix_are_configurable(world: TxWorld) -> None:
    """With `authorization` and `Bearer `, only `Bearer <token>` in that header is accepted."""
    config = _with_header(world, "authorization", "Bearer ")
    tx_id = world.approved(1)[0]
    detail = world.state.transaction(TENANT_ID, tx_id)
    with WebhookServer(config) as hook:
        bare = push(hook.endpoint(), detail, {"authorization": WEBHOOK_TOKEN})
        old = push(hook.endpoint(), detail, HEADERS)
        good = push(hook.endpoint(), detail, {"authorization": f"bearer {WEBHOOK_TOKEN}"})
    assert (bare.status_code, old.status_code, good.status_code) == (401, 401, 200)
    world.record_journal(tx_id, good.json()["JournalNumber"])
    world.check_exactly_once()


def test_prefix_and_unwrap_rules() -> None:
    """A value without the prefix never matches; only a single-key wrapper is unwrapped."""
    assert strip_prefix([b"Bearer abc"], "Bearer ") == [b"abc"]
    assert strip_prefix([b"abc"], "Bearer ") != [b"abc"]
    assert strip_prefix([b"abc"], "") == [b"abc"]
    assert unwrap({"Transaction": {"Id": "x"}}) == {"Id": "x"}
    both = {"Id": "y", "Transaction": {"Id": "x"}}
    assert unwrap(both) == both
    assert unwrap({"Other": {"Id": "x"}}) == {"Other": {"Id": "x"}}
