"""Holding a lease while a job runs: renewal, a local deadline, and guards on external writes.

The state store fences every STATE write (the lease row is re-checked in the same database
transaction). Writes to the OUTSIDE world (iCompleat, the ERP sink) cannot be fenced by the
database, so :class:`LeaseKeeper` keeps a conservative local deadline on the monotonic clock (the
start of the last successful renewal plus the lease time, minus a margin) and every external
write made inside a job first calls :func:`check_lease`. A process paused (SIGSTOP, a VM freeze)
past its lease wakes up with that deadline behind it and sends nothing more, whichever of its
tasks runs first. The renewal loop runs every third of the lease time; when a renewal is refused
(taken over or expired) or cannot be made before the deadline, the job is cancelled at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import httpx

from connectors.base import CompanyRef, Posting, TransactionSink
from connectors.icompleat.models import Transaction
from connectors.icompleat.tls import tls_context
from sync.foundation.errors import LeaseLost, StateError
from sync.foundation.logs import get_logger
from sync.state.store import Fence, StateStore

log = get_logger("icsync.leasing")
T = TypeVar("T")

_CURRENT: ContextVar[LeaseKeeper | None] = ContextVar("icsync_lease", default=None)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def take_lease(store: StateStore, name: str, holder: str, ttl: float, *,
                     doing: str) -> Fence:
    """Take lease ``name``, waiting up to one lease time for a live holder to finish or a dead
    one's lease to expire; then StateError naming the holder and what it is ``doing``."""
    deadline = time.monotonic() + ttl + 1.0
    while True:
        fence = await asyncio.to_thread(store.acquire_lease, name, holder, ttl)
        if fence is not None:
            return fence
        if time.monotonic() > deadline:
            leases = await asyncio.to_thread(store.leases)
            holders = [lease.holder for lease in leases if lease.name == name]
            raise StateError(f"lease {name!r} is held by {holders or 'another instance'}: "
                             f"another icsync is {doing}; try again when it is done")
        await asyncio.sleep(min(0.5, ttl / 4))


def check_lease(*, write: bool = True) -> None:
    """LeaseLost if the job this code runs in may not send this call.

    A write is refused once the lease is lost or its local deadline has passed; any call is
    refused once the daemon is stopping (the call in flight finishes, the next one is not made).
    Outside a job (the webhook, one-shot commands) nothing is checked.
    """
    keeper = _CURRENT.get()
    if keeper is not None:
        keeper.check(write=write)


class LeaseKeeper:
    """Keeps one lease alive for one job run and cancels the run when it is lost."""

    def __init__(self, store: StateStore, fence: Fence, ttl: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.fence, self.ttl, self.clock = store, fence, ttl, clock
        self.margin = min(ttl * 0.2, 5.0)
        self.deadline = clock() + ttl - self.margin
        self.lost: str | None = None
        self.draining = False

    def check(self, *, write: bool = True) -> None:
        """LeaseLost when stopping, or (for a write) when the lease is lost or past deadline."""
        if self.draining:
            raise LeaseLost(f"lease {self.fence.name!r}: this instance is stopping; the call in "
                            "flight finished and nothing more is sent; the next run carries on")
        if not write:
            return
        if self.lost is None and self.clock() >= self.deadline:
            self.lost = "the lease time ran out before it could be renewed (paused or stalled)"
        if self.lost is not None:
            raise LeaseLost(f"lease {self.fence.name!r}: {self.lost}; nothing more is sent "
                            "from this instance, the next holder carries on")

    async def run(self, work: Awaitable[T]) -> T:
        """Run ``work`` as a task under this lease; LeaseLost if the lease is lost meanwhile."""
        task = asyncio.ensure_future(self._bound(work))
        renewer = asyncio.create_task(self._renew_until_done(task))
        try:
            return await task
        except asyncio.CancelledError:
            if self.lost is not None and not _cancelling():
                raise LeaseLost(f"lease {self.fence.name!r}: {self.lost}") from None
            raise
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _bound(self, work: Awaitable[T]) -> T:
        _CURRENT.set(self)
        return await work

    async def _renew_until_done(self, task: asyncio.Future[Any]) -> None:
        interval = self.ttl / 3
        while not task.done():
            await asyncio.sleep(max(0.0, min(interval, self.deadline - self.clock())))
            if task.done():
                return
            if not await self._renew_once(interval):
                task.cancel()
                return

    async def _renew_once(self, within: float) -> bool:
        """True while the lease is ours; False (and ``lost`` set) once it is gone."""
        started = self.clock()
        try:
            async with asyncio.timeout(within):
                ok = await asyncio.to_thread(self.store.renew_lease, self.fence, self.ttl)
        except (StateError, TimeoutError) as exc:
            log.warning("lease_renewal_failed", lease=self.fence.name, error=str(exc) or "timeout")
            if self.clock() < self.deadline:
                return True
            self.lost = ("it could not be renewed before it ran out (the state database did "
                         "not answer)")
            ok = False
        if ok:
            self.deadline = started + self.ttl - self.margin
            return True
        self.lost = self.lost or "another instance took it over or it expired"
        log.error("lease_lost", lease=self.fence.name, holder=self.fence.holder,
                  token=self.fence.token, reason=self.lost)
        return False

    async def release(self, within: float = 5.0) -> None:
        """Give the lease up (bounded, shielded from cancellation); failures are logged."""
        call = asyncio.ensure_future(asyncio.to_thread(self.store.release_lease, self.fence))
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(call)
        except (StateError, TimeoutError) as exc:
            log.warning("lease_release_failed", lease=self.fence.name,
                        error=str(exc) or "timeout")


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class LeaseGuardTransport(httpx.AsyncBaseTransport):
    """An httpx transport that refuses writes from a job whose lease is lost."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport(verify=tls_context(), trust_env=True)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the lease (see :func:`check_lease`), then send the request."""
        check_lease(write=request.method not in _SAFE_METHODS)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.inner.aclose()


class LeaseGuardSink:
    """A TransactionSink that checks the lease before each posting into the ERP."""

    def __init__(self, inner: TransactionSink) -> None:
        self.inner = inner
        self.name = inner.name

    def find(self, transaction_id: str) -> Posting | None:
        """Look-ups are not writes: passed straight through."""
        return self.inner.find(transaction_id)

    def post(self, transaction: Transaction, company: CompanyRef) -> Posting:
        """LeaseLost before touching the ERP when the job lost its lease; else post."""
        check_lease()
        return self.inner.post(transaction, company)

    def close(self) -> None:
        """Close the wrapped sink."""
        self.inner.close()
