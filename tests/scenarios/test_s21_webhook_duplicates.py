"""S21: the same approved invoice pushed 5 times in a row, 5 times at once, a day later, and while
the poller takes it: exactly one ERP entry, and every answer carries the same journal number.

The pushes come from the sandbox's own pusher (its duplicate and concurrent delivery switches)
and from httpx, to a receiver served by uvicorn on loopback with its own runtime, as the daemon
serves it; the poller runs on another runtime against the same state DB and SQLite ERP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from sync.foundation.errors import ExitCode
from sync.runtime.context import open_runtime
from sync.state.store import StateStore
from sync.transactions.poll import poll_company
from sync.transactions.rules import POSTING
from sync.transactions.webhook import create_webhook_routes
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.transactions.world import WEBHOOK_TOKEN, TxWorld, WebhookServer

HEADERS = {"x-compleat-secret-token": WEBHOOK_TOKEN}


@pytest.fixture
def world(sandbox: Any, tmp_path: Path) -> TxWorld:
    """The sandbox, a SQLite ERP and a state DB, with the config between them."""
    return TxWorld(sandbox, tmp_path)


@pytest.fixture
def hook(world: TxWorld) -> Iterator[WebhookServer]:
    """A receiver the sandbox pushes approved invoices to."""
    with WebhookServer(world.write_config()) as server:
        world.state.set_webhook(TENANT_ID, server.endpoint(), WEBHOOK_TOKEN)
        yield server


def push(world: TxWorld, hook: WebhookServer, tx_id: str) -> httpx.Response:
    """Push the transaction's detail as iCompleat would."""
    body = dict(world.state.transaction(TENANT_ID, tx_id))
    return httpx.post(hook.endpoint(), json=body, headers=HEADERS, timeout=30)


def answers(world: TxWorld, tx_id: str) -> list[str | None]:
    """The journal number of every delivery of ``tx_id`` the sandbox made."""
    return [d.journal_number for d in world.sandbox.pusher.deliveries
            if d.transaction_id == tx_id]


@pytest.mark.parametrize(("duplicates", "concurrency"), [(5, 1), (1, 5), (2, 5)],
                         ids=["5-in-a-row", "5-at-once", "2-rounds-of-5"])
def test_s21_repeated_and_concurrent_pushes(world: TxWorld, hook: WebhookServer,
                                            duplicates: int, concurrency: int) -> None:
    """However the sandbox repeats the push, one entry and the same number in every answer."""
    world.sandbox.pusher.duplicates, world.sandbox.pusher.concurrency = duplicates, concurrency
    tx_id = world.approved(1)[0]
    assert world.sandbox.wait_for_pushes(30)
    journals = world.check_exactly_once()
    assert answers(world, tx_id) == [journals[tx_id]] * (duplicates * concurrency)
    assert world.state.posting_failures(TENANT_ID) == []


def test_s21_several_invoices_at_once_each_get_their_own_number(
        world: TxWorld, hook: WebhookServer) -> None:
    """Five invoices pushed five times at once: five entries, five numbers, all consistent."""
    world.sandbox.pusher.concurrency = 5
    ids = world.approved(5)
    assert world.sandbox.wait_for_pushes(60)
    journals = world.check_exactly_once()
    assert len(set(journals.values())) == 5
    for tx_id in ids:
        assert answers(world, tx_id) == [journals[tx_id]] * 5


async def test_s21_a_push_a_day_later_after_a_restart(world: TxWorld) -> None:
    """After the poller closed the row and the receiver restarted, a late push gets the same
    number and makes nothing new."""
    config = world.write_config()
    with WebhookServer(config) as first:
        world.state.set_webhook(TENANT_ID, first.endpoint(), WEBHOOK_TOKEN)
        tx_id = world.approved(1)[0]
        assert world.sandbox.wait_for_pushes(30)
    async with open_runtime(config) as rt:
        result = await poll_company(rt, config.settings.companies[0])
    assert (result.created, result.exit_code) == (0, ExitCode.OK)
    journal = world.check_exactly_once()[tx_id]
    with WebhookServer(config) as later:
        answer = await asyncio.to_thread(push, world, later, tx_id)
    assert answer.status_code == 200
    assert answer.json() == {"JournalNumber": journal}
    assert world.check_exactly_once() == {tx_id: journal}


