"""Each alert condition triggered for real in the daemon, seen at real local receivers.

Every test checks that the SMTP and the HTTP receiver each got exactly one start message and one
clear message for the condition, and that no secret appears in any message.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.daemon.alerting import Alerter
from sync.daemon.channels import build_channels
from sync.daemon.jobs import ScheduledJob
from sync.daemon.metrics import Metrics
from sync.daemon.service import Daemon
from sync.foundation.config import Config
from sync.foundation.tomlout import toml_value
from sync.state.store import Fence, QuarantineEntry, StateStore
from sync.transactions.rules import RESOLVED_PREFIX
from tests.daemon.receivers import HTTP_PASSWORD, Inbox, Receivers, receivers
from tests.daemon.world import (
    ROOT,
    TAX_CODES,
    WEBHOOK_TOKEN,
    approve,
    child_env,
    load,
    running_daemon,
    wait_for,
    write_config,
)
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

__all__ = ["receivers"]


def alert_config(root: Path, sandbox: SandboxServer, rx: Receivers, *,
                 api_key: str = CANARY_KEY, state_url: str | None = None,
                 **alerts: Any) -> Config:
    """A daemon config on the sandbox whose alerts go to both receivers."""
    root.mkdir(parents=True, exist_ok=True)
    path = write_config(root, sandbox.url, api_key=api_key, lease_seconds=1.5,
                        state_url=state_url)
    settings = {"urls_file": str(rx.urls_file), "check_seconds": 0.2, "retry_seconds": 0.2,
                "failing_runs_count": 2, **alerts}
    extra = "\n[alerts]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in settings.items())
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return load(path)


def job(daemon: Daemon, name: str) -> ScheduledJob:
    """The daemon's job called ``name``."""
    return next(j for j in daemon.jobs if j.name == name)


async def first_run(daemon: Daemon, name: str) -> ScheduledJob:
    """The job, once its start-up run has finished."""
    found = job(daemon, name)
    await wait_for(lambda: found.last, 20, f"the first {name} run")
    await asyncio.sleep(0.3)  # its alert check runs after it
    return found


async def started(daemon: Daemon) -> ScheduledJob:
    """The poll job, once BOTH start-up runs and their alert checks are over: a check running
    beside a test's setup would see half of it (and alert on that half)."""
    await first_run(daemon, "acme:reference")
    return await first_run(daemon, "acme:transactions")


async def arrived(rx: Receivers, test: Callable[[Inbox], Any], what: str) -> None:
    """Wait (without blocking the loop) until both receivers pass ``test``."""
    await wait_for(lambda: all(test(i) for i in rx.inboxes()), 20, what)


def assert_once(rx: Receivers, needle: str) -> None:
    """Exactly one start and one clear about ``needle`` at each receiver; no secret anywhere."""
    for inbox in rx.inboxes():
        assert len(inbox.starts(needle)) == 1, inbox.titles()
        assert len(inbox.clears(needle)) == 1, inbox.titles()
    text = rx.all_text()
    for secret in (CANARY_KEY, WEBHOOK_TOKEN, HTTP_PASSWORD):
        assert secret not in text


def state(root: Path) -> StateStore:
    """The daemon's state DB, opened beside it."""
    return StateStore.open(f"sqlite:///{root / 'state.db'}")


