"""The daemon (``icsync run``): schedules, HTTP (health, readiness, metrics, webhook), signals.

Everything runs in ONE asyncio loop: APScheduler's AsyncIOScheduler starts the jobs of
:mod:`sync.daemon.jobs` (one per company and job: reference, readback, transactions), and uvicorn
serves
the Starlette app as a task of the same loop on ``[service] listen``:

- ``GET /healthz``: 200 while the loop runs (liveness);
- ``GET /readyz``: 200 when the state DB answers and no job has failed
  ``failing_runs_unready`` times in a row; 503 with the reasons otherwise, and while stopping;
- ``GET /metrics``: Prometheus text (:mod:`sync.daemon.metrics`);
- ``POST /webhooks/icompleat/...``: the webhook receiver of :mod:`sync.transactions.webhook`.

Start-up: bind the socket (a taken port fails at once, naming ``service.listen``), open the
runtime, prime each job from the run history (catch-up, start-up jitter), serve, start the
scheduler, then tell systemd ``READY=1``. Stop: the first SIGTERM (or SIGINT) stops the schedule,
lets each running job finish the call in flight (any NEW call is refused, so the job records its
state and ends), releases the leases, stops the server and exits 0 within ``shutdown_seconds``;
jobs still running at the deadline are cancelled (their journal makes that safe). A second
SIGTERM exits at once with status 1. When iCompleat rejects the credentials (HTTP 401), the
daemon stops the same way and exits 5, which the systemd unit does not restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import httpx
import uvicorn
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from sync.daemon.alerting import Alerter
from sync.daemon.channels import Channel, build_channels
from sync.daemon.connections import (
    ACCEPT_BATCH,
    LISTEN_QUEUE,
    ConnectionGuard,
    connection_limit,
    guarded_protocol,
)
from sync.daemon.http import build_app
from sync.daemon.jobs import ScheduledJob
from sync.daemon.metrics import CallLike, Metrics
from sync.daemon.notify import Notifier
from sync.daemon.schedules import ClockWatch, checked_trigger, fire_times
from sync.foundation.config import CompanyConfig, Config
from sync.foundation.errors import ConfigError, ExitCode
from sync.foundation.logs import get_logger
from sync.reference.engine import readback_company, sync_company
from sync.runtime.context import Runtime, open_runtime
from sync.runtime.jobrun import Action, JobReport, count_call
from sync.runtime.leases import LeaseGuardSink, LeaseGuardTransport
from sync.state.store import Fence
from sync.transactions.poll import poll_company

log = get_logger("icsync.service")


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8787`` for IPv6) -> (host, port); ConfigError naming the key."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{listen!r} is not host:port such as 127.0.0.1:8787",
                          key="service.listen")
    return host, int(port)


def bind(listen: str) -> socket.socket:
    """A listening TCP socket on ``listen``; ConfigError when the address cannot be used."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror}; free the port or change "
                          "it", key="service.listen") from None
    sock.setblocking(False)
    return sock


def job_actions(rt: Runtime, company: CompanyConfig) -> dict[str, Action]:
    """The jobs a company has: what it is configured for AND has a schedule for."""
    plan: dict[str, tuple[bool, Callable[[Fence], Awaitable[Any]]]] = {
        "reference": (bool(company.source and company.kinds),
                      lambda fence: sync_company(rt, company, fence=fence)),
        "readback": (bool(company.source and company.kinds),
                     lambda fence: readback_company(rt, company, fence=fence)),
        "transactions": (bool(company.sink and company.transaction_types),
                         lambda fence: poll_company(rt, company, fence=fence)),
    }
    schedules = company.schedules
    return {job: action for job, (wanted, action) in plan.items()
            if wanted and getattr(schedules, job) is not None}