async def test_s21_push_while_the_poller_holds_it(world: TxWorld, hook: WebhookServer) -> None:
    """The poller has moved the invoice to posting and the ERP is slow; a push arrives, waits for
    the poller's journal number, and answers with it."""
    world.state.set_webhook(TENANT_ID, "http://127.0.0.1:9/unused", WEBHOOK_TOKEN)
    tx_id = world.approved(1)[0]
    world.sandbox.wait_for_pushes(10)
    world.state.posting_failures(TENANT_ID)  # the unused endpoint failed; nothing was posted
    config = world.write_config()
    erp = sqlite3.connect(world.erp_path, isolation_level=None)
    erp.execute("CREATE TABLE IF NOT EXISTS busy (x)")
    erp.execute("BEGIN IMMEDIATE")  # the ERP is busy: the poller's posting waits on its lock
    try:
        async with open_runtime(config) as rt:
            poller = asyncio.create_task(poll_company(rt, config.settings.companies[0]))
            await wait_for_status(world, tx_id, POSTING)
            pushed = asyncio.create_task(asyncio.to_thread(push, world, hook, tx_id))
            await asyncio.sleep(0.5)
            assert not pushed.done()  # the receiver is waiting for the poller's number
            erp.execute("COMMIT")
            result, answer = await poller, await pushed
    finally:
        erp.close()
    journals = world.check_exactly_once()
    assert answer.status_code == 200
    assert answer.json() == {"JournalNumber": journals[tx_id]}
    assert (result.created, result.exit_code) == (1, ExitCode.OK)


async def test_s21_pushes_racing_the_poller(world: TxWorld, hook: WebhookServer) -> None:
    """Ten invoices pushed twice each while a poll runs on another runtime: one entry each."""
    world.state.set_webhook(TENANT_ID, "http://127.0.0.1:9/unused", WEBHOOK_TOKEN)
    ids = world.approved(10)
    world.sandbox.wait_for_pushes(10)
    config = world.write_config()
    async with open_runtime(config) as rt:
        poller = asyncio.create_task(poll_company(rt, config.settings.companies[0]))
        pushes = [asyncio.to_thread(push, world, hook, tx_id) for tx_id in ids * 2]
        replies = await asyncio.gather(*pushes)
        result = await poller
    journals = world.check_exactly_once()
    assert result.exit_code == ExitCode.OK
    assert sorted(journals) == sorted(ids)
    by_id: dict[str, set[str]] = {}
    for tx_id, reply in zip(ids * 2, replies, strict=True):
        assert reply.status_code == 200
        by_id.setdefault(tx_id, set()).add(reply.json()["JournalNumber"])
    assert by_id == {tx_id: {journals[tx_id]} for tx_id in ids}


async def wait_for_status(world: TxWorld, tx_id: str, status: str) -> None:
    """Wait (at most 20 s) until the ledger row of ``tx_id`` has ``status``."""
    with StateStore.open(f"sqlite:///{world.state_path}") as store:
        async with asyncio.timeout(20):
            while True:
                row = await asyncio.to_thread(store.ledger_get, COMPANY_ID, tx_id)
                if row is not None and row.status == status:
                    return
                await asyncio.sleep(0.02)


async def test_s21_push_while_the_poller_holds_it_in_one_daemon(world: TxWorld) -> None:
    """As in the daemon: poller and receiver share one runtime and loop; the push waits on the
    poller's hold of the transaction and answers with its journal number."""
    world.state.set_webhook(TENANT_ID, "http://127.0.0.1:9/unused", WEBHOOK_TOKEN)
    tx_id = world.approved(1)[0]
    world.sandbox.wait_for_pushes(10)
    config = world.write_config()
    erp = sqlite3.connect(world.erp_path, isolation_level=None)
    erp.execute("CREATE TABLE IF NOT EXISTS busy (x)")
    erp.execute("BEGIN IMMEDIATE")
    try:
        async with open_runtime(config) as rt, served(create_webhook_routes(rt)) as url:
            poller = asyncio.create_task(poll_company(rt, config.settings.companies[0]))
            await wait_for_status(world, tx_id, POSTING)
            body = dict(world.state.transaction(TENANT_ID, tx_id))
            async with httpx.AsyncClient(timeout=30) as client:
                pushed = asyncio.create_task(client.post(
                    f"{url}/webhooks/icompleat/invoices", json=body, headers=HEADERS))
                await asyncio.sleep(0.5)
                assert not pushed.done()
                erp.execute("COMMIT")
                result, answer = await poller, await pushed
    finally:
        erp.close()
    journals = world.check_exactly_once()
    assert answer.status_code == 200
    assert answer.json() == {"JournalNumber": journals[tx_id]}
    assert result.exit_code == ExitCode.OK


@contextlib.asynccontextmanager
async def served(routes: list[Any]) -> AsyncIterator[str]:
    """Serve ``routes`` with uvicorn in THIS event loop (as the daemon does); the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), log_config=None,
                                           log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(1000):  # up to 10 s for uvicorn to start listening
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
