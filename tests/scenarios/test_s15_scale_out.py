"""S15: two and five `icsync run` processes on one PostgreSQL state DB; kill the leader.

Pass: never two runners of one job at once (every run's start and end, with its holder, is in
the shared runs table: no two runs of a job overlap; the killed leader's open run ends at its
kill); the follower takes over within the lease time (plus one 1 s slot); L = D = 0 for the
transactions (each approved one has exactly one ERP entry and iCompleat shows its journal
number) and for the reference data (each kind's records created by ONE call in total).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.faults import Fault
from sync.state.store import StateStore
from tests.daemon.world import (
    approve,
    exactly_once,
    json_lines,
    overlaps,
    remote_journals,
    run_holders,
    sql_sink,
    start_daemon,
    stop,
    wait_until,
    write_config,
)
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
LEASE = 3.0
JOB = "acme:transactions"


def _kill_leader(store: StateStore, procs: list[subprocess.Popen[bytes]]) -> tuple[int, float]:
    """SIGKILL the process holding the transactions lease while it runs; (pid, when)."""
    pids = {str(p.pid): p for p in procs if p.poll() is None}

    def leader() -> str | None:
        # Only the lease holder can record a run (fenced): wait until its run is recorded and
        # still going, so the kill lands mid-run and the run row shows who held the work.
        running = any(r.job == "transactions" and r.finished_at is None
                      for r in store.last_runs("acme", 50))
        for lease in store.leases():
            pid = lease.holder.split(":")[1]
            if running and lease.name == JOB and lease.live and pid in pids:
                return pid
        return None

    pid = wait_until(leader, 30, "a daemon running the transactions job")
    os.kill(int(pid), signal.SIGKILL)
    killed = time.time()
    pids[pid].wait(5)
    return int(pid), killed


@pytest.mark.parametrize("count", [2, 5])
def test_one_runner_per_job_and_failover(count: int, tmp_path: Path, sandbox: SandboxServer,
                                         pg_database_url: str) -> None:
    """N daemons share the work; the leader dies mid-run; nothing is lost or doubled."""
    erp = tmp_path / "erp.db"
    sandbox.state.faults.set("transaction.edit", Fault(latency=0.15))
    approve(sandbox, range(1, 11))
    config = write_config(tmp_path, sandbox.url, state_url=pg_database_url, lease_seconds=LEASE,
                          schedules={"reference": "2s", "transactions": "1s"},
                          sink=sql_sink(erp), service={"shutdown_seconds": 5})
    logs = [tmp_path / f"daemon{i}.log" for i in range(count)]
    procs = [start_daemon(config, log) for log in logs]
    store = StateStore.open(pg_database_url)
    try:
        wait_until(lambda: all(any(line.get("event") == "daemon_ready" for line in json_lines(log))
                          for log in logs), 120, "every daemon ready")
        approve(sandbox, range(11, 31))
        pid, killed = _kill_leader(store, procs)
        for wave in range(3):  # work keeps arriving while the survivors share it
            approve(sandbox, range(31 + 5 * wave, 36 + 5 * wave))
            time.sleep(1)
        wait_until(lambda: all(remote_journals(sandbox).values()), 60, "every journal written back")
        runs = store.last_runs("acme", 100_000)
    finally:
        codes = [stop(p) for p in procs if p.poll() is None]
        store.close()
    assert codes == [0] * (count - 1)
    holders = run_holders(logs)
    # Every run names its holder from its start (the killed leader's open run too, even if
    # it died before logging job_started), and agrees with the holder's own log.
    assert all(r.counts.get("holder") for r in runs), [r for r in runs if not r.counts]
    assert all(r.counts["holder"] == holders[r.id] for r in runs if r.id in holders)
    assert overlaps(runs, holders, {str(pid): killed}) == []
    movers = {holders.get(r.id) for r in runs if r.job == "transactions"}
    assert len(movers) >= 2, "the work did not move to another instance"
    after = sorted(r.started_at.timestamp() for r in runs
                   if r.job == "transactions" and r.started_at.timestamp() > killed)
    assert after, "no instance took the job over"
    takeover = after[0] - killed
    print(f"S15 count={count} takeover={takeover:.2f}s runs={len(runs)}")
    assert takeover <= LEASE + 1.0 + 1.5
    lost, doubled, unexpected, disagree = exactly_once(sandbox, erp)
    assert (lost, doubled, unexpected, disagree) == ([], {}, [], {})
    assert len(remote_journals(sandbox)) == 45
    # Each kind created by ONE call that reached the records. A call the killed leader was
    # still sending when it died (its body cut short: the sandbox applied nothing, status 0,
    # fault "client-gone") is not one of them; the survivor's run sends it again.
    for route in ("taxcodes.post", "accountcodes.post"):
        calls = [e for e in sandbox.state.log.entries() if e.route == route]
        assert [e.status for e in calls if e.fault != "client-gone"] == [200], calls
        assert all(e.status == 0 for e in calls if e.fault == "client-gone"), calls
    codes_remote = {r["Code"] for r in sandbox.state.records(TENANT_ID, COMPANY_ID, "tax_codes")}
    assert codes_remote == {"T0", "T1"}
