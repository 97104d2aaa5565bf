"""The poll job against the real sandbox over loopback and a real SQLite ERP and state DB."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

from connectors.base import CompanyRef
from connectors.icompleat.models import parse_transaction
from connectors.memory import MemorySink
from sync.foundation.config import Config
from sync.foundation.errors import ExitCode
from sync.runtime.context import open_runtime
from sync.state.store import Fence
from sync.transactions.poll import PollResult, poll_company
from sync.transactions.rules import (
    POSTED,
    POSTING,
    QUARANTINED,
    RESOLVED_PREFIX,
    WRITTEN_BACK,
    RetryPolicy,
)
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID
from tests.transactions.world import TxWorld

FAST_RETRY = RetryPolicy(base_seconds=0.0, max_seconds=0.0, max_attempts=3, jitter=0)


async def poll(config: Config, **kwargs: object) -> PollResult:
    """One pass for the only configured company, on a runtime of its own."""
    async with open_runtime(config) as rt:
        return await poll_company(rt, config.settings.companies[0], **kwargs)  # type: ignore[arg-type]


async def ledger(config: Config) -> dict[str, tuple[str, str | None]]:
    """Transaction id -> (ledger status, journal number)."""
    async with open_runtime(config) as rt:
        rows = await asyncio.to_thread(rt.store.ledger_rows, COMPANY_ID)
    return {r.transaction_id: (r.status, r.journal_number) for r in rows}


def writes(world: TxWorld) -> int:
    """How many journal-number writes iCompleat has received."""
    return int(world.state.log.count(route="transaction.edit"))


async def test_poll_posts_each_approved_transaction_once_and_writes_back(world: TxWorld) -> None:
    """Every approved transaction lands once in the ERP; iCompleat shows the ERP's number."""
    config = world.write_config(types=("INV", "ORD"))
    invoices, orders = world.approved(23), world.approved(2, "ORD")
    world.create()  # saved, not approved: never posted
    result = await poll(config)
    assert (result.outcome, result.exit_code) == ("ok", ExitCode.OK)
    assert (result.seen, result.posted, result.created, result.written_back) == (25, 25, 25, 25)
    journals = world.check_exactly_once()
    assert set(journals) == set(invoices + orders)
    assert len(set(journals.values())) == 25
    assert world.erp_lines() == 25
    assert {s for s, _ in (await ledger(config)).values()} == {WRITTEN_BACK}


async def test_second_poll_writes_nothing(world: TxWorld) -> None:
    """A pass over transactions that all carry their journal number makes zero writes."""
    config = world.write_config()
    world.approved(5)
    await poll(config)
    before, entries = writes(world), world.erp_entries()
    again = await poll(config)
    assert (again.seen, again.posted, again.skipped, again.exit_code) == (0, 0, 5, ExitCode.OK)
    assert writes(world) == before
    assert world.erp_entries() == entries


async def test_erp_refusal_is_quarantined_and_never_blocks_the_others(world: TxWorld) -> None:
    """An unknown supplier is quarantined with the reason; the rest land; exit code 4."""
    config = world.write_config(supplier_check=True)
    good = world.approved(3)
    bad = world.approved(1, supplier="SUP-404")[0]
    result = await poll(config, policy=RetryPolicy(base_seconds=3600))
    assert (result.outcome, result.exit_code) == ("partial", ExitCode.PARTIAL)
    assert (result.created, result.quarantined) == (3, 1)
    assert any("SUP-404" in p and bad in p for p in result.problems)
    assert set(world.erp_entries()) == set(good)
    async with open_runtime(config) as rt:
        row = rt.store.ledger_get(COMPANY_ID, bad)
    assert row is not None
    assert (row.status, row.attempts) == (QUARANTINED, 1)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at.replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(minutes=50)
    assert row.last_error is not None
    assert "SUP-404" in row.last_error


async def test_quarantined_transaction_waits_for_its_time(world: TxWorld) -> None:
    """Before its next attempt a quarantined transaction is left alone: no second ERP call."""
    config = world.write_config(supplier_check=True)
    world.approved(1, supplier="SUP-404")
    await poll(config, policy=RetryPolicy(base_seconds=3600))
    again = await poll(config, policy=RetryPolicy(base_seconds=3600))
    assert (again.seen, again.skipped, again.quarantined) == (0, 1, 1)
    async with open_runtime(config) as rt:
        rows = rt.store.ledger_rows(COMPANY_ID)
    assert [r.attempts for r in rows] == [1]


