"""The poll job: approved iCompleat transactions into the ERP, exactly once.

:func:`poll_company` settles what a previous run left (``posting`` rows by a look-up in the ERP
before anything else, ``posted`` rows written back), then lists approved transactions per type,
skips those iCompleat already shows with a journal number (once the ledger agrees), and takes
every other one through :class:`sync.transactions.poster.Poster`. A transaction the ERP refuses is
quarantined
and retried later; it never holds up the others.

Cost that does not grow with history: per company and type a cursor remembers the last page
read and the ids on it, and a pass reads from there (the page after it when it was full, the
same page when it was short) to the first short page. This relies on the list being in
creation order (an assumption, stated beside the route in ``connectors.icompleat.routes``). A
full read from page 1, a SWEEP, is made when the cursor is missing or the last sweep is older
than ``transactions_sweep_hours`` (default a day), when the remembered ids show the list moved
under the cursor, and on ``icsync poll --sweep``: it catches what a tail read cannot see (a
transaction created long ago and approved today sits in the middle of the list).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors.icompleat.models import STATUS_APPROVED, Transaction, parse_transaction
from sync.foundation import clock
from sync.foundation.clock import utcnow
from sync.foundation.config import CompanyConfig
from sync.foundation.errors import (
    ApiError,
    AuthRejected,
    ConfigError,
    ExitCode,
    IcsyncError,
    SinkError,
    exit_code_for,
)
from sync.foundation.logs import get_logger
from sync.runtime.context import Runtime
from sync.state.rows import CursorRow
from sync.state.store import Fence, LedgerRow
from sync.transactions.poster import WEBHOOK, Poster, post_one
from sync.transactions.rules import (
    POSTING,
    QUARANTINED,
    WRITTEN_BACK,
    Action,
    PollResult,
    RetryPolicy,
    TxOutcome,
    decide,
    is_due,
    is_open_quarantine,
)

__all__ = ["PollResult", "poll_company", "post_one"]

log = get_logger("icsync.transactions")


async def _aiter(items: Iterable[Any] | AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    if isinstance(items, AsyncIterator):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _flatten(pages: AsyncIterator[list[dict[str, Any]]]
                   ) -> AsyncGenerator[dict[str, Any], None]:
    try:
        async for page in pages:
            for item in page:
                yield item
    finally:  # stopped early: close the page reader too
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()


def sweep_due(cursor: CursorRow | None, now: datetime, every: timedelta) -> bool:
    """Pure: True when the list must be read in full (no cursor, or the last sweep is old)."""
    return cursor is None or cursor.swept_at is None or cursor.swept_at + every <= now


def resume_page(cursor: CursorRow, page_size: int) -> int:
    """Pure: where a tail read starts: after a full remembered page, else that page again."""
    return cursor.page + 1 if len(cursor.ids) >= page_size else cursor.page


def moved(cursor: CursorRow, page_size: int, first_ids: Sequence[str] | None) -> bool:
    """Pure: True when the first page of a tail read shows the list moved under the cursor.

    ``first_ids`` are the ids on the first page read (None: that page was empty). After a full
    page, the next page must not repeat any remembered id; a short page read again must still
    start with the remembered ids."""
    if len(cursor.ids) >= page_size:
        return first_ids is not None and bool(set(first_ids) & set(cursor.ids))
    if first_ids is None:
        return bool(cursor.ids)  # the page emptied under the cursor (an empty list stays so)
    return list(first_ids[:len(cursor.ids)]) != list(cursor.ids)


def waits_for_push(row: LedgerRow | None, remote_journal: str | None) -> bool:
    """Pure: True for a posting complete in the ERP whose number iCompleat gets from the webhook
    answer (no API call writes it on this tenant): nothing to do until it shows."""
    return (row is not None and row.status == WRITTEN_BACK and remote_journal is None
            and row.journal_channel == WEBHOOK)


@dataclass
class _Tail:
    """The pages one listing read: the first page's ids and the last non-empty page."""

    start: int
    first_ids: list[str] | None = None
    last_page: int | None = None
    last_ids: list[str] = field(default_factory=list)

    async def track(self, pages: AsyncIterator[list[dict[str, Any]]]
                    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Pass the pages on, noting which page each one is (empty pages are not yielded)."""
        number = self.start
        try:
            async for items in pages:
                ids = [str(item.get("Id")) for item in items if isinstance(item, dict)]
                if self.first_ids is None and number == self.start:
                    self.first_ids = ids
                self.last_page, self.last_ids = number, ids
                number += 1
                yield items
        finally:
            aclose = getattr(pages, "aclose", None)
            if aclose is not None:
                await aclose()


class _PollJob:
    """One pass over one company: recover, then list approved transactions per type."""

    def __init__(self, poster: Poster, result: PollResult, concurrency: int,
                 sweep: bool = False) -> None:
        self.poster, self.result, self.sweep = poster, result, sweep
        self.rt, self.company_id = poster.rt, poster.ref.company_id
        self.gate = asyncio.Semaphore(concurrency)
        self.handled: set[str] = set()
        self.rows: dict[str, LedgerRow] = {}

    async def run(self) -> None:
        due = await asyncio.to_thread(self.rt.store.ledger_due, self.company_id)
        # Rows a dead run left in posting are settled by a look-up in the ERP before anything.
        await self._each([r for r in due if r.status == POSTING], self._recover)
        rows = await asyncio.to_thread(self.rt.store.ledger_rows, self.company_id)
        self.rows = {row.transaction_id: row for row in rows}
        for tx_type in self.poster.company.transaction_types:
            await self._list(tx_type)
        # Due rows the listing did not show (no longer listed as approved): finish them too.
        await self._each([r for r in due if r.transaction_id not in self.handled], self._recover)

    async def _each(self, items: Iterable[Any] | AsyncIterator[Any],
                    work: Callable[[Any], Awaitable[None]]) -> None:
        """Run ``work`` on every item, at most ``concurrency`` at once, taking the next item only
        when a slot frees (so a long listing flows without holding more than that in memory).
        The first fatal error stops taking items and is raised once the running ones end."""
        running: set[asyncio.Task[None]] = set()
        fatal: list[BaseException] = []

        async def slot(item: Any) -> None:
            try:
                await work(item)
            except Exception as exc:  # fatal for the pass: kept, raised by the loop below
                fatal.append(exc)
            finally:
                self.gate.release()

        try:
            async with contextlib.aclosing(_aiter(items)) as stream:
                async for item in stream:
                    await self.gate.acquire()
                    if fatal:
                        self.gate.release()
                        break
                    task = asyncio.create_task(slot(item))
                    running.add(task)
                    task.add_done_callback(running.discard)
        except BaseException:
            for task in running:
                task.cancel()
            raise
        finally:
            await asyncio.gather(*running, return_exceptions=True)
        if fatal:
            raise fatal[0]

    async def _list(self, tx_type: str) -> None:
        store, size = self.rt.store, self._page_size()
        cursor = await asyncio.to_thread(store.poll_cursor, self.company_id, tx_type)
        every = timedelta(hours=self.poster.company.schedules.transactions_sweep_hours)
        sweep = self.sweep or sweep_due(cursor, utcnow(), every)
        failed = self.result.failed
        tail = await self._read(tx_type, 1 if sweep or cursor is None
                                else resume_page(cursor, size))
        if tail is None:
            return
        if not sweep and cursor is not None and moved(cursor, size, tail.first_ids):
            log.info("poll_list_moved", company_id=self.company_id, tx_type=tx_type,
                     page=cursor.page, action="full sweep")
            sweep, tail = True, await self._read(tx_type, 1)
            if tail is None:
                return
        if self.result.failed > failed:  # something in the read must be read again next pass
            return
        await asyncio.to_thread(self._save_cursor, tx_type, cursor, tail, sweep)

    def _page_size(self) -> int:
        return self.rt.client.routes["transactions.list"].page_size or 1

    def _save_cursor(self, tx_type: str, cursor: CursorRow | None, tail: _Tail,
                     sweep: bool) -> None:
        swept = utcnow() if sweep else None
        if tail.last_page is not None:
            self.rt.store.save_poll_cursor(self.company_id, tx_type, tail.last_page,
                                           tail.last_ids, swept_at=swept)
        elif sweep:  # the list is empty: a sweep from page 1 resumes there
            self.rt.store.save_poll_cursor(self.company_id, tx_type, 1, [], swept_at=swept)
        elif cursor is not None:
            self.rt.store.save_poll_cursor(self.company_id, tx_type, cursor.page, cursor.ids)

    async def _read(self, tx_type: str, start: int) -> _Tail | None:
        """List approved ``tx_type`` transactions from page ``start`` and handle each one;
        None when the listing failed (counted, and read again next pass)."""
        tail = _Tail(start)
        pages = self.rt.client.transaction_pages(self.company_id, status=STATUS_APPROVED,
                                                 transaction_type=tx_type, first_page=start)
        try:
            await self._each(_flatten(tail.track(pages)),
                             functools.partial(self._item, tx_type=tx_type))
        except AuthRejected:
            raise
        except ApiError as exc:
            self.result.failed += 1
            self.result.problem(f"listing approved {tx_type} transactions failed: {exc}; "
                                f"the next pass lists them again")
            return None
        return tail

    async def _recover(self, row: LedgerRow) -> None:
        self.handled.add(row.transaction_id)
        await self._guarded(row.transaction_id, self.poster.recover(row, self._fetch))

    async def _item(self, item: Any, *, tx_type: str) -> None:
        try:
            listed = parse_transaction(item)
        except (ValueError, AttributeError):
            self.result.problem(f"a listed {tx_type} transaction has no Id; skipped")
            return
        if listed.id in self.handled:
            return
        self.handled.add(listed.id)
        row = self.rows.get(listed.id)
        if waits_for_push(row, listed.journal_number):
            self.result.skipped += 1
            return
        if row is None:
            action = decide(None, None, listed.journal_number, due=False)
        else:
            action = decide(row.status, row.journal_number, listed.journal_number,
                            due=is_due(row.next_attempt_at, clock.utcnow()))
        if action in (Action.DONE, Action.WAIT):
            self.result.skipped += 1
            return
        await self._guarded(listed.id, self._work(listed, action, tx_type))

    async def _work(self, listed: Transaction, action: Action, tx_type: str) -> TxOutcome:
        # Adopting, confirming or raising an alarm needs only the list item's journal number.
        needs_detail = action in (Action.POST, Action.SETTLE, Action.WRITE_BACK)
        tx = await self._fetch(listed.id) if needs_detail else listed
        return await self.poster.handle(tx, tx_type)

    async def _fetch(self, tx_id: str) -> Transaction:
        tx = parse_transaction(await self.rt.client.transaction(tx_id))
        if tx.status != STATUS_APPROVED:
            raise NotApproved(tx_id, tx.status)
        return tx

    async def _guarded(self, tx_id: str, work: Awaitable[TxOutcome]) -> None:
        """Count one transaction's outcome; a passing failure never stops the others."""
        try:
            outcome = await work
        except NotApproved as exc:
            self.result.skipped += 1
            log.warning("transaction_not_approved", transaction_id=tx_id, detail=str(exc))
            return
        except (AuthRejected, ConfigError):
            raise
        except (ApiError, SinkError) as exc:
            outcome = TxOutcome(tx_id, "", failed=True,
                                detail=f"transaction {tx_id}: {exc}; retried next pass")
        self.result.count(outcome)


class NotApproved(IcsyncError):
    """A transaction the ledger knows is no longer approved in iCompleat: it is not posted."""

    def __init__(self, tx_id: str, status: str | None) -> None:
        super().__init__(f"transaction {tx_id} is {status or 'without a status'} in iCompleat, "
                         f"not {STATUS_APPROVED}: not posted")
        self.transaction_id = tx_id


async def poll_company(rt: Runtime, company: CompanyConfig, *, fence: Fence | None = None,
                       policy: RetryPolicy | None = None, sweep: bool = False) -> PollResult:
    """One poll pass for ``company``: every approved transaction reaches the ERP exactly once.

    ``sweep`` reads every approved list in full instead of from its tail cursor."""
    started, result = time.monotonic(), PollResult(company.name)
    if not company.transaction_types:
        return result
    before = _answers(rt)
    try:
        poster = Poster(rt, company, fence=fence, policy=policy)
        concurrency = rt.config.settings.icompleat.max_concurrency
        await _PollJob(poster, result, concurrency, sweep).run()
    except AuthRejected as exc:
        result.fail("auth", ExitCode.AUTH, str(exc))
    except IcsyncError as exc:
        result.fail("failed", exit_code_for(exc), str(exc))
    _unreachable(rt, result, before)
    quarantined = await _quarantined(rt, company.company_id)
    if quarantined:
        result.problem(f"{quarantined} transaction(s) quarantined: `icsync errors list` shows "
                       f"why; fix them in the ERP, then `icsync errors retry` (or resolve)")
    result.finish(quarantined, time.monotonic() - started)
    log.info("poll_finished", **result.to_dict())
    return result


def _answers(rt: Runtime) -> tuple[int, int]:
    stats = getattr(rt.client, "stats", None)
    return stats.answers() if stats is not None else (0, 0)


def _unreachable(rt: Runtime, result: PollResult, before: tuple[int, int]) -> None:
    """A pass in which not one call got an answer failed as a whole (exit 1), naming base_url."""
    answered, unanswered = (now - then for now, then in zip(_answers(rt), before, strict=True))
    if unanswered and not answered and result.outcome == "ok":
        base = rt.config.settings.icompleat.base_url
        first = result.problems[0] if result.problems else None
        result.fail("failed", ExitCode.FAILED,
                    f"no call reached iCompleat at {base} ({unanswered} requests, each refused "
                    f"or timed out after the configured retries): check [icompleat] base_url "
                    f"and that this host can reach it"
                    + (f"; first error: {first}" if first else ""))


async def _quarantined(rt: Runtime, company_id: str) -> int:
    try:
        rows = await asyncio.to_thread(rt.store.ledger_rows, company_id, [QUARANTINED])
    except IcsyncError:
        return 0
    return sum(is_open_quarantine(row.status, row.last_error) for row in rows)
