"""The poll job: approved iCompleat transactions into the ERP, exactly once.

:func:`poll_company` settles what a previous run left (``posting`` rows by a look-up in the ERP
before anything else, ``posted`` rows written back), then lists approved transactions per type,
skips those iCompleat already shows with a journal number (once the ledger agrees), and takes
every other one through :class:`sync.posting.Poster`. A transaction the ERP refuses is quarantined
and retried later; it never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from connectors.icompleat.models import STATUS_APPROVED, Transaction, parse_transaction
from sync.config import CompanyConfig
from sync.errors import (
    ApiError,
    AuthRejected,
    ConfigError,
    ExitCode,
    IcsyncError,
    SinkError,
    exit_code_for,
)
from sync.ledger import (
    POSTING,
    QUARANTINED,
    Action,
    PollResult,
    RetryPolicy,
    TxOutcome,
    decide,
    is_due,
    is_open_quarantine,
)
from sync.logs import get_logger
from sync.posting import Poster, post_one, utcnow
from sync.runtime import Runtime
from sync.state.store import Fence, LedgerRow

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


class _PollJob:
    """One pass over one company: recover, then list approved transactions per type."""

    def __init__(self, poster: Poster, result: PollResult, concurrency: int) -> None:
        self.poster, self.result = poster, result
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
        pages = self.rt.client.transaction_pages(self.company_id, status=STATUS_APPROVED,
                                                 transaction_type=tx_type)
        try:
            await self._each(_flatten(pages), functools.partial(self._item, tx_type=tx_type))
        except AuthRejected:
            raise
        except ApiError as exc:
            self.result.failed += 1
            self.result.problem(f"listing approved {tx_type} transactions failed: {exc}; "
                                f"the next pass lists them again")

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
        if row is None:
            action = decide(None, None, listed.journal_number, due=False)
        else:
            action = decide(row.status, row.journal_number, listed.journal_number,
                            due=is_due(row.next_attempt_at, utcnow()))
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
                       policy: RetryPolicy | None = None) -> PollResult:
    """One poll pass for ``company``: every approved transaction reaches the ERP exactly once."""
    started, result = time.monotonic(), PollResult(company.name)
    if not company.transaction_types:
        return result
    before = _answers(rt)
    try:
        poster = Poster(rt, company, fence=fence, policy=policy)
        concurrency = rt.config.settings.icompleat.max_concurrency
        await _PollJob(poster, result, concurrency).run()
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
