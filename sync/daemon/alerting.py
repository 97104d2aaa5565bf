"""The daemon's alerter: checks conditions after each run and on a timer, and sends the outbox.

Nothing here can fail or slow a run: a job only hands its finished report to
:meth:`Alerter.observe_run`, which schedules the check as a task of its own; checks read the
state DB off the event loop; every send runs in a thread under ``[alerts]
send_timeout_seconds``. A message a channel did not take stays in the outbox, is logged and
counted (``icsync_alert_send_failures_total``), and is retried with a growing delay (at most an
hour). At shutdown :meth:`Alerter.close` gives the last checks and sends a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.daemon.alerts import Check, RunFacts, check_run, check_state, condition_of, enabled
from sync.daemon.channels import Channel
from sync.daemon.metrics import Metrics
from sync.foundation.config import Settings
from sync.foundation.errors import AlertNotSent, IcsyncError
from sync.foundation.logs import get_logger
from sync.state.alerts import OutboxRow
from sync.state.store import StateStore

log = get_logger("icsync.alerts")
MAX_DELAY = 3600.0
OPEN_LEDGER = ("seen", "posting", "posted", "quarantined")
KEEP_SENT_DAYS = 30


def retry_delay(attempts: int, base: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling, at most an hour."""
    return float(min(MAX_DELAY, base * 2 ** min(attempts, 20)))


