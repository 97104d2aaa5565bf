"""The sandbox's push of approved transactions, the posting-failures tray and its retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.icompleat.routes import ROUTES
from connectors.icompleat.sandbox import BackgroundServer, SandboxServer
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID

TOKEN = "icsync-canary-webhook-token-5c1d"


class Receiver:
    """A scripted ERP webhook endpoint: records each call and answers per ``mode``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Answer with a journal number, at once, and forget past calls."""
        self.mode, self.delay = "ok", 0.0
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.inflight = self.max_inflight = 0
        self.generation = getattr(self, "generation", 0) + 1

    async def hook(self, request: Request) -> Response:
        """The endpoint (a call still running from an earlier test is not counted)."""
        body, generation = await request.json(), self.generation
        self.calls.append((dict(request.headers), body))
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.inflight -= generation == self.generation
        tx_id = body["Id"]
        if self.mode == "ok":
            return JSONResponse({"JournalNumber": f"J-{tx_id[:8]}"})
        if self.mode == "no-number":
            return JSONResponse({"Status": "queued"})
        return JSONResponse({"error": "ERP down"}, status_code=500)


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[Receiver, str]]:
    """One receiver served for the module."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    with BackgroundServer(app) as server:
        yield receiver, server.url + "/hook"


@pytest.fixture
def receiver(receiver_server: tuple[Receiver, str], sandbox: SandboxServer) -> Receiver:
    """The receiver, reset, configured as the sandbox's endpoint for every type."""
    hook, url = receiver_server
    hook.reset()
    sandbox.state.set_webhook(TENANT_ID, url, TOKEN)
    return hook


def new_tx(sandbox: SandboxServer, tx_type: str = "INV") -> str:
    """Create a transaction directly in the state; its id."""
    tx = sandbox.state.create_transaction(TENANT_ID, COMPANY_ID, {"Type": tx_type, "Title": "t"})
    return str(tx["Id"])


def approve(client: httpx.Client, tx_id: str) -> httpx.Response:
    """Approve through the API."""
    return client.put(ROUTES["transaction.edit"].render(tenantId=TENANT_ID, transactionId=tx_id),
                      json={"Status": "APPR"})


def journal(sandbox: SandboxServer, tx_id: str) -> str | None:
    """The journal number recorded against ``tx_id``."""
    posting = sandbox.state.transaction(TENANT_ID, tx_id).get("Posting")
    return posting["JournalNumber"] if posting else None


def test_approval_pushes_the_detail_with_the_token(sandbox: SandboxServer, receiver: Receiver,
                                                   sandbox_client: httpx.Client) -> None:
    """The unwrapped detail goes out with the token header; the answer's number is recorded."""
    tx_id = new_tx(sandbox)
    assert approve(sandbox_client, tx_id).status_code == 200
    assert sandbox.wait_for_pushes(5)
    [(headers, body)] = receiver.calls
    assert headers[ROUTES.headers["webhook_token"]] == TOKEN
    assert (body["Id"], body["Status"], "Transaction" in body) == (tx_id, "APPR", False)
    assert journal(sandbox, tx_id) == f"J-{tx_id[:8]}"
    assert sandbox.state.posting_failures() == []


def test_the_push_does_not_hold_up_the_approval(sandbox: SandboxServer, receiver: Receiver,
                                                sandbox_client: httpx.Client) -> None:
    """Approving answers while a slow endpoint is still working."""
    receiver.delay = 0.6
    started = time.monotonic()
    approve(sandbox_client, new_tx(sandbox))
    assert time.monotonic() - started < 0.4
    assert sandbox.wait_for_pushes(5)
    assert len(receiver.calls) == 1


@pytest.mark.parametrize(("mode", "reason"), [
    ("error", "HTTP 500"), ("no-number", "without a JournalNumber"), ("slow", "no answer")])
def test_failed_pushes_land_in_the_tray(sandbox: SandboxServer, receiver: Receiver,
                                        mode: str, reason: str) -> None:
    """A 500, a 200 without a number, or no answer in time is a posting failure."""
    receiver.mode = "ok" if mode == "slow" else mode
    if mode == "slow":
        receiver.delay, sandbox.pusher.timeout = 1.0, 0.2
    tx_id = new_tx(sandbox)
    sandbox.state.approve(TENANT_ID, tx_id)
    assert sandbox.wait_for_pushes(5)
    [failure] = sandbox.state.posting_failures()
    assert failure["TransactionId"] == tx_id
    assert reason in failure["Reason"]
    assert journal(sandbox, tx_id) is None