def guard_sinks(rt: Runtime) -> None:
    """Make every sink the runtime builds check the job's lease before posting."""
    build = rt.sink

    def guarded(name: str) -> Any:
        sink = build(name)
        return sink if isinstance(sink, LeaseGuardSink) else LeaseGuardSink(sink)

    setattr(rt, "sink", guarded)  # noqa: B010 (an instance attribute shadows the method)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class Daemon:
    """One ``icsync run`` process."""

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 notifier: Notifier | None = None) -> None:
        self.config, self.settings = config, config.settings
        self.transport = transport
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        # built now, so that a bad alert URL fails at start, naming alerts.urls_file
        self.channels: list[Channel] = build_channels(config.alert_urls)
        self.alerter: Alerter | None = None
        self.jobs: list[ScheduledJob] = []
        self.rt: Runtime | None = None
        self.port: int | None = None
        self.stopping = False
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._signals = 0
        self.exit_code = ExitCode.OK
        self.guard = ConnectionGuard(1, 1.0)  # replaced when the server starts

    async def serve(self) -> int:
        """Run until stopped; the exit status (0 after a clean SIGTERM)."""
        sock = bind(self.settings.service.listen)
        self.port = sock.getsockname()[1]
        transport = LeaseGuardTransport(self.transport)
        try:
            async with open_runtime(self.config, transport=transport,
                                    on_call=self._on_call) as rt:
                self.rt = rt
                guard_sinks(rt)
                await self._run(rt, sock)
        finally:
            sock.close()
        log.info("daemon_stopped", exit_code=int(self.exit_code))
        return int(self.exit_code)

    def _on_call(self, record: CallLike) -> None:
        self.metrics.on_call(record)
        count_call()

    def _on_report(self, report: JobReport) -> None:
        if self.alerter is not None:
            self.alerter.observe_run(report.company, report.job, report.outcome, report.error)

    def _server(self) -> _Server:
        """uvicorn under the connection guard and the [service] time limits."""
        service = self.settings.service
        self.guard = ConnectionGuard(connection_limit(service.max_connections),
                                     service.header_timeout_seconds)
        return _Server(uvicorn.Config(
            build_app(self), log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=3, http=guarded_protocol(self.guard),
            backlog=ACCEPT_BATCH,
            # a backstop only: the guard keeps the count at the limit and sheds the excess
            # (connections it aborted stay counted here until the loop's next turn)
            limit_concurrency=self.guard.limit + 4 * ACCEPT_BATCH,
            timeout_keep_alive=service.keepalive_seconds))  # type: ignore[arg-type]

    async def _run(self, rt: Runtime, sock: socket.socket) -> None:
        scheduler = AsyncIOScheduler(timezone=UTC)
        if self.channels:
            self.alerter = Alerter(rt.store, self.settings, self.channels, self.metrics,
                                   rt.holder)
        if self.alerter is not None:
            self.alerter.start()
        await self._schedule(rt, scheduler)
        asyncio.get_running_loop().set_exception_handler(log_loop_error)
        server = self._server()
        server_task = asyncio.create_task(server.serve(sockets=[sock]))
        self._install_signals()
        watchdog = asyncio.create_task(self.notifier.watchdog_loop())
        clock = asyncio.create_task(self._watch_clock(scheduler))
        try:
            await self._wait_started(server, server_task)
            sock.listen(LISTEN_QUEUE)  # asyncio set it to ACCEPT_BATCH: see sync.daemon.connections
            scheduler.add_listener(self._job_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
            scheduler.start()
            self.started.set()
            self.notifier.ready(self._status())
            log.info("daemon_ready", listen=f"{sock.getsockname()[0]}:{self.port}",
                     jobs=[j.name for j in self.jobs], holder=rt.holder,
                     max_connections=self.guard.limit)
            await self._until_stopped(server_task)
        finally:
            clock.cancel()
            await self._shutdown(scheduler, server, server_task)
            if self.alerter is not None:
                budget = self.settings.service.shutdown_seconds / 2
                await self.alerter.close(min(10.0, max(2.0, budget)))
            watchdog.cancel()
            self._remove_signals()

    async def _schedule(self, rt: Runtime, scheduler: AsyncIOScheduler) -> None:
        service, ttl = self.settings.service, self.settings.state.lease_seconds
        for i, company in enumerate(self.settings.companies):
            for job, action in job_actions(rt, company).items():
                key = f"companies.{i}.schedules.{job}"
                trigger = checked_trigger(getattr(company.schedules, job),
                                        timezone=company.schedules.timezone, key=key)
                runner = ScheduledJob(company=company.name, job=job, action=action,
                                      store=rt.store, holder=rt.holder, lease_seconds=ttl,
                                      metrics=self.metrics, trigger=trigger,
                                      on_report=self._on_report)
                first = await runner.prime(jitter=service.startup_jitter_seconds)
                extra = {"next_run_time": first} if first is not None else {}
                # the bound coroutine method: APScheduler awaits it on this loop (an object
                # with an async __call__ would be sent to a thread pool instead)
                scheduler.add_job(runner.__call__, trigger, id=runner.name, name=runner.name,
                                  max_instances=1, coalesce=True,
                                  misfire_grace_time=_grace(runner), **extra)
                self.jobs.append(runner)

    async def _watch_clock(self, scheduler: AsyncIOScheduler) -> None:
        """Every second: on a wall-clock step, re-plan every schedule from the new time."""
        watch = ClockWatch(time.time(), time.monotonic())
        while True:
            await asyncio.sleep(1.0)
            step = watch.step(time.time(), time.monotonic())
            if step is not None:
                log.warning("clock_step", seconds=round(step, 1))
                replan(scheduler, self.jobs, step)

    async def _wait_started(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        deadline = time.monotonic() + 10
        # uvicorn exposes only a flag for "listening", no event to wait on.
        while not server.started and not task.done() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if not server.started:
            raise ConfigError(f"the HTTP server did not start on {self.settings.service.listen}",
                              key="service.listen")

    async def _until_stopped(self, server_task: asyncio.Task[None]) -> None:
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({stop, server_task}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if server_task.done() and not self._stop.is_set():
            log.error("http_server_stopped_unexpectedly")

    def request_stop(self) -> None:
        """Begin a graceful stop (what the first SIGTERM does)."""
        if not self.stopping:
            self.stopping = True
            self.notifier.stopping("stopping: finishing the calls in flight")
            log.info("daemon_stopping", running=[j.name for j in self.jobs if j.running])
            for job in self.jobs:
                job.drain()
        self._stop.set()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second_signal_exit_now", signal=signal.Signals(signum).name)
            os._exit(int(ExitCode.FAILED))
        log.info("signal_received", signal=signal.Signals(signum).name)
        self.request_stop()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

    async def _shutdown(self, scheduler: AsyncIOScheduler, server: uvicorn.Server,
                        server_task: asyncio.Task[None]) -> None:
        budget = self.settings.service.shutdown_seconds
        deadline = time.monotonic() + budget
        self.request_stop()
        # Pause first: APScheduler's shutdown cancels the jobs it runs, so it comes after.
        if scheduler.running:
            scheduler.pause()
        await self._drain(deadline - min(5.0, budget * 0.25))
        if scheduler.running:
            scheduler.shutdown(wait=False)
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(server_task, max(0.5, deadline - time.monotonic()))

    async def _drain(self, deadline: float) -> None:
        """Wait for running jobs until ``deadline``; cancel the rest and let them clean up."""
        tasks = {j.task for j in self.jobs if j.running and j.task is not None}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            log.warning("job_cancelled_at_shutdown", task=task.get_name())
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=3)

    def _status(self) -> str:
        """The one line ``systemctl status`` shows: jobs running and each one's last outcome."""
        running = [j.name for j in self.jobs if j.running]
        last = [f"{j.name} {j.last.outcome}" for j in self.jobs if j.last is not None]
        return (f"{len(self.jobs)} jobs; running: {', '.join(running) or 'none'}; "
                f"last: {', '.join(last) or 'none yet'}")

    def _job_done(self, _event: object) -> None:
        self.notifier.status(self._status())
        if not self.stopping and any(j.last is not None and j.last.outcome == "auth"
                                     for j in self.jobs):
            self._stop_on_rejected_credentials()

    def _stop_on_rejected_credentials(self) -> None:
        """A rejected key stays rejected: stop with exit 5 (systemd's RestartPreventExitStatus)
        instead of failing every job until someone notices."""
        origin = self.config.api_key.origin if self.config.api_key else "nowhere"
        log.error("credentials_rejected", origin=origin,
                  action="install a valid iCompleat security key there, then start icsync again")
        self.exit_code = ExitCode.AUTH
        self.request_stop()


def replan(scheduler: AsyncIOScheduler, jobs: list[ScheduledJob], step: float) -> None:
    """After a host clock step: every job's next run from the new now, slots shifted too."""
    for job in jobs:
        job.shift(step)
    now = datetime.now(UTC)
    for planned in scheduler.get_jobs():
        planned.modify(next_run_time=planned.trigger.get_next_fire_time(None, now))


def _grace(job: ScheduledJob) -> int:
    """How late a run may still start: one slot's length, between 30 s and 6 h."""
    slots = list(islice(fire_times(job.counting, datetime.now(UTC)), 2))
    span = (slots[1] - slots[0]).total_seconds() if len(slots) == 2 else 3600.0
    return int(min(6 * 3600, max(30.0, span)))


def log_loop_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's unhandled errors (a failed accept(), a task nobody awaited) with their type,
    message and traceback; identical ones are rate-limited like every other log line."""
    exc = context.get("exception")
    log.error("event_loop_error", message=context.get("message"),
              error_type=type(exc).__name__ if exc else None, error=str(exc) if exc else None,
              exc_info=exc if isinstance(exc, BaseException) else None)


def bridge_stdlib_logging(level: str = "info") -> None:
    """Send APScheduler's and uvicorn's stdlib log records through structlog (and redaction)."""

    class _ToStructlog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logger = get_logger(record.name)
            method = getattr(logger, record.levelname.lower(), logger.info)
            exc = record.exc_info[1] if record.exc_info else None
            if exc is None:
                method(record.getMessage())
                return
            # "Exception in ASGI application", "Job ... raised an exception": the exception
            # itself, type, message and traceback (secrets masked by the log pipeline).
            method(record.getMessage(), error_type=type(exc).__name__, error=str(exc),
                   exc_info=record.exc_info)

    floor = logging.getLevelNamesMapping()[level.upper()]
    # APScheduler reports every run at INFO; the daemon logs runs itself (job_started/finished).
    for name, quietest in (("apscheduler", logging.WARNING), ("uvicorn", logging.INFO),
                           ("uvicorn.error", logging.INFO)):
        std = logging.getLogger(name)
        std.handlers = [_ToStructlog()]
        std.propagate = False
        std.setLevel(max(floor, quietest))


def run_daemon(config: Config) -> int:
    """Blocking entry point of ``icsync run``."""
    return asyncio.run(Daemon(config).serve())
