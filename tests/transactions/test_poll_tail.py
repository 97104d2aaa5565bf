"""Polling by tail cursor: a pass reads from where the last one stopped; sweeps catch the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sync.runtime.context import open_runtime
from sync.state.rows import CursorRow
from sync.transactions.poll import moved, poll_company, resume_page, sweep_due
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.transactions.world import TxWorld


def _pages(world: TxWorld, since: int) -> list[int]:
    """The page numbers of the transaction lists the sandbox served after ``since``."""
    return [int(e.path.split("/")[4]) for e in world.state.log.entries("transactions.list")
            if e.seq > since]


def _seq(world: TxWorld) -> int:
    entries = world.state.log.entries()
    return entries[-1].seq if entries else 0


async def _pass(world: TxWorld, config: Any, **options: Any) -> list[int]:
    since = _seq(world)
    async with open_runtime(config) as rt:
        result = await poll_company(rt, config.settings.companies[0], **options)
    assert result.failed == 0, result.to_dict()
    return _pages(world, since)


async def test_a_pass_reads_from_the_cursor(world: TxWorld) -> None:
    """After a first full read, a pass re-reads only the short last page and what follows."""
    config = world.write_config()
    world.approved(45)
    assert await _pass(world, config) == [1, 2, 3]
    world.approved(3)
    assert await _pass(world, config) == [3]  # 8 on page 3: short, so the read ends there
    world.approved(12)
    assert await _pass(world, config) == [3, 4]  # page 3 filled up, page 4 is empty
    assert await _pass(world, config) == [4]
    world.check_exactly_once()


async def test_a_full_last_page_is_not_read_again(world: TxWorld) -> None:
    """With the last page full, a pass starts on the next one: one call when nothing is new."""
    config = world.write_config()
    world.approved(40)
    assert await _pass(world, config) == [1, 2, 3]
    assert await _pass(world, config) == [3]
    async with open_runtime(config) as rt:
        cursor = rt.store.poll_cursor(COMPANY_ID, "INV")
    assert cursor is not None
    assert (cursor.page, len(cursor.ids)) == (2, 20)


async def test_an_old_document_approved_late_is_caught_by_a_sweep(world: TxWorld) -> None:
    """Approving an old document shifts the list under the cursor: the pass sweeps and posts it."""
    config = world.write_config()
    old = world.create()
    world.approved(40)
    await _pass(world, config)
    world.state.approve(TENANT_ID, old)
    pages = await _pass(world, config)
    assert pages[0] == 3
    assert pages[1:] == [1, 2, 3]  # the moved list was read in full
    assert old in world.check_exactly_once()


async def test_sweep_on_demand_and_when_due(world: TxWorld) -> None:
    """`sweep=True` reads from page 1; so does a pass once the last sweep is a day old."""
    config = world.write_config()
    world.approved(25)
    await _pass(world, config)
    assert await _pass(world, config, sweep=True) == [1, 2]
    async with open_runtime(config) as rt:
        cursor = rt.store.poll_cursor(COMPANY_ID, "INV")
        assert cursor is not None
        rt.store.save_poll_cursor(COMPANY_ID, "INV", cursor.page, cursor.ids,
                                  swept_at=datetime.now(UTC) - timedelta(hours=25))
    assert await _pass(world, config) == [1, 2]
    assert await _pass(world, config) == [2]


def test_cursor_rules() -> None:
    """Resume after a full page, re-read a short one; moved lists and due sweeps are seen."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    full = CursorRow(COMPANY_ID, "INV", 4, tuple(str(i) for i in range(20)), now, now)
    short = CursorRow(COMPANY_ID, "INV", 4, ("a", "b"), now, now)
    assert (resume_page(full, 20), resume_page(short, 20)) == (5, 4)
    assert not moved(full, 20, None)
    assert not moved(full, 20, ["x"])
    assert moved(full, 20, ["19", "x"])
    assert not moved(short, 20, ["a", "b", "c"])
    assert moved(short, 20, ["b", "c"])
    assert moved(short, 20, None)
    empty = CursorRow(COMPANY_ID, "ORD", 1, (), now, now)
    assert not moved(empty, 20, None)
    assert sweep_due(None, now, timedelta(days=1))
    assert not sweep_due(full, now + timedelta(hours=23), timedelta(days=1))
    assert sweep_due(full, now + timedelta(days=1), timedelta(days=1))
