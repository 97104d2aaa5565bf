"""The daemon in-process against the sandbox: jobs run, HTTP endpoints answer, stop is clean."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.daemon.jobs import ScheduledJob
from sync.daemon.service import Daemon, parse_listen
from sync.foundation.errors import ConfigError
from sync.state.store import QuarantineEntry, StateStore
from tests.daemon.world import WEBHOOK_TOKEN, load, running_daemon, wait_for, write_config
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID


def _job(daemon: Daemon, name: str) -> ScheduledJob:
    return next(j for j in daemon.jobs if j.name == name)


async def test_daemon_runs_jobs_and_serves_health_metrics_webhook(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """Jobs run at start under leases; /healthz, /readyz, /metrics and the webhook answer."""
    config = load(write_config(tmp_path, sandbox.url))
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        store.quarantine("acme", "suppliers", [QuarantineEntry("S1", "bad_iban", "S1: IBAN")])
        store.ledger_seen(COMPANY_ID, "tx-waiting", "INV")
    async with running_daemon(config) as (daemon, url), httpx.AsyncClient(
            base_url=url, trust_env=False) as http:
        assert sorted(j.name for j in daemon.jobs) == [
            "acme:readback", "acme:reference", "acme:transactions"]
        reference = _job(daemon, "acme:reference")
        await wait_for(lambda: reference.last, 20, "the first reference run")
        await wait_for(lambda: _job(daemon, "acme:transactions").last, 20, "the first poll")
        assert reference.last is not None
        assert reference.last.outcome == "ok", reference.last
        codes = {r["Code"] for r in sandbox.state.records(TENANT_ID, COMPANY_ID, "tax_codes")}
        assert codes == {"T0", "T1"}
        assert (await http.get("/healthz")).json() == {"status": "alive"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        text = (await http.get("/metrics")).text
        assert 'icsync_job_runs_total{company="acme",job="reference",outcome="ok"} 1.0' in text
        assert 'icsync_api_calls_total{outcome="ok",route="taxcodes.post",status="200"}' in text
        assert 'icsync_seconds_since_last_success{company="acme",kind="tax_codes"}' in text
        assert 'icsync_quarantine_size{company="acme",kind="suppliers"} 1.0' in text
        assert 'icsync_ledger_backlog{company="acme",status="seen"} 1.0' in text
        refused = await http.post("/webhooks/icompleat/invoices", json={"Id": "x"},
                                  headers={"x-compleat-secret-token": "wrong"})
        assert refused.status_code == 401
        malformed = await http.post("/webhooks/icompleat/invoices", content=b"{",
                                    headers={"x-compleat-secret-token": WEBHOOK_TOKEN})
        assert malformed.status_code == 400
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        runs = {r.job: r for r in store.last_runs("acme")}
        leases = store.leases()
    assert runs["reference"].outcome == "ok"
    assert runs["reference"].counts["holder"]
    assert leases
    assert not [lease for lease in leases if lease.live]


async def test_failing_job_makes_the_daemon_unready(tmp_path: Path,
                                                     sandbox: SandboxServer) -> None:
    """A job failing failing_runs_unready times in a row turns /readyz to 503 with the reason."""
    sandbox.state.faults.set("transactions.list", error_rate=1.0, error_status=500)
    path = write_config(tmp_path, sandbox.url, service={"failing_runs_unready": 1})
    async with running_daemon(load(path)) as (daemon, url), httpx.AsyncClient(
            trust_env=False) as http:
        job = _job(daemon, "acme:transactions")
        await wait_for(lambda: job.last, 20, "the first poll")
        assert job.last is not None
        assert job.last.outcome == "partial", job.last
        assert job.last.error
        ready = await http.get(f"{url}/readyz")
        assert ready.status_code == 503
        assert any("acme:transactions failed 1 runs in a row" in r
                   for r in ready.json()["reasons"])


async def test_rejected_credentials_stop_the_daemon_with_exit_5(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """A 401 is final: the daemon stops by itself and exits 5, never showing the key."""
    path = write_config(tmp_path, sandbox.url, api_key="not-the-sandbox-key-123")
    daemon = Daemon(load(path))
    code = await asyncio.wait_for(daemon.serve(), 30)
    assert code == 5
    # Whichever start-up job met the 401 first stops the daemon; one still running is stopped.
    last = {job.name: job.last for job in daemon.jobs if job.last is not None}
    outcomes = {name: report.outcome for name, report in last.items()}
    assert "auth" in outcomes.values(), outcomes
    assert set(outcomes.values()) <= {"auth", "stopped"}, outcomes
    assert all("not-the-sandbox-key" not in str(report.error) for report in last.values())


async def test_port_in_use_is_a_config_error(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A listen address already taken fails at once, naming service.listen."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        path = write_config(tmp_path, sandbox.url, service={"listen": f"127.0.0.1:{port}"})
        with pytest.raises(ConfigError, match=r"service\.listen"):
            await Daemon(load(path)).serve()


def test_parse_listen() -> None:
    """host:port forms, IPv6 in brackets; nonsense names the key."""
    assert parse_listen("127.0.0.1:8787") == ("127.0.0.1", 8787)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ConfigError, match=r"service\.listen"):
        parse_listen("localhost")
