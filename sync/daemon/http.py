"""The daemon's HTTP endpoints: liveness, readiness, Prometheus metrics, and the webhook mount.

- ``GET /healthz``: 200 ``{"status": "alive"}`` while the event loop answers.
- ``GET /readyz``: 200 when ready; 503 with ``{"ready": false, "reasons": [...]}`` when the
  state DB does not answer within 2 s, when a job failed ``[service] failing_runs_unready``
  runs in a row (a failed, auth or crashed run; ok, partial and blocked runs reset the count),
  or while the daemon is stopping.
- ``GET /metrics``: :mod:`sync.daemon.metrics`; the quarantine and ledger-backlog gauges are
refreshed
  from the state DB at most every 10 s (bounded, so a slow DB never hangs a scrape).
- ``POST /webhooks/icompleat/{orders|invoices|credit-notes}``: the receiver of
  :func:`sync.transactions.webhook.create_webhook_routes`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.daemon.alerts import WAITING, backlog_age
from sync.daemon.console import console_routes
from sync.daemon.metrics import CONTENT_TYPE, Metrics
from sync.foundation.config import CompanyConfig, Config, Settings
from sync.foundation.errors import IcsyncError
from sync.foundation.logs import get_logger
from sync.foundation.secrets import REDACTOR
from sync.runtime.context import Runtime
from sync.runtime.jobrun import JobReport
from sync.state.store import StateStore
from sync.transactions.webhook import create_webhook_routes

log = get_logger("icsync.http")
PROBE_SECONDS = 2.0
REFRESH_SECONDS = 10.0
_OPEN_LEDGER = ("seen", "posting", "posted", "quarantined")


def oldest_waiting(store: StateStore, companies: Sequence[CompanyConfig]) -> dict[str, float]:
    """Seconds the oldest not-yet-posted transaction of each company has waited; blocking."""
    ages = backlog_age(store.ledger_rows(status=list(WAITING)), datetime.now(UTC))
    return {c.name: ages.get(c.company_id, 0.0) for c in companies}


def state_snapshot(store: StateStore, companies: Sequence[CompanyConfig]
                   ) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """(company, kind, open quarantined) and (company, ledger status, count); blocking."""
    names = {c.company_id: c.name for c in companies}
    quarantine = Counter((r.company, r.kind) for r in store.quarantined(status="open"))
    backlog: Counter[tuple[str, str]] = Counter()
    for row in store.ledger_rows(status=list(_OPEN_LEDGER)):
        company = names.get(row.company_id, row.company_id)
        backlog[(company, row.status)] += 1
        if row.status == "quarantined":
            quarantine[(company, "transactions")] += 1
    return ([(c, k, n) for (c, k), n in sorted(quarantine.items())],
            [(c, s, n) for (c, s), n in sorted(backlog.items())])


class JobView(Protocol):
    """What the endpoints read of one scheduled job."""

    @property
    def name(self) -> str: ...

    @property
    def failures(self) -> int: ...

    @property
    def running(self) -> bool: ...

    @property
    def last(self) -> JobReport | None: ...


class DaemonView(Protocol):
    """The narrow view of the daemon the endpoints need (the daemon serves them; they never
    drive it)."""

    @property
    def stopping(self) -> bool: ...

    @property
    def rt(self) -> Runtime | None: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def config(self) -> Config: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def jobs(self) -> Sequence[JobView]: ...


class Endpoints:
    """The handlers, bound to one daemon's view."""

    def __init__(self, daemon: DaemonView) -> None:
        self.daemon = daemon
        self._refreshed = -REFRESH_SECONDS
        self._lock = asyncio.Lock()

    async def healthz(self, _request: Request) -> Response:
        """Liveness: the loop is running."""
        return JSONResponse({"status": "alive"})

    async def readyz(self, _request: Request) -> Response:
        """Readiness, with the reasons when not ready."""
        reasons = [REDACTOR(r) for r in await self.problems()]
        body = {"ready": not reasons, "reasons": reasons,
                "jobs": {j.name: {"consecutive_failures": j.failures, "running": j.running,
                                  "last_outcome": j.last.outcome if j.last else None}
                         for j in self.daemon.jobs}}
        return JSONResponse(body, status_code=503 if reasons else 200)

    async def problems(self) -> list[str]:
        """Why the daemon is not ready (empty when it is)."""
        daemon, reasons = self.daemon, []
        if daemon.stopping:
            reasons.append("the daemon is stopping")
        if daemon.rt is not None and not await self._db_answers(daemon.rt.store):
            reasons.append(f"state database {daemon.rt.store.url_for_display} does not answer")
        limit = daemon.settings.service.failing_runs_unready
        for job in daemon.jobs:
            if job.failures >= limit:
                error = job.last.error if job.last else None
                reasons.append(f"{job.name} failed {job.failures} runs in a row"
                               + (f": {error}" if error else ""))
        return reasons

    async def _db_answers(self, store: StateStore) -> bool:
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                await asyncio.to_thread(store.ping)
        except (IcsyncError, TimeoutError) as exc:
            log.warning("readiness_db_check_failed", error=str(exc) or "timeout")
            return False
        return True

    async def metrics(self, _request: Request) -> Response:
        """Prometheus text, with the state gauges refreshed when stale."""
        await self._refresh()
        return Response(self.daemon.metrics.render(), media_type=CONTENT_TYPE)

    async def _refresh(self) -> None:
        rt = self.daemon.rt
        if rt is None or time.monotonic() - self._refreshed < REFRESH_SECONDS:
            return
        async with self._lock:
            self._refreshed = time.monotonic()
            try:
                async with asyncio.timeout(PROBE_SECONDS):
                    quarantine, backlog = await asyncio.to_thread(
                        state_snapshot, rt.store, self.daemon.settings.companies)
                    ages = await asyncio.to_thread(
                        oldest_waiting, rt.store, self.daemon.settings.companies)
            except (IcsyncError, TimeoutError) as exc:
                log.warning("metrics_state_refresh_failed", error=str(exc) or "timeout")
                return
            self.daemon.metrics.set_quarantine(quarantine)
            self.daemon.metrics.set_backlog(backlog)
            self.daemon.metrics.set_backlog_age(ages)


def webhook_routes(daemon: DaemonView) -> list[BaseRoute]:
    """The webhook receiver's routes (none before the runtime is open)."""
    if daemon.rt is None:
        return []
    return create_webhook_routes(
        daemon.rt, on_receipt=lambda handled: daemon.metrics.receipts.labels(handled).inc())


def build_app(daemon: DaemonView) -> Starlette:
    """The Starlette application the daemon serves."""
    endpoints = Endpoints(daemon)
    routes: list[Any] = [
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        Route("/readyz", endpoints.readyz, methods=["GET"]),
        Route("/metrics", endpoints.metrics, methods=["GET"]),
        *webhook_routes(daemon),
        *console_routes(daemon),
    ]
    return Starlette(routes=routes)
