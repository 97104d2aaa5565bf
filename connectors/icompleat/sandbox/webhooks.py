"""The push of approved transactions to their webhook endpoints, and the tray's retry.

On approval the transaction detail (not wrapped) is POSTed to the endpoint configured for its
type, with the token in the ``x-compleat-secret-token`` header (the routes table's name). An HTTP
200 carrying ``{"JournalNumber": "..."}`` records the posting; anything else, or no answer within
``timeout`` seconds, puts the transaction in the posting-failures tray. Pushes run in the
background on the server's event loop; ``duplicates`` pushes the same transaction N times in a
row and ``concurrency`` N times at once, to rehearse a receiver's exactly-once handling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.icompleat.routes import JOURNAL_NUMBER, ROUTES, RouteTable
from connectors.icompleat.sandbox.state import SandboxState
from connectors.icompleat.sandbox.wire import Record
from sync.foundation.errors import BadRequest

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Delivery:
    """One POST of one transaction to its endpoint, and how it ended."""

    tenant_id: str
    transaction_id: str
    url: str
    status: int | None
    journal_number: str | None
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the endpoint answered with a journal number that was recorded."""
        return self.journal_number is not None and not self.error


def _journal(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    number = body.get(JOURNAL_NUMBER) if isinstance(body, dict) else None
    return number if isinstance(number, str) and number.strip() else None


class Pusher:
    """Delivers approved transactions; bound to the server's event loop while it runs."""

    def __init__(self, state: SandboxState, routes: RouteTable = ROUTES,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.state = state
        self.header = routes.headers["webhook_token"]
        self.timeout = self._initial_timeout = timeout
        self.duplicates = 1
        self.concurrency = 1
        self.deliveries: list[Delivery] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        state.on_approved = self.schedule

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Run pushes on ``loop`` (None: the server stopped; pushes are refused)."""
        self._loop = loop

    async def aclose(self) -> None:
        """Close the HTTP client (on the server's loop, at shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        # One client for every push: building one per push costs an SSL context each time.
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False)
        return self._client

    def reset(self) -> None:
        """Default switches, no delivery history, pending pushes cancelled."""
        self.duplicates, self.concurrency, self.timeout = 1, 1, self._initial_timeout
        with self._lock:
            self.deliveries.clear()
            pending, self._pending = list(self._pending), set()
        for future in pending:
            future.cancel()

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        if self._loop is None or self._loop.is_closed():
            coro.close()
            raise RuntimeError("the sandbox server is not running; start it to push webhooks")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def schedule(self, tenant_id: str, tx_id: str) -> None:
        """Push ``tx_id`` in the background (called on approval, from any thread)."""
        if self._loop is not None:
            self._submit(self.push(tenant_id, tx_id))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block (NOT on the server's loop) until no push is running; False on timeout."""
        with self._lock:
            pending = list(self._pending)
        _done, not_done = concurrent.futures.wait(pending, timeout=timeout)
        return not not_done

    async def push(self, tenant_id: str, tx_id: str) -> list[Delivery]:
        """Deliver per the switches: ``duplicates`` rounds of ``concurrency`` POSTs each."""
        results: list[Delivery] = []
        for _ in range(max(1, self.duplicates)):
            round_ = [self.deliver(tenant_id, tx_id) for _ in range(max(1, self.concurrency))]
            results += await asyncio.gather(*round_)
        return results

    async def retry_now(self, failure_id: str) -> Delivery:
        """The tray's "Retry posting": push the failed transaction once more (KeyError if the
        tray has no such entry)."""
        failure = self.state.posting_failure(failure_id)
        return await self.deliver(failure["TenantId"], failure["TransactionId"])

    def retry(self, failure_id: str, timeout: float = 60.0) -> Delivery:
        """``retry_now`` from a thread other than the server's loop, waiting for the outcome."""
        self.state.posting_failure(failure_id)
        result: Delivery = self._submit(self.retry_now(failure_id)).result(timeout)
        return result

    async def deliver(self, tenant_id: str, tx_id: str) -> Delivery:
        """One POST of the transaction detail; records the posting or a posting failure."""
        tx = self.state.transaction(tenant_id, tx_id)
        endpoint = self.state.webhook_for(tenant_id, tx)
        if endpoint is None:
            return self._failed(tenant_id, tx, "", None, f"no webhook endpoint is configured "
                                                         f"for {tx.get('Type')} transactions")
        try:
            response = await self._http().post(endpoint.url, json=tx, timeout=self.timeout,
                                               headers={self.header: endpoint.token.reveal()})
        except httpx.TimeoutException:
            return self._failed(tenant_id, tx, endpoint.url, None,
                                f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return self._failed(tenant_id, tx, endpoint.url, None,
                                f"transport error: {type(exc).__name__}")
        return self._answered(tenant_id, tx, endpoint.url, response)

    def _answered(self, tenant_id: str, tx: Record, url: str,
                  response: httpx.Response) -> Delivery:
        number = _journal(response) if response.status_code == 200 else None
        if number is None:
            return self._failed(tenant_id, tx, url, response.status_code,
                                f"HTTP {response.status_code} without a JournalNumber")
        try:
            self.state.edit_transaction(tenant_id, tx["Id"], {JOURNAL_NUMBER: number})
        except BadRequest as exc:
            return self._failed(tenant_id, tx, url, 200, exc.api_message)
        return self._record(Delivery(tenant_id, tx["Id"], url, 200, number))

    def _failed(self, tenant_id: str, tx: Record, url: str, status: int | None,
                reason: str) -> Delivery:
        self.state.add_failure(tenant_id, tx["Id"], url, reason)
        return self._record(Delivery(tenant_id, tx["Id"], url, status, None, reason))

    def _record(self, delivery: Delivery) -> Delivery:
        with self._lock:
            self.deliveries.append(delivery)
        return delivery
