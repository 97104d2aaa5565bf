"""S06: a slow and a hung iCompleat, a hung ERP source, a hung (locked) state database.

Pass: every call is bounded by its deadline; a hung dependency ends the run cleanly (a failed or
partial outcome with an error naming what hung and what to check, never a crash or a stuck job);
the lease is released; the daemon keeps serving and stops cleanly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.faults import Fault
from sync.daemon.jobs import ScheduledJob
from sync.daemon.service import Daemon
from sync.foundation.tomlout import toml_value
from sync.runtime.jobrun import JobReport
from sync.state.store import StateStore
from tests.daemon.world import load, running_daemon, wait_for, write_config

FAST = {"timeout_seconds": 1, "max_attempts": 2, "backoff_seconds": 0.05,
        "max_backoff_seconds": 0.1}


def _job(daemon: Daemon, job: str) -> ScheduledJob:
    return next(j for j in daemon.jobs if j.name == f"acme:{job}")


async def _first(daemon: Daemon, job: str, seconds: float = 30) -> JobReport:
    runner = _job(daemon, job)
    report: JobReport = await wait_for(lambda: runner.last, seconds, f"the first {job} run")
    return report


def _no_live_lease(url: str) -> bool:
    with StateStore.open(url) as store:
        return not [lease for lease in store.leases() if lease.live]


@pytest.fixture
def clear_faults(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The sandbox, with hangs released before the daemon is stopped."""
    yield sandbox
    sandbox.state.faults.clear()


async def test_slow_icompleat_is_waited_for(tmp_path: Path, sandbox: SandboxServer) -> None:
    """Latency under the deadline: the runs take longer and succeed."""
    sandbox.state.faults.set("*", Fault(latency=0.3))
    config = load(write_config(tmp_path, sandbox.url, icompleat={**FAST, "timeout_seconds": 3}))
    async with running_daemon(config) as (daemon, _url):
        reference = await _first(daemon, "reference")
        poll = await _first(daemon, "transactions")
    assert (reference.outcome, poll.outcome) == ("ok", "ok")
    assert reference.seconds >= 0.3 * 3
    assert _no_live_lease(f"sqlite:///{tmp_path / 'state.db'}")


async def test_hung_icompleat_ends_the_runs_within_their_deadlines(
        tmp_path: Path, clear_faults: SandboxServer) -> None:
    """Every call hangs: each attempt is cut at 1 s, the runs end with the reason, leases free."""
    clear_faults.state.faults.set("*", Fault(hang=True))
    config = load(write_config(tmp_path, clear_faults.url, icompleat=FAST))
    started = time.monotonic()
    async with running_daemon(config) as (daemon, _url):
        reference = await _first(daemon, "reference")
        poll = await _first(daemon, "transactions")
        took = time.monotonic() - started
        clear_faults.state.faults.clear()
    # two kinds (reads: 2 attempts of 1 s each) plus start-up; never the hang itself
    assert took < 15
    assert reference.outcome in ("failed", "partial"), reference
    assert poll.outcome in ("failed", "partial"), poll
    for report in (reference, poll):
        assert report.seconds <= 2 * (2 * 1 + 0.2) + 1
        assert "no answer within the timeout" in (report.error or ""), report
    assert _no_live_lease(f"sqlite:///{tmp_path / 'state.db'}")


@pytest.mark.postgres
async def test_hung_erp_source_is_cut_by_its_statement_timeout(
        tmp_path: Path, sandbox: SandboxServer, pg_database_url: str) -> None:
    """A source query that sleeps is stopped after 1 s: that kind is partial, the other lands."""
    source = "\n".join([
        'type = "sql"', f'url = "{pg_database_url}"', "timeout_seconds = 1",
        "[sources.erp.kinds.tax_codes]",
        "query = " + toml_value("""SELECT 'T1' AS "Code", 'Std' AS "Name", 20 AS "Rate" """
                                "FROM pg_sleep(60)"),
        "[sources.erp.kinds.account_codes]",
        "query = " + toml_value("SELECT '4000' AS \"Code\", 'Sales' AS \"Name\""),
    ])
    config = load(write_config(tmp_path, sandbox.url, source=source, icompleat=FAST))
    async with running_daemon(config) as (daemon, _url):
        report = await _first(daemon, "reference")
    assert report.outcome == "partial", report
    assert report.seconds < 10
    assert report.kinds["account_codes"].get("failed", 0) == 0
    assert _no_live_lease(f"sqlite:///{tmp_path / 'state.db'}")
    codes = {r["Code"] for r in sandbox.state.records(
        "3f2c8a1e-5b7d-4c9e-8f10-6a2b4c6d8e01", "7d4e2b90-1c3a-4f5e-9b8d-0e1f2a3b4c5d",
        "account_codes")}
    assert codes == {"4000"}


@pytest.mark.postgres
async def test_locked_state_db_fails_the_runs_cleanly(
        tmp_path: Path, sandbox: SandboxServer, pg_database_url: str) -> None:
    """Another session locks the runs and ledger tables: the runs fail on the 1 s lock timeout
    with the database named, the daemon stays up, and the leases are released."""
    config = load(write_config(tmp_path, sandbox.url, state_url=pg_database_url,
                               state={"timeout_seconds": 1}, icompleat=FAST))
    StateStore.open(pg_database_url).close()  # the schema exists before it is locked
    locker = create_engine(pg_database_url, poolclass=NullPool)
    with locker.connect() as conn:
        conn.execute(text("LOCK TABLE runs, ledger IN ACCESS EXCLUSIVE MODE"))
        async with running_daemon(config) as (daemon, _url):
            reports: list[Any] = [await _first(daemon, job) for job in ("reference",
                                                                        "transactions")]
            conn.rollback()
    for report in reports:
        assert report.outcome == "failed", report
        assert "state database" in (report.error or ""), report
        assert report.seconds < 10
    assert _no_live_lease(pg_database_url)