class Alerter:
    """Checks, records and sends alerts for one daemon."""

    def __init__(self, store: StateStore, settings: Settings, channels: Sequence[Channel],
                 metrics: Metrics, holder: str) -> None:
        self.store, self.settings, self.channels = store, settings, list(channels)
        self.alerts, self.metrics, self.holder = settings.alerts, metrics, holder
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()
        # One check at a time in this process: each reads the state (or a run's history),
        # then records what it found, so a check that read before a change (an operator's
        # resolve) records before the check that read after it; otherwise its stale finding
        # would start the condition again right after the newer check cleared it. Across
        # instances, each check's ``seen_at`` does the same (sync.state.alerts).
        self._check_lock = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None
        self._closing = False

    def observe_run(self, company: str, job: str, outcome: str, error: str | None) -> None:
        """A run finished: check its conditions in the background (never raises)."""
        task = asyncio.get_running_loop().create_task(self._after_run(company, job, outcome,
                                                                      error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def closing(self) -> bool:
        """True once :meth:`close` began."""
        return self._closing

    def start(self) -> None:
        """Start checking and sending in the background (the daemon's loop)."""
        self._loop = asyncio.get_running_loop().create_task(self.loop())

    async def loop(self) -> None:
        """Check the state and send what is due, every ``check_seconds`` or when woken."""
        while not self.closing():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.alerts.check_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if self.closing():
                return
            await self.check_state()
            await self.send_due()
            with contextlib.suppress(IcsyncError):
                await asyncio.to_thread(self.store.alert_prune, KEEP_SENT_DAYS)

    async def close(self, budget: float = 5.0) -> None:
        """At shutdown: finish pending checks and sends, within ``budget`` seconds. A send
        still going at the deadline is abandoned and its claim given up, for the next start."""
        deadline = time.monotonic() + budget
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=budget / 3)
        self._closing = True
        self._wake.set()
        if self._loop is not None:
            _, pending = await asyncio.wait({self._loop}, timeout=budget / 3)
            for task in pending:
                task.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        with contextlib.suppress(TimeoutError, IcsyncError):
            await asyncio.to_thread(self.store.alert_release, self.holder)
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                await self.send_due()

    async def _after_run(self, company: str, job: str, outcome: str, error: str | None) -> None:
        try:
            async with self._check_lock:  # in the order the runs' histories were read
                seen_at = await asyncio.to_thread(self.store.alert_clock)
                history = await asyncio.to_thread(self.store.last_runs, company, 50)
                facts = RunFacts(company, job, outcome, error, history)
                await self._record(check_run(facts, self.alerts), seen_at)
            await self.check_state([company])
        except Exception as exc:  # an alert problem must never reach the job
            log.warning("alert_check_failed", company=company, job=job, error=str(exc))
        self._wake.set()

    async def check_state(self, companies: Sequence[str] | None = None) -> None:
        """Quarantine, journal mismatches and backlog of the companies (all by default); one
        check at a time, in the order they read the state."""
        async with self._check_lock:
            try:
                seen_at = await asyncio.to_thread(self.store.alert_clock)
                quarantined = await asyncio.to_thread(self.store.quarantined, None, None,
                                                      "open")
                ledger = await asyncio.to_thread(self.store.ledger_rows, None, OPEN_LEDGER)
                now = datetime.now(UTC)
                total = Check()
                for company in self.settings.companies:
                    if companies is None or company.name in companies:
                        total += check_state(company.name, company.company_id, quarantined,
                                             ledger, now, self.alerts)
                await self._record(total, seen_at)
            except Exception as exc:
                log.warning("alert_check_failed", error=str(exc))

    async def _record(self, check: Check, seen_at: float) -> None:
        """Record what a check found; ``seen_at``: when it began reading (the database's
        clock), so a stale check, recorded after a newer one, changes nothing."""
        check = enabled(check, self.alerts)
        events = await asyncio.to_thread(self.store.alert_observe, check.scope, check.findings,
                                         seen_at=seen_at)
        for event in events:
            log.info("alert_queued", alert=event)
        await self.refresh_gauges()

    async def refresh_gauges(self) -> None:
        """Active conditions by condition, and messages waiting, into /metrics."""
        active = await asyncio.to_thread(self.store.alert_conditions)
        pending = await asyncio.to_thread(self.store.alert_messages, pending=True, limit=1000)
        counts: dict[str, int] = {}
        for row in active:
            counts[condition_of(row.key)] = counts.get(condition_of(row.key), 0) + 1
        self.metrics.set_alerts(counts, len(pending))

    async def send_due(self) -> int:
        """Send every claimed due message; how many went out to every channel."""
        async with self._send_lock:
            try:
                claimed = await asyncio.to_thread(self.store.alert_claim, self.holder,
                                                  per_hour=self.alerts.max_per_hour)
            except IcsyncError as exc:
                log.warning("alert_claim_failed", error=str(exc))
                return 0
            sent = 0
            for message in claimed:
                sent += await self._send(message)
            if claimed:
                with contextlib.suppress(IcsyncError):
                    await self.refresh_gauges()
            return sent

    async def _send(self, message: OutboxRow) -> int:
        errors = []
        for channel in self.channels:
            if channel.id in message.delivered:
                continue
            try:
                await self._send_one(channel, message)
                await asyncio.to_thread(self.store.alert_delivered, message.id, self.holder,
                                        channel.id)
            except (AlertNotSent, TimeoutError) as exc:
                errors.append(str(exc) or f"{channel.name}: no answer in time")
        if not errors:
            await asyncio.to_thread(self.store.alert_sent, message.id, self.holder)
            self.metrics.alerts_sent.labels(message.event).inc()
            log.info("alert_sent", alert=f"{message.event}:{message.key}")
            return 1
        delay = retry_delay(message.attempts, self.alerts.retry_seconds)
        due = datetime.now(UTC) + timedelta(seconds=delay)
        await asyncio.to_thread(self.store.alert_retry, message.id, self.holder,
                                "; ".join(errors), due)
        self.metrics.alert_failures.inc()
        log.warning("alert_not_sent", alert=f"{message.event}:{message.key}",
                    error="; ".join(errors), retry_in_seconds=round(delay))
        return 0

    async def _send_one(self, channel: Channel, message: OutboxRow) -> None:
        timeout = self.alerts.send_timeout_seconds
        async with asyncio.timeout(timeout + 1):
            await asyncio.to_thread(channel.send, message.title, message.body, timeout=timeout)