async def test_guard_block_alerts_when_it_starts_and_when_it_clears(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """Emptying the source blocks the sync: one start; a later clean run: one clear."""
    config = alert_config(tmp_path, sandbox, receivers)
    async with running_daemon(config) as (daemon, _):
        reference = await first_run(daemon, "acme:reference")
        assert daemon.rt is not None
        source: Any = daemon.rt.source("erp")
        source.set_rows("tax_codes", [])
        assert (await reference()).outcome == "blocked"
        await arrived(receivers, lambda i: i.starts("guard blocked"), "the guard alert")
        assert (await reference()).outcome == "blocked"  # still blocked: nothing new to say
        source.set_rows("tax_codes", TAX_CODES)
        assert (await reference()).outcome == "ok"
        await arrived(receivers, lambda i: i.clears("guard blocked"), "the guard clear")
    assert_once(receivers, "guard blocked")
    assert "allow" in receivers.smtp.messages[0][1]


async def test_failing_runs_alert_after_n_in_a_row(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """Two failed polls in a row: one start; a healthy poll: one clear."""
    sandbox.state.faults.set("transactions.list", error_rate=1.0, error_status=500)
    config = alert_config(tmp_path, sandbox, receivers)
    async with running_daemon(config) as (daemon, _):
        poll = await started(daemon)
        assert receivers.smtp.titles() == []  # one failure is not yet a streak
        await poll()
        await arrived(receivers, lambda i: i.starts("failed 2 runs"), "the streak alert")
        await poll()
        sandbox.state.faults.clear()
        assert (await poll()).outcome == "ok"
        await arrived(receivers, lambda i: i.clears("failed 2 runs"), "the streak clear")
    assert_once(receivers, "failed 2 runs")


async def test_rejected_credentials_alert_before_exit_5_and_clear_on_a_good_key(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """A 401 stops the daemon (exit 5) after its alert went out; a good key clears it."""
    config = alert_config(tmp_path, sandbox, receivers, api_key="not-the-sandbox-key-4711")
    assert await asyncio.wait_for(Daemon(config).serve(), 30) == 5
    await arrived(receivers, lambda i: i.starts("rejected the security key"), "the 401 alert")
    config = alert_config(tmp_path, sandbox, receivers)
    async with running_daemon(config) as (daemon, _):
        assert (await job(daemon, "acme:reference")()).outcome == "ok"
        await arrived(receivers, lambda i: i.clears("rejected the security key"), "the clear")
    assert_once(receivers, "rejected the security key")
    assert "not-the-sandbox-key-4711" not in receivers.all_text()


async def test_quarantine_is_one_digest_per_run_and_clears_when_resolved(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """An ERP-refused invoice and a bad record: one digest naming both; resolved: one clear."""
    config = alert_config(tmp_path, sandbox, receivers, check_seconds=600)  # runs check
    async with running_daemon(config) as (daemon, _):
        poll = await started(daemon)
        assert daemon.rt is not None
        refused, fine = approve(sandbox, [1, 2])
        sink: Any = daemon.rt.sink("erp")
        sink.inner.reject(refused, "supplier on hold in the ERP")
        store = daemon.rt.store
        store.quarantine("acme", "suppliers", [QuarantineEntry("S-9", "bad_iban", "S-9: IBAN")])
        assert (await poll()).outcome == "partial"
        await arrived(receivers, lambda i: i.starts("quarantined"), "the digest")
        await poll()  # the same rows again: no second digest
        await asyncio.sleep(0.5)
        store.set_quarantine_status([r.id for r in store.quarantined("acme")], "resolved")
        assert store.ledger_transition(COMPANY_ID, refused, expect=["quarantined"],
                                       to="quarantined", last_error=f"{RESOLVED_PREFIX}: test",
                                       next_attempt_at=None)
        await poll()  # the check after this run finds nothing left open
        await arrived(receivers, lambda i: i.clears("quarantined"), "the quarantine clear")
    assert_once(receivers, "quarantined")
    digest = receivers.http.inbox.messages[0][1]
    assert refused in digest
    assert "supplier on hold" in digest
    assert "S-9" in digest
    assert fine not in digest


async def test_journal_number_mismatch_alerts_and_clears_when_resolved(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """iCompleat shows another journal number than the ERP gave: one start; resolved: a clear."""
    config = alert_config(tmp_path, sandbox, receivers)
    async with running_daemon(config) as (daemon, _):
        poll = await started(daemon)
        assert daemon.rt is not None
        (tx_id,) = approve(sandbox, [7])
        sandbox.state.faults.set("transaction.edit", error_rate=1.0, error_status=500)
        await poll()  # posted in the ERP, the write-back failed
        sandbox.state.faults.clear()
        sandbox.state.edit_transaction(TENANT_ID, tx_id, {"JournalNumber": "OTHER-9"})
        await poll()
        await arrived(receivers, lambda i: i.starts("journal numbers differ"), "the alarm")
        assert not receivers.smtp.starts("quarantined")  # the alarm is not also a digest
        store = daemon.rt.store
        assert store.ledger_transition(COMPANY_ID, tx_id, expect=["quarantined"],
                                       to="quarantined", last_error=f"{RESOLVED_PREFIX}: fixed",
                                       next_attempt_at=None)
        await arrived(receivers, lambda i: i.clears("journal numbers differ"), "the clear")
    assert_once(receivers, "journal numbers differ")
    assert "OTHER-9" in receivers.smtp.messages[0][1]


async def test_lease_lost_to_another_instance_alerts_and_clears(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """Another instance takes the lease mid-run: one start; the next clean run: one clear."""
    config = alert_config(tmp_path, sandbox, receivers)
    async with running_daemon(config) as (daemon, _):
        poll = await started(daemon)
        assert daemon.rt is not None
        store = daemon.rt.store
        sandbox.state.faults.set("transactions.list", latency=4.0)
        running = asyncio.create_task(poll())
        held = await wait_for(lambda: [lease for lease in store.leases()
                                       if lease.name == "acme:transactions" and lease.live], 10,
                              "the poll's lease")
        store.release_lease(Fence(held[0].name, held[0].holder, held[0].token))
        thief = store.acquire_lease("acme:transactions", "other-host:1:abc", 30)
        assert thief is not None
        assert (await asyncio.wait_for(running, 15)).outcome == "lease_lost"
        await arrived(receivers, lambda i: i.starts("lost its lease"), "the lease alert")
        store.release_lease(thief)
        sandbox.state.faults.clear()
        assert (await poll()).outcome == "ok"
        await arrived(receivers, lambda i: i.clears("lost its lease"), "the lease clear")
    assert_once(receivers, "lost its lease")


async def test_old_ledger_backlog_alerts_and_clears(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """A transaction waiting past the threshold: one start; written back: one clear."""
    config = alert_config(tmp_path, sandbox, receivers, ledger_backlog_minutes=0.01)
    async with running_daemon(config) as (daemon, _):
        await started(daemon)
        assert daemon.rt is not None
        store = daemon.rt.store
        store.ledger_seen(COMPANY_ID, "tx-stuck-1", "INV")
        await arrived(receivers, lambda i: i.starts("have waited over"), "the backlog alert")
        assert store.ledger_transition(COMPANY_ID, "tx-stuck-1", expect=["seen"],
                                       to="written_back", journal_number="J-1")
        await arrived(receivers, lambda i: i.clears("have waited over"), "the backlog clear")
    assert_once(receivers, "have waited over")


async def test_failed_send_is_counted_retried_and_never_doubled(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """The HTTP channel answers 500 once: counted in /metrics, retried; SMTP gets it once."""
    receivers.http.fail_next = 1
    config = alert_config(tmp_path, sandbox, receivers)
    async with running_daemon(config) as (daemon, url):
        await started(daemon)
        assert daemon.rt is not None
        daemon.rt.store.ledger_seen(COMPANY_ID, "tx-stuck-2", "INV")
        daemon.rt.store.ledger_transition(COMPANY_ID, "tx-stuck-2", expect=["seen"],
                                          to="quarantined", last_error="ERP refused: closed")
        await arrived(receivers, lambda i: i.starts("quarantined"), "the retried digest")
        await wait_for(lambda: daemon.metrics.alerts_sent.labels("start")._value.get(), 10,
                       "the send recorded")
        async with httpx.AsyncClient(trust_env=False) as http:
            text = (await http.get(f"{url}/metrics")).text
    assert "icsync_alert_send_failures_total 1.0" in text
    assert 'icsync_alerts_sent_total{event="start"} 1.0' in text
    assert receivers.http.requests == 2
    assert len(receivers.smtp.starts("quarantined")) == 1


def test_capability_change_alerts_once_and_clears_when_back(
        tmp_path: Path, receivers: Receivers) -> None:
    """A route capability change, noted by two instances, is one start; back again, one clear."""
    config = alert_config(tmp_path, _NoSandbox(), receivers)
    with state(tmp_path) as one, state(tmp_path) as two:
        assert one.note_capability_change("suppliers.list", "paging", "token", "page") == "start"
        assert two.note_capability_change("suppliers.list", "paging", "token", "page") is None
        assert one.note_capability_change("suppliers.list", "paging", "page", "none") is None
        assert two.note_capability_change("suppliers.list", "paging", "none", "token") == "clear"
        alerter = Alerter(one, config.settings, build_channels(config.alert_urls), Metrics(),
                          "host:1:a")
        assert asyncio.run(alerter.send_due()) == 2
    receivers.wait(lambda i: len(i.titles()) == 2, what="the capability messages")
    assert_once(receivers, "suppliers.list")


def test_rate_limit_holds_messages_over_the_hourly_budget(
        tmp_path: Path, receivers: Receivers) -> None:
    """With max_per_hour = 2, three queued messages: two go out, the third waits."""
    config = alert_config(tmp_path, _NoSandbox(), receivers, max_per_hour=2)
    with state(tmp_path) as store:
        for n in range(3):
            store.note_capability_change(f"route{n}.list", "paging", "token", "page")
        alerter = Alerter(store, config.settings, build_channels(config.alert_urls), Metrics(),
                          "host:1:a")
        assert asyncio.run(alerter.send_due()) == 2
        assert asyncio.run(alerter.send_due()) == 0
        assert len(store.alert_messages(pending=True)) == 1


class _NoSandbox:
    """Stands in for the sandbox where a test talks to no iCompleat at all."""

    url = "http://127.0.0.1:9"


@pytest.mark.parametrize("fail", [False, True])
def test_alerts_test_command_reaches_every_channel(
        tmp_path: Path, receivers: Receivers, fail: bool) -> None:
    """`icsync alerts test` delivers to both receivers (exit 0); a dead channel makes exit 1."""
    alert_config(tmp_path, _NoSandbox(), receivers)
    if fail:
        receivers.http.fail_next = 5
    done = subprocess.run([sys.executable, "-m", "sync.cli", "alerts", "test", "--config",
                           str(tmp_path / "icsync.toml")], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == (1 if fail else 0), done.stdout + done.stderr
    assert "channel 1 (mailto://" in done.stdout
    assert HTTP_PASSWORD not in done.stdout + done.stderr
    assert len(receivers.smtp.starts("test alert")) == 1
    assert len(receivers.http.inbox.starts("test alert")) == (0 if fail else 1)


def test_alerts_list_shows_active_conditions_and_waiting_messages(
        tmp_path: Path, receivers: Receivers) -> None:
    """`icsync alerts list` prints each active condition and each message not yet sent."""
    alert_config(tmp_path, _NoSandbox(), receivers)
    with state(tmp_path) as store:
        store.note_capability_change("taxcodes.list", "paging", "token", "page")
    done = subprocess.run([sys.executable, "-m", "sync.cli", "alerts", "list", "--config",
                           str(tmp_path / "icsync.toml")], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "capability:taxcodes.list:paging" in done.stdout
    assert "waiting (attempts 0)  start:capability:taxcodes.list:paging" in done.stdout


@pytest.mark.postgres
async def test_two_daemons_on_one_postgresql_state_db_send_each_alert_once(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers,
        pg_database_url: str) -> None:
    """Both instances see the same quarantined row and its fix: one digest, one clear."""
    one = alert_config(tmp_path / "a", sandbox, receivers, state_url=pg_database_url)
    two = alert_config(tmp_path / "b", sandbox, receivers, state_url=pg_database_url)
    async with running_daemon(one) as (first, _), running_daemon(two) as (second, _):
        await first_run(first, "acme:transactions")
        assert first.rt is not None
        assert second.rt is not None
        store = first.rt.store
        store.quarantine("acme", "suppliers", [QuarantineEntry("S-7", "bad_vat", "S-7: VAT")])
        await arrived(receivers, lambda i: i.starts("quarantined"), "the digest")
        await asyncio.sleep(1.0)  # both instances have checked several times by now
        store.set_quarantine_status([r.id for r in store.quarantined("acme")], "resolved")
        await arrived(receivers, lambda i: i.clears("quarantined"), "the clear")
        await asyncio.sleep(1.0)
    assert_once(receivers, "quarantined")


async def test_a_hanging_channel_never_slows_a_run(
        tmp_path: Path, sandbox: SandboxServer, receivers: Receivers) -> None:
    """The HTTP channel hangs past the send timeout: runs take no longer, the send is retried."""
    config = alert_config(tmp_path, sandbox, receivers, send_timeout_seconds=1)
    async with running_daemon(config) as (daemon, _):
        reference = await first_run(daemon, "acme:reference")
        assert daemon.rt is not None
        quiet = (await reference()).seconds
        receivers.http.delay = 4.0
        daemon.rt.source("erp").set_rows("tax_codes", [])  # type: ignore[attr-defined]
        started = time.monotonic()
        blocked = await reference()
        assert blocked.outcome == "blocked"
        assert time.monotonic() - started < 1.0 + quiet * 2
        await arrived(receivers, lambda i: i is receivers.http.inbox or i.starts("guard"),
                      "the e-mail")
        await wait_for(lambda: daemon.metrics.alert_failures._value.get(), 10, "a failure")
        receivers.http.delay = 0.0
        await arrived(receivers, lambda i: i.starts("guard blocked"), "the retried webhook")
    assert len(receivers.smtp.starts("guard blocked")) == 1


def test_a_check_that_read_before_a_resolve_never_starts_the_alarm_again(
        tmp_path: Path, receivers: Receivers, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two state checks overlap (one after a run, one on the timer): the first reads the ledger
    while a journal mismatch is open, an operator resolves it, the second reads after that.
    However late the first one records what it saw, the alarm has one start and one clear,
    and ends clear (checks record in the order they read)."""
    from sync.transactions.rules import journal_conflict

    config = alert_config(tmp_path, _NoSandbox(), receivers)
    company = config.settings.companies[0]
    with state(tmp_path) as store:
        store.ledger_seen(company.company_id, "tx1", "invoice")
        store.ledger_transition(company.company_id, "tx1", expect=["seen"], to="quarantined",
                                journal_number="J1", last_error=journal_conflict("tx1", "J1", "X"))
        alerter = Alerter(store, config.settings, [], Metrics(), "host:1:a")
        asyncio.run(alerter.check_state())
        reading, go_on = threading.Event(), threading.Event()
        real = store.ledger_rows
        calls: list[int] = []

        def slow_first(*args: Any, **kwargs: Any) -> Any:
            rows = real(*args, **kwargs)
            calls.append(1)
            if len(calls) == 1:  # the first check has read the open mismatch: it waits here
                reading.set()
                go_on.wait(30)
            return rows

        monkeypatch.setattr(store, "ledger_rows", slow_first)

        async def overlap() -> None:
            first = asyncio.create_task(alerter.check_state())
            assert await asyncio.to_thread(reading.wait, 30)
            assert store.ledger_transition(company.company_id, "tx1", expect=["quarantined"],
                                           to="quarantined", next_attempt_at=None,
                                           last_error=f"{RESOLVED_PREFIX}: fixed in the ERP")
            second = asyncio.create_task(alerter.check_state())
            await asyncio.sleep(0.5)  # room for the second check to record before the first
            go_on.set()
            await asyncio.gather(first, second)

        asyncio.run(overlap())
        events = [m.event for m in store.alert_messages(limit=100)
                  if m.key.startswith("journal_mismatch:")]
        assert sorted(events) == ["clear", "start"]
        assert not [c for c in store.alert_conditions() if c.key.startswith("journal_mismatch:")]
