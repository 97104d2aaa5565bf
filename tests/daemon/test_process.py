"""`icsync run` as a real process: sd_notify, SIGTERM drain, a second SIGTERM, no secret in logs."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.faults import Fault
from sync.state.store import StateStore
from tests.daemon.world import (
    WEBHOOK_TOKEN,
    approve,
    free_port,
    json_lines,
    start_daemon,
    stop,
    wait_http,
    write_config,
)
from tests.fixtures.sandbox import CANARY_KEY, TENANT_ID

# Each test starts a real daemon process (imports alone take seconds on a loaded machine).
pytestmark = pytest.mark.slow


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """systemd's side of NOTIFY_SOCKET: a datagram socket the daemon reports to."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield sock, path
    sock.close()


def _until(sock: socket.socket, key: str) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
        if key in fields:
            return fields
    raise AssertionError(f"no {key} notification")


def _store(root: Path) -> StateStore:
    return StateStore.open(f"sqlite:///{root / 'state.db'}")


def test_notify_and_sigterm_finish_the_call_in_flight(
        tmp_path: Path, sandbox: SandboxServer, notify_socket: tuple[socket.socket, str]) -> None:
    """READY and WATCHDOG reach systemd; SIGTERM mid-run: no new call, state recorded, exit 0."""
    sock, path = notify_socket
    latency = 0.6
    sandbox.state.faults.set("*", Fault(latency=latency))
    port = free_port()
    config = write_config(tmp_path, sandbox.url, service={"listen": f"127.0.0.1:{port}",
                                                          "shutdown_seconds": 8})
    proc = start_daemon(config, tmp_path / "out.log", NOTIFY_SOCKET=path,
                        WATCHDOG_USEC="400000")
    try:
        ready = _until(sock, "READY")
        assert ready["MAINPID"] == str(proc.pid)
        assert _until(sock, "WATCHDOG") == {"WATCHDOG": "1"}
        assert re.search(r"last: .*acme:\w+ ok", _until(sock, "STATUS")["STATUS"])
        time.sleep(latency * 1.5)  # the reference job is calls into its run
        signalled = time.time()
        proc.send_signal(signal.SIGTERM)
        assert _until(sock, "STOPPING")["STOPPING"] == "1"
        assert proc.wait(12) == 0
        took = time.time() - signalled
    finally:
        stop(proc)
    assert took < 8
    late = [e for e in sandbox.state.log.entries() if e.at - latency > signalled + 0.3]
    assert late == [], "a call was started after SIGTERM"
    with _store(tmp_path) as store:
        runs = store.last_runs("acme")
        assert not [lease for lease in store.leases() if lease.live]
    reference = next(r for r in runs if r.job == "reference")
    assert reference.outcome in ("stopped", "ok"), reference
    assert all(r.outcome is not None for r in runs), runs


def test_second_sigterm_exits_at_once(tmp_path: Path, sandbox: SandboxServer) -> None:
    """With a call hung and a long shutdown budget, a second SIGTERM ends the process now."""
    sandbox.state.faults.set("*", Fault(hang=True))
    port = free_port()
    config = write_config(tmp_path, sandbox.url, icompleat={"timeout_seconds": 60},
                          service={"listen": f"127.0.0.1:{port}", "shutdown_seconds": 60})
    out = tmp_path / "out.log"
    proc = start_daemon(config, out)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                line.get("event") == "job_started" for line in json_lines(out)):
            time.sleep(0.05)
        time.sleep(0.3)  # the job's first call is out, and hangs
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None, "the first SIGTERM must wait for the call in flight"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 1
    finally:
        sandbox.state.faults.clear()
        stop(proc)


def test_a_whole_daemon_run_never_logs_a_secret(tmp_path: Path, sandbox: SandboxServer) -> None:
    """Sync, poll, webhook pushes good and bad, stop: JSON logs with context, no key or token."""
    state = sandbox.state
    ids = approve(sandbox, (1, 2))
    port = free_port()
    config = write_config(tmp_path, sandbox.url, service={"listen": f"127.0.0.1:{port}"})
    out = tmp_path / "out.log"
    proc = start_daemon(config, out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            journals = [(t.get("Posting") or {}).get("JournalNumber")
                        for t in state.all_transactions(TENANT_ID)]
            if all(journals):
                break
            time.sleep(0.1)
        pushed = httpx.post(f"{url}/webhooks/icompleat/invoices", json={"Id": ids[0]},
                            headers={"x-compleat-secret-token": WEBHOOK_TOKEN}, trust_env=False)
        wrong = httpx.post(f"{url}/webhooks/icompleat/invoices", json={"Id": ids[0]},
                           headers={"x-compleat-secret-token": CANARY_KEY}, trust_env=False)
        # The run is accounted a moment after its last write-back: read until it shows (bounded).
        deadline = time.monotonic() + 15
        metrics = httpx.get(f"{url}/metrics", trust_env=False).text
        while 'job="transactions",outcome="ok"' not in metrics and time.monotonic() < deadline:
            time.sleep(0.2)
            metrics = httpx.get(f"{url}/metrics", trust_env=False).text
        assert stop(proc) == 0
    finally:
        stop(proc)
    assert all(journals), "the poll job did not post the approved transactions"
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["JournalNumber"] == journals[0]
    assert wrong.status_code == 401
    assert 'job="transactions",outcome="ok"' in metrics
    text = out.read_text(encoding="utf-8", errors="replace")
    assert CANARY_KEY not in text
    assert WEBHOOK_TOKEN not in text
    lines = json_lines(out)
    job_lines = [line for line in lines if "job" in line and line.get("event") != "job_skipped"]
    assert any(line["event"] == "job_finished" for line in job_lines)
    assert all("run_id" in line and line.get("company") == "acme" for line in job_lines)
