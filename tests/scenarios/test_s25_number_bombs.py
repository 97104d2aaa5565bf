"""S25: number bombs from outside, in a real daemon: ``1e99999999``, ``Infinity``, ``NaN`` and a
100,000-digit integer in pushes, and a bomb and ``Infinity`` in a transaction polled from
iCompleat. Every push is answered 4xx within 2 s, the polled transaction is quarantined, the good
one is posted (nothing lost), /healthz stays fast and SIGTERM is honoured.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.state.store import StateStore
from tests.daemon.world import (
    WEBHOOK_TOKEN,
    approve,
    erp_entries,
    free_port,
    sql_sink,
    stop,
    tx_body,
    wait_http,
    write_config,
)
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.scenarios.attack import probing, start_limited_daemon
from tests.scenarios.harness import show

pytestmark = pytest.mark.slow
NOFILE = 1024


def _bomb_body(n: int) -> dict[str, Any]:
    body = tx_body(n)
    body["Lines"][0]["Number"] = "1e99999999"
    body["Gross"] = {"Base": {"Display": "inf", "Value": "Infinity"}}
    return body


def _push(url: str, content: bytes) -> tuple[int, float]:
    started = time.monotonic()
    answer = httpx.post(url, content=content, timeout=10, trust_env=False, headers={
        "x-compleat-secret-token": WEBHOOK_TOKEN, "content-type": "application/json"})
    return answer.status_code, time.monotonic() - started


def test_number_bombs_are_refused_or_quarantined_fast(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    """A Decimal bomb and Infinity, pushed and polled: 4xx or quarantine within 2 s, the daemon
    stays responsive, the good transaction is posted, and SIGTERM is honoured."""
    erp = tmp_path / "erp.db"
    port = free_port()
    config = write_config(tmp_path, sandbox.url, sink=sql_sink(erp),
                          schedules={"transactions": "2s"},
                          service={"listen": f"127.0.0.1:{port}"})
    with config.open("a", encoding="utf-8") as out:  # the pushed body itself is posted
        out.write("\n")
    text = config.read_text(encoding="utf-8").replace(
        "[webhook]\n", "[webhook]\nrefetch = false\n")
    config.write_text(text, encoding="utf-8")
    bomb = sandbox.state.create_transaction(TENANT_ID, COMPANY_ID, _bomb_body(1))
    sandbox.state.approve(TENANT_ID, bomb["Id"])
    good = approve(sandbox, [2])[0]
    log = tmp_path / "daemon.log"
    proc = start_limited_daemon(config, log, nofile=NOFILE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
        serving = time.monotonic()
        with probing(f"{url}/healthz") as prober:
            pushed = _pushes(url)
            quarantined_in = _until_quarantined(tmp_path / "state.db", bomb["Id"], serving)
        entries = erp_entries(erp)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop(proc)
    show(capsys, f"S25 numbers: {len(pushed)} bad pushes answered "
                 f"{sorted({s for s, _ in pushed})} in at most "
                 f"{max(t for _, t in pushed):.3f} s; polled bomb quarantined "
                 f"{quarantined_in:.1f} s after the daemon began serving; longest /healthz "
                 f"{prober.longest:.3f} s")
    assert all(400 <= status < 500 for status, _ in pushed), pushed
    assert all(seconds < 2.0 for _, seconds in pushed), pushed
    assert not prober.failures
    assert prober.longest < 2.0
    assert good in entries  # nothing lost
    assert bomb["Id"] not in entries  # nothing wrong posted


def _pushes(url: str) -> list[tuple[int, float]]:
    """Every bad push, with its status and time."""
    endpoint = f"{url}/webhooks/icompleat/invoices"
    base = {**tx_body(3), "Id": "0b7e6f5c-1d2e-4f3a-9b8c-7d6e5f4a3b2c", "Status": "APPR",
            "Company": {"Id": COMPANY_ID}}
    text = json.dumps(base)
    literal_bomb = text.replace('"Quantity": 1', '"Quantity": 1e99999999', 1)
    bodies = [
        literal_bomb.encode(),
        text.replace('"Quantity": 1', '"Quantity": Infinity', 1).encode(),
        text.replace('"Quantity": 1', '"Quantity": NaN', 1).encode(),
        text.replace('"Quantity": 1', '"Quantity": "1e99999999"', 1).encode(),
        text.replace('"Quantity": 1', '"Quantity": ' + "9" * 100_000, 1).encode(),
    ]
    return [_push(endpoint, body) for body in bodies]


def _until_quarantined(state_db: Path, tx_id: str, started: float, seconds: float = 20) -> float:
    """Seconds from ``started`` (the daemon serving) until the polled bomb is quarantined."""
    while time.monotonic() - started < seconds:
        with StateStore.open(f"sqlite:///{state_db}", migrate=False) as store:
            row = store.ledger_get(COMPANY_ID, tx_id)
        if row is not None and row.status == "quarantined":
            assert "Lines.0.Number" in (row.last_error or "")
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"transaction {tx_id} was not quarantined within {seconds} s")