async def test_quarantine_retries_are_bounded_then_a_fix_lands(world: TxWorld) -> None:
    """Refusals are retried up to the limit, then wait for an operator; fixed, it posts once."""
    config = world.write_config(supplier_check=True)
    bad = world.approved(1, supplier="SUP-404")[0]
    for _ in range(4):
        await poll(config, policy=FAST_RETRY)
    async with open_runtime(config) as rt:
        row = rt.store.ledger_get(COMPANY_ID, bad)
        assert row is not None
        assert (row.status, row.attempts, row.next_attempt_at) == (QUARANTINED, 3, None)
        assert "retries used up" in (row.last_error or "")
        # The operator adds the supplier and asks for a retry.
        with sqlite3.connect(world.erp_path) as db:
            db.execute("INSERT INTO suppliers VALUES ('SUP-404')")
        assert rt.store.ledger_transition(COMPANY_ID, bad, expect=[QUARANTINED], to=QUARANTINED,
                                          next_attempt_at=datetime.now(UTC))
    result = await poll(config, policy=FAST_RETRY)
    assert (result.created, result.quarantined, result.exit_code) == (1, 0, ExitCode.OK)
    world.check_exactly_once()


async def test_posting_row_is_settled_by_a_lookup_before_anything_else(world: TxWorld) -> None:
    """A row left in posting whose ERP entry exists is not posted again, only written back."""
    config = world.write_config()
    tx_id = world.approved(1)[0]
    async with open_runtime(config) as rt:
        detail = parse_transaction(await rt.client.transaction(tx_id))
        rt.store.ledger_seen(COMPANY_ID, tx_id, "INV")
        rt.store.ledger_transition(COMPANY_ID, tx_id, expect=["seen"], to=POSTING)
        made = rt.sink("erp").post(detail, CompanyRef("acme", COMPANY_ID))  # then "killed"
    result = await poll(config)
    assert (result.posted, result.created, result.written_back) == (1, 0, 1)
    assert world.check_exactly_once() == {tx_id: made.journal_number}


async def test_posting_row_without_erp_entry_is_posted_once(world: TxWorld) -> None:
    """A row left in posting before the ERP committed is posted exactly once."""
    config = world.write_config()
    tx_id = world.approved(1)[0]
    async with open_runtime(config) as rt:
        rt.store.ledger_seen(COMPANY_ID, tx_id, "INV")
        rt.store.ledger_transition(COMPANY_ID, tx_id, expect=["seen"], to=POSTING)
    result = await poll(config)
    assert (result.created, result.written_back) == (1, 1)
    world.check_exactly_once()


async def test_posted_row_is_written_back(world: TxWorld) -> None:
    """A row posted in the ERP but not yet in iCompleat gets its number written back."""
    config = world.write_config()
    world.approved(2)
    world.sandbox.state.faults.set("transaction.edit", error_rate=1.0, error_status=500)
    first = await poll(config)
    assert (first.created, first.written_back, first.failed) == (2, 0, 2)
    assert first.exit_code == ExitCode.PARTIAL
    assert {s for s, _ in (await ledger(config)).values()} == {POSTED}
    world.sandbox.state.faults.clear()
    second = await poll(config)
    assert (second.created, second.written_back, second.exit_code) == (0, 2, ExitCode.OK)
    world.check_exactly_once()


async def test_write_back_of_unknown_outcome_is_settled_by_a_read(world: TxWorld) -> None:
    """iCompleat applies the journal number then answers 500: a read confirms it, no resend."""
    config = world.write_config()
    world.approved(1)
    world.sandbox.state.faults.set("transaction.edit", commit_then_fail="500", times=1)
    result = await poll(config)
    assert (result.written_back, result.failed, result.exit_code) == (1, 0, ExitCode.OK)
    assert world.state.log.count(route="transaction.edit") == 1
    world.check_exactly_once()


async def test_already_posted_in_icompleat_is_adopted_not_posted(world: TxWorld) -> None:
    """A transaction iCompleat shows with a journal number is not posted; the ledger agrees."""
    config = world.write_config()
    tx_id = world.approved(1)[0]
    world.record_journal(tx_id, "MANUAL-1")
    result = await poll(config)
    assert (result.created, result.exit_code) == (0, ExitCode.OK)
    assert world.erp_entries() == {}
    assert (await ledger(config))[tx_id] == (WRITTEN_BACK, "MANUAL-1")


async def test_different_journal_in_icompleat_is_an_alarm_never_overwritten(
        world: TxWorld) -> None:
    """The ERP posted J1 but iCompleat got another number first: quarantined, not overwritten."""
    config = world.write_config()
    tx_id = world.approved(1)[0]
    world.sandbox.state.faults.set("transaction.edit", error_rate=1.0, error_status=500)
    await poll(config)  # posted in the ERP; write-back failed
    world.sandbox.state.faults.clear()
    world.record_journal(tx_id, "OTHER-9")
    result = await poll(config)
    assert (result.quarantined, result.exit_code) == (1, ExitCode.PARTIAL)
    assert any("OTHER-9" in p for p in result.problems)
    assert world.remote_journals()[tx_id] == "OTHER-9"
    status, ours = (await ledger(config))[tx_id]
    assert status == QUARANTINED
    assert ours == world.erp_entries()[tx_id][0]


