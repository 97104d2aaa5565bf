"""S16: a leader paused past its lease (SIGSTOP/SIGCONT), or cut off from the state database.

Two `icsync run` processes share a PostgreSQL state DB; daemon A reaches iCompleat (and the
state DB) through recording proxies. Paused: A stops itself at the exact worst moment, after the
ledger says "posted" and before it writes the journal number to iCompleat (``ICSYNC_PAUSE_AT``),
B takes over, then A is continued. Partitioned: A's path to the state DB goes dark mid-run.
Pass: A finds its lease lost, A sends NO write to iCompleat from the moment its lease may have
expired until it wins a new lease, B takes over within the lease time, and every approved
transaction has exactly one ERP entry with its journal number in iCompleat (L = D = 0).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.faults import Fault
from sync.state.store import StateStore
from tests.daemon.proxy import TcpProxy
from tests.daemon.world import (
    approve,
    exactly_once,
    json_lines,
    remote_journals,
    sql_sink,
    start_daemon,
    stop,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
LEASE = 2.0
JOB = "acme:transactions"


def _stamp(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["timestamp"]).timestamp()


def _events(log: Path, event: str, after: float = 0.0) -> list[dict[str, Any]]:
    return [line for line in json_lines(log)
            if line.get("event") == event and _stamp(line) > after]


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "T"


def _holder(store: StateStore) -> str | None:
    for lease in store.leases():
        if lease.name == JOB and lease.live:
            return lease.holder.split(":")[1]
    return None


@dataclass
class Pair:
    """Daemon A behind proxies and daemon B direct, on one state DB, one ERP, one sandbox."""

    root: Path
    sandbox: SandboxServer
    api: TcpProxy
    db: TcpProxy
    config_a: Path
    config_b: Path
    erp: Path

    @property
    def log_a(self) -> Path:
        return self.root / "a.log"

    @property
    def log_b(self) -> Path:
        return self.root / "b.log"

    def check(self, *, lost_at: float) -> None:
        """A noticed the loss, sent no write from ``lost_at`` to its next lease; L = D = 0."""
        noticed = _events(self.log_a, "lease_lost", lost_at - LEASE) + [
            line for line in _events(self.log_a, "job_finished", lost_at - LEASE)
            if line.get("outcome") == "lease_lost"]
        assert noticed, "A never noticed it lost its lease"
        regained = [_stamp(line) for line in _events(self.log_a, "job_started", lost_at)]
        assert self.api.writes(lost_at, min(regained, default=float("inf"))) == []
        assert exactly_once(self.sandbox, self.erp) == ([], {}, [], {})


@pytest.fixture
def pair(tmp_path: Path, sandbox: SandboxServer, pg_database_url: str) -> Iterator[Pair]:
    """Configs for A (through proxies) and B (direct); the proxies closed afterwards."""
    sandbox.state.faults.set("transaction.edit", Fault(latency=0.25))
    sandbox.state.faults.set("transactions.list", Fault(latency=0.3))
    host, port = sandbox.url.rsplit("//", 1)[1].split(":")
    api = TcpProxy((host, int(port)))
    pg = make_url(pg_database_url)
    db = TcpProxy((pg.host or "127.0.0.1", pg.port or 5432))
    _end_stuck_sessions(pg_database_url)
    erp = tmp_path / "erp.db"
    common: dict[str, Any] = {"lease_seconds": LEASE, "sink": sql_sink(erp),
                              "schedules": {"reference": "1h", "transactions": "1s"},
                              "service": {"shutdown_seconds": 5}}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a_state = pg.set(port=db.port).render_as_string(hide_password=False)
    # One transaction at a time in A, so that when it stops itself before a write-back it is
    # not also half-way through an ERP write (a SQLite ERP file would stay locked meanwhile).
    config_a = write_config(tmp_path / "a", f"http://127.0.0.1:{api.port}", state_url=a_state,
                            icompleat={"max_concurrency": 1}, **common)
    config_b = write_config(tmp_path / "b", sandbox.url, state_url=pg_database_url, **common)
    yield Pair(tmp_path, sandbox, api, db, config_a, config_b, erp)
    api.close()
    db.close()


def _end_stuck_sessions(url: str) -> None:
    """The deployment setting that frees a paused holder's locks: PostgreSQL ends a session
    left idle inside a transaction after 3 s (without it, a holder paused mid-transaction
    would keep its row locks, and the next holder would wait on them for as long)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        name = conn.execute(text("SELECT current_database()")).scalar_one()
        conn.execute(text(f'ALTER DATABASE "{name}" SET idle_in_transaction_session_timeout '
                          "= '3s'"))
    engine.dispose()


