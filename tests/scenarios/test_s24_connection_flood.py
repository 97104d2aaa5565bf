"""S24: 1,500 half-open connections against a daemon limited to 1,024 descriptors, and a slow
webhook body, as real processes (the flood is a process of its own).

Figures (printed): connections opened and held by the flood, connections the daemon shed, its
connection cap, the longest and median /healthz answer under attack, jobs run, log bytes written.
"""

from __future__ import annotations

import json
import resource
import signal
import socket
import time
from pathlib import Path
from statistics import median

import pytest

from connectors.icompleat.sandbox import SandboxServer
from tests.daemon.world import (
    WEBHOOK_TOKEN,
    free_port,
    json_lines,
    stop,
    wait_http,
    write_config,
)
from tests.scenarios.attack import probing, start_flood, start_limited_daemon
from tests.scenarios.harness import show

pytestmark = pytest.mark.slow
NOFILE = 1024
FLOOD = 1500
ATTACK_SECONDS = 15.0


def _started_jobs(log: Path) -> int:
    return sum(1 for line in json_lines(log) if line.get("event") == "job_started")


def _slow_body(port: int) -> tuple[int, float]:
    """A push whose body never finishes: the status it gets and after how long."""
    head = (f"POST /webhooks/icompleat/invoices HTTP/1.1\r\nHost: x\r\n"
            f"x-compleat-secret-token: {WEBHOOK_TOKEN}\r\nContent-Length: 100\r\n\r\n")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(head.encode() + b'{"Id": "')
        first = conn.makefile("rb").readline()
    return int(first.split()[1]), time.monotonic() - started


def test_half_open_flood_never_stalls_the_daemon(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    """A slow body gets 408; then 1,500 half-open connections against 1,024 descriptors:
    /healthz within 2 s throughout, jobs still run, under 1 MB of log, no descriptor
    exhaustion, SIGTERM honoured."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < FLOOD + 256:
        pytest.skip(f"the flood process needs {FLOOD + 256} descriptors; this machine's hard "
                    f"limit is {hard} (raise it with ulimit -Hn)")
    port = free_port()
    config = write_config(tmp_path, sandbox.url, schedules={"reference": "2s"},
                          service={"listen": f"127.0.0.1:{port}", "body_timeout_seconds": 2})
    log = tmp_path / "daemon.log"
    proc = start_limited_daemon(config, log, nofile=NOFILE)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        slow_status, slow_seconds = _slow_body(port)
        jobs_before, log_before = _started_jobs(log), log.stat().st_size
        with probing(f"http://127.0.0.1:{port}/healthz") as prober:
            flooder = start_flood("127.0.0.1", port, FLOOD, ATTACK_SECONDS)
            out, _ = flooder.communicate(timeout=ATTACK_SECONDS + 60)
        flood = json.loads(out)
        jobs_during = _started_jobs(log) - jobs_before
        log_bytes = log.stat().st_size - log_before
        assert proc.poll() is None, "the daemon died under the flood"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop(proc)
    text = log.read_text(encoding="utf-8", errors="replace")
    ready = next(line for line in json_lines(log) if line.get("event") == "daemon_ready")
    show(capsys, f"S24 flood: {flood['opened']} half-open connections opened ({flood['held']} "
                 f"open at once at most, {flood['shed']} shed by the daemon), daemon cap "
                 f"{ready['max_connections']} of {NOFILE} descriptors; longest /healthz "
                 f"{prober.longest:.3f} s (median {median(prober.times):.3f} s) "
                 f"over {len(prober.times)} probes; {jobs_during} jobs "
                 f"started during {ATTACK_SECONDS:.0f} s; {log_bytes} log bytes")
    assert slow_status == 408
    assert slow_seconds < 5
    assert flood["opened"] >= FLOOD
    assert flood["held"] == FLOOD
    assert not prober.failures, prober.failures[:5]
    assert prober.longest < 2.0
    assert jobs_during >= 2
    assert log_bytes < 1_000_000
    assert "Too many open files" not in text
    assert "out of system resource" not in text
    assert ready["max_connections"] < NOFILE