async def test_key_rotation_stops_the_pass_with_exit_5(world: TxWorld) -> None:
    """A 401 ends the pass at once with outcome auth and nothing posted."""
    config = world.write_config()
    world.approved(2)
    world.sandbox.state.rotate_key(TENANT_ID, "a-new-key-nobody-has")
    result = await poll(config)
    assert (result.outcome, result.exit_code) == ("auth", ExitCode.AUTH)
    assert world.erp_entries() == {}
    assert result.error is not None
    assert "configuration key icompleat.api_key" in result.error


async def test_stale_fence_writes_nothing(world: TxWorld) -> None:
    """A pass under a lease another runner took over is refused before the ERP is touched."""
    config = world.write_config()
    world.approved(2)
    async with open_runtime(config) as rt:
        old = rt.store.acquire_lease("acme:transactions", "old-holder", 0.2)
        assert old is not None
        await asyncio.sleep(0.3)
        assert rt.store.acquire_lease("acme:transactions", "new-holder", 30) is not None
        result = await poll_company(rt, config.settings.companies[0], fence=old)
    assert (result.outcome, result.exit_code) == ("failed", ExitCode.FAILED)
    assert world.erp_entries() == {}


async def test_concurrent_passes_post_once(world: TxWorld) -> None:
    """Two passes at once (same process, and a second runtime) make one entry per transaction."""
    config = world.write_config()
    world.approved(12)
    async with open_runtime(config) as rt:
        company = config.settings.companies[0]
        results = await asyncio.gather(poll_company(rt, company), poll_company(rt, company),
                                       poll(config))
    assert sum(r.created for r in results) == 12
    assert all(r.exit_code == ExitCode.OK for r in results)
    world.check_exactly_once()


async def test_fence_is_accepted_while_held(world: TxWorld) -> None:
    """With the lease held, the pass writes under its fence normally."""
    config = world.write_config()
    world.approved(2)
    async with open_runtime(config) as rt:
        fence = rt.store.acquire_lease("acme:transactions", rt.holder, 30)
        assert isinstance(fence, Fence)
        result = await poll_company(rt, config.settings.companies[0], fence=fence)
    assert (result.created, result.exit_code) == (2, ExitCode.OK)


async def test_key_rotation_mid_pass_stops_and_the_next_pass_converges(world: TxWorld) -> None:
    """A 401 half-way stops the pass (exit 5, no retry of it); with the key restored the next
    pass finishes what was started, exactly once."""
    config = world.write_config()
    world.approved(10)
    world.sandbox.state.faults.rotate_key_at(TENANT_ID, 8, "rotated-key-0042")
    stopped = await poll(config)
    assert (stopped.outcome, stopped.exit_code) == ("auth", ExitCode.AUTH)
    assert world.state.log.count(status=401) <= 4  # only the calls already in flight
    assert len(world.erp_entries()) < 10
    world.sandbox.state.rotate_key(TENANT_ID, CANARY_KEY)
    result = await poll(config)
    assert result.exit_code == ExitCode.OK
    assert len(world.check_exactly_once()) == 10


async def test_resolved_quarantine_no_longer_counts(world: TxWorld) -> None:
    """Once an operator resolves a quarantined transaction, passes end 0 and never post it."""
    config = world.write_config(supplier_check=True)
    bad = world.approved(1, supplier="SUP-404")[0]
    assert (await poll(config, policy=FAST_RETRY)).exit_code == ExitCode.PARTIAL
    async with open_runtime(config) as rt:
        assert rt.store.ledger_transition(
            COMPANY_ID, bad, expect=[QUARANTINED], to=QUARANTINED, next_attempt_at=None,
            last_error=f"{RESOLVED_PREFIX} on 2025-03-01; was: unknown supplier")
    result = await poll(config, policy=FAST_RETRY)
    assert (result.quarantined, result.exit_code, result.skipped) == (0, ExitCode.OK, 1)
    assert world.erp_entries() == {}


async def test_memory_sink_outage_before_and_after_commit(world: TxWorld) -> None:
    """The in-memory ERP down before committing, then failing after committing: each pass
    reports it, the next pass finishes, and every transaction has one entry."""
    config = world.write_config(sink='type = "memory"')
    world.approved(3)
    async with open_runtime(config) as rt:
        company = config.settings.companies[0]
        sink = rt.sink("erp")
        assert isinstance(sink, MemorySink)
        sink.fail_next()
        sink.fail_next(after_commit=True)
        first = await poll_company(rt, company)
        assert (first.failed, first.exit_code) == (2, ExitCode.PARTIAL)
        assert any("the ERP sink failed" in p for p in first.problems)
        second = await poll_company(rt, company)
        assert (second.created, second.posted, second.exit_code) == (1, 2, ExitCode.OK)
        assert set(sink.entry_counts().values()) == {1}
        assert len(sink.entry_counts()) == 3
    assert world.remote_journals() == {
        e.transaction_id: e.journal_number for e in sink.entries}