def test_leader_paused_before_its_write_back(pair: Pair, pg_database_url: str) -> None:
    """A stops itself between "posted" and the write-back; continued after B took over, it
    sends nothing: the write-back is refused by the lease check, B has written it back."""
    approve(pair.sandbox, range(1, 21))
    a = start_daemon(pair.config_a, pair.log_a, ICSYNC_PAUSE_AT="before_writeback")
    b = None
    try:
        wait_until(lambda: _stopped(a.pid), 90, "A pausing at its first write-back")
        paused = time.time()
        b = start_daemon(pair.config_b, pair.log_b)
        wait_until(lambda: _events(pair.log_b, "daemon_ready"), 90, "B ready")
        wait_until(lambda: all(remote_journals(pair.sandbox).values()), 60, "B writing every back")
        resumed = time.time()
        os.kill(a.pid, signal.SIGCONT)
        wait_until(lambda: _events(pair.log_a, "job_finished", resumed), 30, "A's run ending")
        approve(pair.sandbox, range(21, 26))
        wait_until(lambda: all(remote_journals(pair.sandbox).values()), 60, "the last five")
    finally:
        codes = [stop(p) for p in (a, b) if p is not None]
    assert codes == [0, 0]
    assert resumed - paused > LEASE
    ended = _events(pair.log_a, "job_finished", resumed)[0]
    assert ended["outcome"] == "lease_lost", ended
    pair.check(lost_at=resumed)
    assert len(remote_journals(pair.sandbox)) == 25


def test_leader_cut_off_from_the_state_db(pair: Pair, pg_database_url: str) -> None:
    """A's database path goes dark mid-run: A stops writing within the lease, B takes over."""
    approve(pair.sandbox, range(1, 21))
    a = start_daemon(pair.config_a, pair.log_a)
    store = StateStore.open(pg_database_url)
    b = None
    try:
        wait_until(lambda: _holder(store) == str(a.pid), 90, "A running the transactions job")
        b = start_daemon(pair.config_b, pair.log_b)
        wait_until(lambda: _events(pair.log_b, "daemon_ready"), 90, "B ready")
        numbers = iter(range(21, 1000))
        for _ in range(20):  # fresh work, until A (not B) is the one running it
            approve(pair.sandbox, [next(numbers) for _ in range(5)])
            try:
                wait_until(lambda: _holder(store) == str(a.pid), 3, "")
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("A never ran the job again")
        cut = time.time()
        pair.db.block()
        time.sleep(LEASE * 2 + 1)
        pair.db.unblock()
        approve(pair.sandbox, [next(numbers) for _ in range(5)])
        wait_until(lambda: all(remote_journals(pair.sandbox).values()), 60, "every journal")
    finally:
        codes = [stop(p) for p in (a, b) if p is not None]
        store.close()
    assert codes == [0, 0]
    takeover = [line for line in _events(pair.log_b, "job_started", cut)
                if line["job"] == "transactions"]
    assert takeover, "B never took the job over"
    assert _stamp(takeover[0]) - cut <= LEASE + 1.0 + 1.5
    pair.check(lost_at=cut + LEASE)
