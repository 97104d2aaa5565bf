"""Prometheus metrics of the daemon, in a registry of its own (no process-global state).

Exposed on ``GET /metrics``. The families (every name starts ``icsync_``):

- ``job_runs_total{company,job,outcome}`` and ``job_duration_seconds{company,job}``: each run;
- ``job_missed_runs_total{company,job}``: schedule slots that were due while the job was still
  running or the daemon was down, coalesced into one run (and written in the run record);
- ``job_skipped_total{company,job,reason}``: ``lease_held`` (another instance runs it) or
  ``running``; ``job_running{company,job}``; ``job_consecutive_failures{company,job}``;
  ``lease_lost_total{company,job}``;
- ``records_total{company,job,kind,outcome}``: created, edited, deleted, unchanged, rejected,
  failed for reference data; seen, posted, written_back, quarantined, failed for transactions;
- ``api_calls_total{route,status,outcome}`` and ``api_call_duration_seconds{route}``: every
  iCompleat call (the client's ``on_call`` hook); status ``none`` when there was no answer;
- ``quarantine_size{company,kind}``: open quarantined rows (kind ``transactions`` for documents);
- ``ledger_backlog{company,status}``: transactions not yet written back, by ledger status;
- ``ledger_oldest_waiting_seconds{company}``: how long the oldest transaction not yet posted
  has waited (0 when none waits);
- ``alerts_active{condition}``: alert conditions active now; ``alerts_pending``: messages
  waiting to be sent; ``alerts_sent_total{event}`` (start, update, clear) and
  ``alert_send_failures_total`` (a failed send is retried later);
- ``seconds_since_last_success{company,kind}`` (monotonic, immune to clock steps) and
  ``last_success_timestamp_seconds{company,kind}`` (wall clock).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class CallLike(Protocol):
    """What the client reports for each call (connectors.icompleat.client.CallRecord)."""

    @property
    def route(self) -> str: ...

    @property
    def status(self) -> int | None: ...

    @property
    def seconds(self) -> float: ...

    @property
    def outcome(self) -> str: ...


class _SinceLastSuccess:
    """A collector computing seconds since each (company, kind) last succeeded, at scrape."""

    def __init__(self) -> None:
        self.monotonic: dict[tuple[str, str], float] = {}
        self.wall: dict[tuple[str, str], float] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        since = GaugeMetricFamily("icsync_seconds_since_last_success",
                                  "Seconds since the kind last synced without failure",
                                  labels=["company", "kind"])
        stamp = GaugeMetricFamily("icsync_last_success_timestamp_seconds",
                                  "Unix time of the kind's last success",
                                  labels=["company", "kind"])
        now = time.monotonic()
        for (company, kind), at in sorted(self.monotonic.items()):
            since.add_metric([company, kind], max(0.0, now - at))
            stamp.add_metric([company, kind], self.wall[(company, kind)])
        yield since
        yield stamp


class Metrics:
    """Every metric of one daemon; methods are cheap and safe to call from the event loop."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        job = ["company", "job"]
        self.runs = Counter("icsync_job_runs_total", "Job runs by outcome",
                            [*job, "outcome"], registry=reg)
        self.duration = Histogram("icsync_job_duration_seconds", "Job run time", job,
                                  buckets=_BUCKETS, registry=reg)
        self.missed = Counter("icsync_job_missed_runs_total",
                              "Due slots coalesced into a later run", job, registry=reg)
        self.skipped = Counter("icsync_job_skipped_total", "Runs not started, by reason",
                               [*job, "reason"], registry=reg)
        self.running = Gauge("icsync_job_running", "1 while the job runs here", job, registry=reg)
        self.failures = Gauge("icsync_job_consecutive_failures", "Failed runs in a row", job,
                              registry=reg)
        self.lease_lost = Counter("icsync_lease_lost_total", "Runs stopped by a lost lease", job,
                                  registry=reg)
        self.records = Counter("icsync_records_total", "Records handled, by outcome",
                               [*job, "kind", "outcome"], registry=reg)
        self.api_calls = Counter("icsync_api_calls_total", "iCompleat calls",
                                 ["route", "status", "outcome"], registry=reg)
        self.api_seconds = Histogram("icsync_api_call_duration_seconds", "iCompleat call time",
                                     ["route"], buckets=_API_BUCKETS, registry=reg)
        self.quarantine = Gauge("icsync_quarantine_size", "Open quarantined records",
                                ["company", "kind"], registry=reg)
        self.backlog = Gauge("icsync_ledger_backlog", "Transactions not yet written back",
                             ["company", "status"], registry=reg)
        self.receipts = Counter("icsync_webhook_receipts_total",
                                "Receipts pushed by iCompleat, by how they were handled",
                                ["handled"], registry=reg)
        self.backlog_age = Gauge("icsync_ledger_oldest_waiting_seconds",
                                 "Age of the oldest transaction not yet posted (seen, posting, "
                                 "posted)", ["company"], registry=reg)
        self.alerts_active = Gauge("icsync_alerts_active", "Alert conditions active now",
                                   ["condition"], registry=reg)
        self.alerts_pending = Gauge("icsync_alerts_pending", "Alert messages waiting to be sent",
                                    registry=reg)
        self.alerts_sent = Counter("icsync_alerts_sent_total", "Alert messages sent, by event",
                                   ["event"], registry=reg)
        self.alert_failures = Counter("icsync_alert_send_failures_total",
                                      "Alert sends that failed (retried later)", registry=reg)
        self._since = _SinceLastSuccess()
        reg.register(self._since)

    def on_call(self, record: CallLike) -> None:
        """The client's ``on_call`` hook: count one iCompleat call."""
        status = "none" if record.status is None else str(record.status)
        self.api_calls.labels(record.route, status, record.outcome).inc()
        self.api_seconds.labels(record.route).observe(record.seconds)

    def record_run(self, company: str, job: str, outcome: str, seconds: float) -> None:
        """Count one finished run."""
        self.runs.labels(company, job, outcome).inc()
        self.duration.labels(company, job).observe(seconds)

    def record_counts(self, company: str, job: str, kind: str,
                      counts: Mapping[str, Any]) -> None:
        """Add a run's per-outcome record counts (non-numeric entries are ignored)."""
        for outcome, value in counts.items():
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                self.records.labels(company, job, kind, outcome).inc(value)

    def mark_success(self, company: str, kind: str, *, wall: float | None = None) -> None:
        """Remember that ``kind`` of ``company`` synced cleanly (now, or at Unix time ``wall``)."""
        now_wall = time.time()
        at_wall = now_wall if wall is None else wall
        self._since.monotonic[(company, kind)] = time.monotonic() - max(0.0, now_wall - at_wall)
        self._since.wall[(company, kind)] = at_wall

    def set_quarantine(self, sizes: Iterable[tuple[str, str, int]]) -> None:
        """Replace the quarantine gauges with ``(company, kind, open rows)``."""
        self.quarantine.clear()
        for company, kind, size in sizes:
            self.quarantine.labels(company, kind).set(size)

    def set_backlog(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """Replace the ledger backlog gauges with ``(company, status, count)``."""
        self.backlog.clear()
        for company, status, count in rows:
            self.backlog.labels(company, status).set(count)

    def set_backlog_age(self, ages: Mapping[str, float]) -> None:
        """Replace the oldest-waiting gauges with ``company -> seconds``."""
        self.backlog_age.clear()
        for company, seconds in sorted(ages.items()):
            self.backlog_age.labels(company).set(seconds)

    def set_alerts(self, active: Mapping[str, int], pending: int) -> None:
        """Replace the active-condition gauges; set the number of messages waiting."""
        self.alerts_active.clear()
        for condition, count in sorted(active.items()):
            self.alerts_active.labels(condition).set(count)
        self.alerts_pending.set(pending)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
