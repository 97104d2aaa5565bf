"""The webhook receiver over real loopback HTTP, fed by the sandbox's own push and by httpx."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx
import pytest

from sync.foundation.errors import ExitCode
from sync.runtime.context import open_runtime
from sync.transactions.poll import poll_company
from sync.transactions.rules import POSTED, QUARANTINED, RESOLVED_PREFIX, WRITTEN_BACK
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.transactions.world import WEBHOOK_TOKEN, TxWorld, WebhookServer, tx_body

HEADERS = {"x-compleat-secret-token": WEBHOOK_TOKEN}


def push(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST ``body`` (JSON) to a webhook endpoint."""
    return httpx.post(url, content=json.dumps(body).encode(), timeout=30,
                      headers={"content-type": "application/json", **(headers or HEADERS)})


def detail(world: TxWorld, tx_id: str) -> dict[str, Any]:
    """The transaction as the sandbox would push it."""
    return dict(world.state.transaction(TENANT_ID, tx_id))


def test_sandbox_push_is_answered_with_the_erp_journal_number(world: TxWorld) -> None:
    """Approving pushes the transaction; the answer's number is what iCompleat records."""
    config = world.write_config()
    with WebhookServer(config) as hook:
        world.state.set_webhook(TENANT_ID, hook.endpoint(), WEBHOOK_TOKEN)
        ids = world.approved(3)
        assert world.sandbox.wait_for_pushes(20)
    journals = world.check_exactly_once()
    assert set(journals) == set(ids)
    assert world.state.posting_failures(TENANT_ID) == []
    answered = {d.transaction_id: d.journal_number for d in world.sandbox.pusher.deliveries}
    assert answered == journals


async def test_poll_after_a_push_confirms_without_writing(world: TxWorld) -> None:
    """A transaction posted through the webhook is closed by the next poll with zero writes."""
    config = world.write_config()
    with WebhookServer(config) as hook:
        tx_id = world.approved(1)[0]
        answer = push(hook.endpoint(), detail(world, tx_id))
    assert answer.status_code == 200
    world.record_journal(tx_id, answer.json()["JournalNumber"])  # as iCompleat does on a 200
    async with open_runtime(config) as rt:
        assert rt.store.ledger_get(COMPANY_ID, tx_id).status == POSTED  # type: ignore[union-attr]
        writes = world.state.log.count(route="transaction.edit")
        result = await poll_company(rt, config.settings.companies[0])
        assert rt.store.ledger_get(COMPANY_ID, tx_id).status == WRITTEN_BACK  # type: ignore[union-attr]
    assert (result.created, result.exit_code) == (0, ExitCode.OK)
    assert world.state.log.count(route="transaction.edit") == writes
    world.check_exactly_once()


def test_refetch_ignores_a_forged_body(world: TxWorld) -> None:
    """The body is a hint: the ERP entry is built from what the API says, not from the push."""
    config = world.write_config()
    tx_id = world.approved(1)[0]
    forged = {**detail(world, tx_id), "Title": "forged", "Gross": 1_000_000}
    with WebhookServer(config) as hook:
        assert push(hook.endpoint(), forged).status_code == 200
    with sqlite3.connect(world.erp_path) as db:
        title, gross = db.execute("SELECT title, gross_base FROM icsync_transactions").fetchone()
    assert (title, float(gross)) == ("INV 1", 121.2)


@pytest.mark.parametrize(("mutate", "status", "words"), [
    (lambda b: {**b, "Id": "0b7e6f5c-1d2e-4f3a-9b8c-7d6e5f4a3b2c"}, 404, "no transaction"),
    (lambda b: {**b, "Id": "no-such-transaction"}, 400, "not a GUID"),
    (lambda b: b, 409, "not APPR"),
])
def test_unknown_or_unapproved_transactions_are_refused(
        world: TxWorld, mutate: Any, status: int, words: str) -> None:
    """An id iCompleat does not know is 404; a transaction not approved is 409; nothing posted."""
    config = world.write_config()
    tx_id = world.create()
    with WebhookServer(config) as hook:
        answer = push(hook.endpoint(), mutate(detail(world, tx_id)))
    assert answer.status_code == status
    assert words in answer.json()["error"]
    assert world.erp_entries() == {}


def test_company_not_configured_is_404(world: TxWorld) -> None:
    """A transaction of a company this receiver does not serve is refused, naming the id."""
    config = world.write_config(refetch=False)
    body = {**tx_body(1), "Id": "0b7e6f5c-1d2e-4f3a-9b8c-7d6e5f4a3b2d", "Status": "APPR",
            "Company": {"Id": "not-ours"}}
    with WebhookServer(config) as hook:
        answer = push(hook.endpoint(), body)
    assert answer.status_code == 404
    assert "not-ours" in answer.json()["error"]


def test_without_refetch_the_body_is_posted(world: TxWorld) -> None:
    """With refetch = false the pushed detail itself is posted (one API call fewer)."""
    config = world.write_config(refetch=False)
    tx_id = world.approved(1)[0]
    with WebhookServer(config) as hook:
        answer = push(hook.endpoint(), detail(world, tx_id))
    assert answer.status_code == 200
    assert world.state.log.count(route="transaction.detail") == 0
    assert world.erp_entries() == {tx_id: [answer.json()["JournalNumber"]]}


def test_erp_refusal_is_422_and_quarantined(world: TxWorld) -> None:
    """The ERP refusing the document answers 422 with the reason; iCompleat keeps it."""
    config = world.write_config(supplier_check=True)
    tx_id = world.approved(1, supplier="SUP-404")[0]
    with WebhookServer(config) as hook:
        answer = push(hook.endpoint(), detail(world, tx_id))
        assert hook.runtime is not None
        row = hook.runtime.store.ledger_get(COMPANY_ID, tx_id)
    assert answer.status_code == 422
    assert "SUP-404" in answer.json()["error"]
    assert row is not None
    assert row.status == QUARANTINED
    assert world.erp_entries() == {}


def test_unknown_endpoint_and_wrong_method(world: TxWorld) -> None:
    """Only the four endpoints answer, and only to POST."""
    config = world.write_config()
    with WebhookServer(config) as hook:
        assert push(hook.endpoint("statements"), {"Id": "x"}).status_code == 404
        assert httpx.get(hook.endpoint(), headers=HEADERS).status_code == 405


def test_push_retries_a_refused_invoice_at_once_unless_resolved(world: TxWorld) -> None:
    """iCompleat's "Retry posting" after the ERP was fixed posts at once; a transaction an
    operator resolved by hand is never posted by a push."""
    config = world.write_config(supplier_check=True)
    fixed, resolved = world.approved(2, supplier="SUP-404")
    with WebhookServer(config) as hook:
        assert [push(hook.endpoint(), detail(world, t)).status_code
                for t in (fixed, resolved)] == [422, 422]
        assert hook.runtime is not None
        hook.runtime.store.ledger_transition(
            COMPANY_ID, resolved, expect=[QUARANTINED], to=QUARANTINED, next_attempt_at=None,
            last_error=f"{RESOLVED_PREFIX} on 2025-03-02; was: unknown supplier")
        with sqlite3.connect(world.erp_path) as db:
            db.execute("INSERT INTO suppliers VALUES ('SUP-404')")
        again = push(hook.endpoint(), detail(world, fixed))
        refused = push(hook.endpoint(), detail(world, resolved))
    assert again.status_code == 200
    assert refused.status_code == 422
    assert RESOLVED_PREFIX in refused.json()["error"]
    assert world.erp_entries() == {fixed: [again.json()["JournalNumber"]]}
