"""One approved transaction into the ERP, exactly once, its journal number written back.

A :class:`Poster` carries one transaction through the ledger
(:mod:`sync.transactions.rules`): ``seen`` is
committed before the ERP is touched; the sink posts find-or-create on the iCompleat id; the
journal number is recorded in the ledger, then in iCompleat. Callers racing on one transaction
(the poller, the webhook, another process) are kept apart by a per-transaction lock inside the
process and by the ledger's compare-and-set across processes; the sink's find-or-create is the
last line, so even a caller that settles a row another one is still posting makes no second entry.

The poll job (:mod:`sync.transactions.poll`) and the webhook receiver
(:mod:`sync.transactions.webhook`) both post
through here.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from connectors.base import CompanyRef, Posting, TransactionSink
from connectors.icompleat.models import Transaction, parse_transaction
from sync.foundation import clock
from sync.foundation.config import CompanyConfig
from sync.foundation.crashpoints import crash_point
from sync.foundation.errors import (
    ApiError,
    AuthRejected,
    ConfigError,
    OutcomeUnknown,
    SinkError,
    SinkRejected,
    Unsupported,
    ValidationFailed,
)
from sync.foundation.logs import get_logger
from sync.runtime.capabilities import JOURNAL_WRITE
from sync.runtime.context import Runtime
from sync.runtime.leases import check_lease
from sync.state.store import Fence, LedgerRow
from sync.transactions.rules import (
    POSTED,
    POSTING,
    QUARANTINED,
    SEEN,
    WRITTEN_BACK,
    Action,
    RetryPolicy,
    TxOutcome,
    decide,
    is_due,
    is_open_quarantine,
    journal_conflict,
    next_attempt_at,
)

log = get_logger("icsync.transactions")

# The ledger's journal_channel: how iCompleat got the journal number.
API, WEBHOOK, ICOMPLEAT = "api", "webhook", "icompleat"
WAIT_SECONDS = 10.0  # how long a caller that lost a race waits for the winner's journal number


class _KeyLocks:
    """One asyncio lock per (loop, company, transaction), dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[tuple[int, str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, company_id: str, tx_id: str, patience: float) -> AsyncIterator[bool]:
        """Hold the lock (True), or go on without it after ``patience`` seconds (False)."""
        key = (id(asyncio.get_running_loop()), company_id, tx_id)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        got = False
        try:
            try:
                async with asyncio.timeout(patience):
                    got = await lock.acquire()
            except TimeoutError:
                got = False
            yield got
        finally:
            if got:
                lock.release()
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


_LOCKS = _KeyLocks()



def company_sink(rt: Runtime, company: CompanyConfig) -> TransactionSink:
    """The sink a company posts into; ConfigError when it has none."""
    if company.sink is None:
        raise ConfigError(f"company {company.name!r} has no sink: add sink = \"NAME\" and a "
                          f"[sinks.NAME] table, or set transaction_types = []",
                          key=f"companies.{company.name}.sink")
    return rt.sink(company.sink)


class Poster:
    """Moves transactions of one company through the ledger into the ERP and back."""

    def __init__(self, rt: Runtime, company: CompanyConfig, *, fence: Fence | None = None,
                 policy: RetryPolicy | None = None, write_back: bool = True,
                 retry_now: bool = False, wait_seconds: float = WAIT_SECONDS) -> None:
        self.rt, self.company, self.fence = rt, company, fence
        self.sink = company_sink(rt, company)
        self.ref = CompanyRef.of(company)
        self.policy = policy or RetryPolicy()
        self.write_back, self.wait_seconds = write_back, wait_seconds
        self.retry_now = retry_now

    # -- the ledger, off the event loop --------------------------------------------------------
    async def _seen(self, tx_id: str, tx_type: str) -> LedgerRow:
        store = self.rt.store
        return await asyncio.to_thread(store.ledger_seen, self.ref.company_id, tx_id, tx_type,
                                       fence=self.fence)

    async def _move(self, tx_id: str, expect: tuple[str, ...], to: str, **fields: Any) -> bool:
        call = functools.partial(self.rt.store.ledger_transition, self.ref.company_id, tx_id,
                                 expect=expect, to=to, fence=self.fence, **fields)
        return await asyncio.to_thread(call)

    async def _get(self, tx_id: str) -> LedgerRow | None:
        return await asyncio.to_thread(self.rt.store.ledger_get, self.ref.company_id, tx_id)

    async def _sink(self, call: Callable[[], Posting | None]) -> Posting | None:
        return await asyncio.to_thread(call)

    # -- entry points ---------------------------------------------------------------------------
    async def handle(self, tx: Transaction, tx_type: str | None = None) -> TxOutcome:
        """Take ``tx`` (a detail or list object) as far as it can go now."""
        async with _LOCKS.hold(self.ref.company_id, tx.id, self.wait_seconds):
            row = await self._seen(tx.id, tx_type or tx.type or "")
            crash_point("after_ledger_seen")
            return await self._act(row, tx)

    async def recover(self, row: LedgerRow, fetch: Callable[[str], Awaitable[Transaction]]
                      ) -> TxOutcome:
        """Finish a row a previous run left: settle ``posting`` by a find, write ``posted`` back,
        (re)post ``seen`` and due ``quarantined`` rows after fetching their detail."""
        async with _LOCKS.hold(self.ref.company_id, row.transaction_id, self.wait_seconds):
            fresh = await self._get(row.transaction_id) or row
            tx_id = fresh.transaction_id
            if fresh.status == POSTING:  # left by a dead process: settle at once, no waiting
                found = await self._sink(functools.partial(self.sink.find, tx_id))
                if found is not None:
                    return await self._posted(tx_id, found)
                return await self._settle(await fetch(tx_id))
            if fresh.status in (POSTED, WRITTEN_BACK) and fresh.journal_number:
                return await self._write_back(tx_id, fresh.journal_number, fresh.status)
            return await self._act(fresh, await fetch(tx_id))

    async def _act(self, row: LedgerRow, tx: Transaction) -> TxOutcome:
        # A push (iCompleat's "Retry posting") retries a refused transaction at once, unless an
        # operator resolved it by hand: posting it then could make a second ERP entry.
        pushed = self.retry_now and is_open_quarantine(row.status, row.last_error)
        due = pushed or is_due(row.next_attempt_at, clock.utcnow())
        action = decide(row.status, row.journal_number, tx.journal_number, due=due)
        if action is Action.POST:
            return await self._post(row, tx)
        if action is Action.SETTLE:  # someone is posting it now: wait for them, bounded
            return await self._await_winner(tx)
        if action is Action.WRITE_BACK and row.journal_number:
            return await self._write_back(tx.id, row.journal_number, row.status)
        if action is Action.CONFIRM and row.journal_number:
            return await self._written(tx.id, row.journal_number, row.status, wrote=False)
        if action is Action.ADOPT and tx.journal_number:
            return await self._adopt(row, tx.id, tx.journal_number)
        if action is Action.ALARM and row.journal_number and tx.journal_number:
            return await self._alarm(tx.id, row.status, row.journal_number, tx.journal_number)
        return TxOutcome(tx.id, row.status, row.journal_number, detail=row.last_error)

    # -- posting --------------------------------------------------------------------------------
    async def _post(self, row: LedgerRow, tx: Transaction) -> TxOutcome:
        if not await self._move(tx.id, (row.status,), POSTING, next_attempt_at=None):
            return await self._await_winner(tx)
        return await self._post_now(tx, row.attempts)

    async def _post_now(self, tx: Transaction, attempts: int) -> TxOutcome:
        check_lease()  # a runner that lost its lease (paused, stalled) posts nothing more
        if tx.problems:  # a refused number is never posted as something else
            return await self._reject(tx.id, attempts + 1, SinkRejected(
                f"numbers out of bounds: {'; '.join(tx.problems)}; correct them in iCompleat",
                transaction_id=tx.id, reason="bad_number"))
        try:
            posting = await asyncio.to_thread(self.sink.post, tx, self.ref)
        except SinkRejected as exc:
            return await self._reject(tx.id, attempts + 1, exc)
        except SinkError as exc:
            detail = f"transaction {tx.id}: the ERP sink failed ({exc}); retried next pass"
            await self._move(tx.id, (POSTING,), SEEN, last_error=detail)
            return TxOutcome(tx.id, SEEN, failed=True, detail=detail)
        crash_point("after_erp_commit")
        return await self._posted(tx.id, posting)

    async def _settle(self, tx: Transaction) -> TxOutcome:
        found = await self._sink(functools.partial(self.sink.find, tx.id))
        if found is not None:
            return await self._posted(tx.id, found)
        row = await self._get(tx.id)
        return await self._post_now(tx, row.attempts if row else 0)

    async def _await_winner(self, tx: Transaction) -> TxOutcome:
        """Another caller moved the row first: wait (bounded) for its journal number."""
        deadline, pause = time.monotonic() + self.wait_seconds, 0.02
        while time.monotonic() < deadline:
            row = await self._get(tx.id)
            if row is not None and row.status == POSTED and row.journal_number:
                return await self._write_back(tx.id, row.journal_number, POSTED)
            if row is not None and row.status in (WRITTEN_BACK, QUARANTINED, SEEN):
                failed = row.status == SEEN  # the winner could not reach the ERP
                return TxOutcome(tx.id, row.status, row.journal_number, failed=failed,
                                 detail=row.last_error)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
        log.warning("transaction_race_timeout", transaction_id=tx.id, waited=self.wait_seconds)
        return await self._settle(tx)

    async def _posted(self, tx_id: str, posting: Posting) -> TxOutcome:
        journal = posting.journal_number
        if not await self._move(tx_id, (POSTING,), POSTED, journal_number=journal,
                                last_error=None, next_attempt_at=None):
            row = await self._get(tx_id)  # another caller recorded it first
            if row is None or row.journal_number != journal:
                status = row.status if row else SEEN
                return TxOutcome(tx_id, status, row.journal_number if row else None, failed=True,
                                 detail=f"transaction {tx_id}: ledger moved on to {status}")
            if row.status == WRITTEN_BACK:
                return TxOutcome(tx_id, WRITTEN_BACK, journal, True, posting.created)
        log.info("transaction_posted", transaction_id=tx_id, journal_number=journal,
                 created=posting.created)
        done = await self._write_back(tx_id, journal, POSTED)
        return TxOutcome(tx_id, done.status, journal, True, posting.created, done.wrote_back,
                         done.failed, done.detail)

    async def _reject(self, tx_id: str, attempts: int, exc: SinkRejected) -> TxOutcome:
        at = next_attempt_at(attempts, clock.utcnow(), self.policy)
        then = (f"retry {attempts + 1} of {self.policy.max_attempts} at {at:%Y-%m-%d %H:%M:%S}Z"
                if at else "retries used up: fix it in the ERP, then `icsync errors retry`")
        detail = f"ERP refused transaction {tx_id} ({exc.reason}): {exc}; {then}"
        await self._move(tx_id, (POSTING,), QUARANTINED, attempts=attempts,
                         next_attempt_at=at, last_error=detail)
        log.warning("transaction_quarantined", transaction_id=tx_id, reason=exc.reason,
                    attempts=attempts, next_attempt_at=at.isoformat() if at else None)
        return TxOutcome(tx_id, QUARANTINED, detail=detail)

    # -- the journal number in iCompleat --------------------------------------------------------
    async def _write_back(self, tx_id: str, journal: str, status: str) -> TxOutcome:
        if not self.write_back:  # the webhook: its answer carries the number to iCompleat
            if status == POSTED:
                await self._move(tx_id, (POSTED,), POSTED, journal_channel=WEBHOOK)
            return TxOutcome(tx_id, status, journal)
        caps = self.rt.capabilities
        if not await caps.usable(JOURNAL_WRITE):
            return await self._by_webhook(tx_id, journal, status)
        crash_point("before_writeback")
        check_lease()
        try:
            await self.rt.client.record_journal(tx_id, journal)
        except Unsupported as exc:  # no API call writes journal numbers on this tenant
            await caps.refused(JOURNAL_WRITE, exc)
            return await self._by_webhook(tx_id, journal, status)
        except (ValidationFailed, OutcomeUnknown) as exc:
            return await self._check_remote(tx_id, journal, status, exc)
        except AuthRejected:
            raise
        except ApiError as exc:
            return self._write_back_failed(tx_id, journal, status, exc)
        crash_point("after_writeback")
        await caps.worked(JOURNAL_WRITE)
        return await self._written(tx_id, journal, status, wrote=True)

    async def _by_webhook(self, tx_id: str, journal: str, status: str) -> TxOutcome:
        """Journal write-back unsupported: the posting is complete now that the ERP has it;
        iCompleat gets the number from the webhook answer (its push, or its retry of one)."""
        if status != WRITTEN_BACK:
            await self._move(tx_id, (status,), WRITTEN_BACK, journal_number=journal,
                             journal_channel=WEBHOOK, last_error=None)
        log.info("journal_by_webhook", transaction_id=tx_id, journal_number=journal)
        return TxOutcome(tx_id, WRITTEN_BACK, journal)

    def _write_back_failed(self, tx_id: str, journal: str, status: str,
                           exc: Exception) -> TxOutcome:
        detail = (f"transaction {tx_id}: journal number {journal} is in the ERP but could not be "
                  f"recorded in iCompleat ({exc}); retried next pass")
        return TxOutcome(tx_id, status, journal, failed=True, detail=detail)

    async def _check_remote(self, tx_id: str, journal: str, status: str,
                            exc: ApiError) -> TxOutcome:
        """Settle a refused or unknown write-back by reading what iCompleat now shows."""
        try:
            theirs = parse_transaction(await self.rt.client.transaction(tx_id)).journal_number
        except AuthRejected:
            raise
        except (ApiError, ValueError) as read_exc:
            return self._write_back_failed(tx_id, journal, status, read_exc)
        if theirs == journal:
            return await self._written(tx_id, journal, status, wrote=True)
        if theirs is not None:
            return await self._alarm(tx_id, status, journal, theirs)
        return self._write_back_failed(tx_id, journal, status, exc)

    async def _written(self, tx_id: str, journal: str, status: str, *, wrote: bool) -> TxOutcome:
        if status != WRITTEN_BACK:
            channel = {"journal_channel": API} if wrote else {}
            await self._move(tx_id, (status,), WRITTEN_BACK, journal_number=journal, **channel)
        return TxOutcome(tx_id, WRITTEN_BACK, journal, wrote_back=wrote)

    async def _adopt(self, row: LedgerRow, tx_id: str, theirs: str) -> TxOutcome:
        """iCompleat shows a journal number the ledger never had: agree, unless the ERP differs."""
        found = await self._sink(functools.partial(self.sink.find, tx_id))
        if found is not None and found.journal_number != theirs:
            return await self._alarm(tx_id, row.status, found.journal_number, theirs)
        await self._move(tx_id, (row.status,), WRITTEN_BACK, journal_number=theirs,
                         last_error=None, next_attempt_at=None, journal_channel=ICOMPLEAT)
        return TxOutcome(tx_id, WRITTEN_BACK, theirs, posted=found is not None)

    async def _alarm(self, tx_id: str, status: str, ours: str, theirs: str) -> TxOutcome:
        detail = journal_conflict(tx_id, ours, theirs)
        await self._move(tx_id, (status,), QUARANTINED, journal_number=ours, last_error=detail,
                         next_attempt_at=None)
        log.error("journal_number_conflict", transaction_id=tx_id, ours=ours, theirs=theirs)
        return TxOutcome(tx_id, QUARANTINED, ours, detail=detail)


async def post_one(rt: Runtime, company: CompanyConfig, tx: Transaction, *,
                   fence: Fence | None = None, write_back: bool = True,
                   retry_now: bool = False, policy: RetryPolicy | None = None) -> TxOutcome:
    """Post one approved transaction through the ledger; the outcome with its journal number.

    ``write_back=False`` leaves recording the number in iCompleat to the caller (the webhook's
    answer does it); ``retry_now`` retries a quarantined transaction before its time."""
    poster = Poster(rt, company, fence=fence, policy=policy, write_back=write_back,
                    retry_now=retry_now)
    return await poster.handle(tx)