def test_no_endpoint_or_no_listener_is_a_posting_failure(sandbox: SandboxServer) -> None:
    """A type without an endpoint, or an endpoint nobody listens on, fails the posting."""
    sandbox.state.set_webhook(TENANT_ID, "http://127.0.0.1:9/hook", TOKEN, types=["INV"])
    order, invoice = new_tx(sandbox, "ORD"), new_tx(sandbox, "INV")
    sandbox.state.approve(TENANT_ID, order)
    sandbox.state.approve(TENANT_ID, invoice)
    assert sandbox.wait_for_pushes(5)
    reasons = {f["TransactionId"]: f["Reason"] for f in sandbox.state.posting_failures()}
    assert "no webhook endpoint" in reasons[order]
    assert "transport error" in reasons[invoice]


def test_retry_from_the_tray(sandbox: SandboxServer, receiver: Receiver) -> None:
    """A failed push counts attempts on retry; once the endpoint answers the tray empties."""
    receiver.mode = "error"
    tx_id = new_tx(sandbox)
    sandbox.state.approve(TENANT_ID, tx_id)
    assert sandbox.wait_for_pushes(5)
    [failure] = sandbox.state.posting_failures()
    assert not sandbox.pusher.retry(failure["Id"]).ok
    assert sandbox.state.posting_failures()[0]["Attempts"] == 2
    receiver.mode = "ok"
    delivery = sandbox.pusher.retry(failure["Id"])
    assert (delivery.ok, delivery.journal_number) == (True, f"J-{tx_id[:8]}")
    assert sandbox.state.posting_failures() == []
    assert journal(sandbox, tx_id) == delivery.journal_number


def test_a_journal_number_recorded_by_the_api_empties_the_tray(
        sandbox: SandboxServer, receiver: Receiver, sandbox_client: httpx.Client) -> None:
    """The poller writing the number back takes the transaction out of the tray."""
    receiver.mode = "error"
    tx_id = new_tx(sandbox)
    sandbox.state.approve(TENANT_ID, tx_id)
    assert sandbox.wait_for_pushes(5)
    assert len(sandbox.state.posting_failures()) == 1
    sandbox_client.put(ROUTES["transaction.edit"].render(tenantId=TENANT_ID,
                                                         transactionId=tx_id),
                       json={"JournalNumber": "J-POLL"})
    assert sandbox.state.posting_failures() == []


def test_duplicate_delivery_pushes_n_times_in_a_row(sandbox: SandboxServer,
                                                    receiver: Receiver) -> None:
    """duplicates=3 sends the same transaction three times, one after another."""
    sandbox.pusher.duplicates = 3
    receiver.delay = 0.05
    tx_id = new_tx(sandbox)
    sandbox.state.approve(TENANT_ID, tx_id)
    assert sandbox.wait_for_pushes(5)
    assert [body["Id"] for _, body in receiver.calls] == [tx_id] * 3
    assert receiver.max_inflight == 1
    assert [d.ok for d in sandbox.pusher.deliveries] == [True] * 3


def test_concurrent_delivery_pushes_n_at_once(sandbox: SandboxServer,
                                              receiver: Receiver) -> None:
    """concurrency=4 sends the same transaction four times at the same moment."""
    sandbox.pusher.concurrency = 4
    receiver.delay = 0.2
    tx_id = new_tx(sandbox)
    sandbox.state.approve(TENANT_ID, tx_id)
    assert sandbox.wait_for_pushes(5)
    assert len(receiver.calls) == 4
    assert receiver.max_inflight == 4
    assert journal(sandbox, tx_id) == f"J-{tx_id[:8]}"


def test_the_token_stays_out_of_reprs_and_the_tray(sandbox: SandboxServer,
                                                   receiver: Receiver) -> None:
    """Endpoints, deliveries and failures never show the token."""
    receiver.mode = "error"
    sandbox.state.approve(TENANT_ID, new_tx(sandbox))
    assert sandbox.wait_for_pushes(5)
    company = sandbox.state.company(TENANT_ID, COMPANY_ID)
    text = repr(company.webhooks) + repr(sandbox.pusher.deliveries) + repr(
        sandbox.state.posting_failures())
    assert TOKEN not in text
