"""No API call writes journal numbers: posted exactly once, the number carried by the webhook."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sync.runtime.context import open_runtime
from sync.transactions.poll import poll_company
from sync.transactions.rules import WRITTEN_BACK
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.transactions.world import WEBHOOK_TOKEN, TxWorld, WebhookServer

HEADERS = {"x-compleat-secret-token": WEBHOOK_TOKEN}


async def _poll(world: TxWorld, config: Any) -> dict[str, Any]:
    async with open_runtime(config) as rt:
        await poll_company(rt, config.settings.companies[0])
        rows = {r.transaction_id: r for r in rt.store.ledger_rows(COMPANY_ID)}
        caps = {c.operation: c for c in rt.store.capabilities(TENANT_ID)}
    return {"rows": rows, "caps": caps}


@pytest.mark.parametrize("status", [404, 405])
async def test_unsupported_write_back_posts_once_and_the_webhook_carries_it(
        world: TxWorld, status: int) -> None:
    """The poller posts, learns the write is missing, and the push's answer delivers the number."""
    config = world.write_config()
    world.state.contract.set_unsupported("transaction.journal", status)
    early = world.approved(2)
    first = await _poll(world, config)
    assert {first["rows"][t].status for t in early} == {WRITTEN_BACK}
    assert {first["rows"][t].journal_channel for t in early} == {"webhook"}
    assert first["caps"]["transaction.journal"].status == status
    edits = world.state.log.count(route="transaction.edit")
    assert 1 <= edits <= 2  # refused once per transaction in flight, then remembered
    details = world.state.log.count(route="transaction.detail")
    await _poll(world, config)  # a second pass: nothing posted twice, no write tried again
    assert world.state.log.count(route="transaction.edit") == edits
    assert world.state.log.count(route="transaction.detail") == details  # nothing re-read
    with WebhookServer(config) as hook:
        for tx_id in early:  # iCompleat pushes them (its retry of a posting)
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.post(hook.endpoint(), headers=HEADERS,
                                         json=world.state.transaction(TENANT_ID, tx_id))
            assert answer.status_code == 200
            world.record_journal(tx_id, answer.json()["JournalNumber"])
        world.state.set_webhook(TENANT_ID, hook.endpoint(), WEBHOOK_TOKEN)
        late = world.approved(2)
        assert world.sandbox.wait_for_pushes(20)
    last = await _poll(world, config)
    journals = world.check_exactly_once()
    assert set(journals) == {*early, *late}
    assert {last["rows"][t].journal_channel for t in late} == {"webhook"}
    assert world.state.log.count(route="transaction.edit") == edits
