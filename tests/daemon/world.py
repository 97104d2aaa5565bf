"""The daemon's test world: a config on the sandbox, and the daemon in-process or as processes.

Used by tests/daemon and the daemon scenarios (S06, S15-S18).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from sync.daemon.service import Daemon
from sync.foundation.config import Config, load_config
from sync.foundation.tomlout import toml_value
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_TOKEN = "icsync-canary-webhook-4c1d9e27b83a"
TAX_CODES = [{"Code": "T1", "Name": "Standard", "Rate": 20}, {"Code": "T0", "Name": "Zero",
                                                              "Rate": 0}]
ACCOUNTS = [{"Code": "4000", "Name": "Sales"}, {"Code": "5000", "Name": "Purchases"}]


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(root: Path, sandbox_url: str, *, state_url: str | None = None,
                 api_key: str = CANARY_KEY, schedules: dict[str, str] | None = None,
                 service: dict[str, Any] | None = None, source: str | None = None,
                 sink: str | None = None, lease_seconds: float = 5.0,
                 icompleat: dict[str, Any] | None = None, kinds: Iterable[str] = (
                     "tax_codes", "account_codes"), state: dict[str, Any] | None = None) -> Path:
    """Write an icsync.toml for one company on the sandbox; its path."""
    ic = {"base_url": sandbox_url, "tenant_id": TENANT_ID, "api_key": api_key,
          "requests_per_minute": 0, "max_attempts": 2, "backoff_seconds": 0.05,
          "max_backoff_seconds": 0.2, "timeout_seconds": 5, **(icompleat or {})}
    svc = {"listen": "127.0.0.1:0", "log_format": "json", "startup_jitter_seconds": 0,
           "shutdown_seconds": 5, **(service or {})}
    plan = {"reference": "1h", "transactions": "1h", "readback": "0 3 * * *",
            **(schedules or {})}
    lines = [
        "[state]", f"url = {toml_value(state_url or _sqlite(root / 'state.db'))}",
        f"lease_seconds = {lease_seconds}",
        *(f"{k} = {toml_value(v)}" for k, v in (state or {}).items()), "", "[icompleat]",
        *(f"{k} = {toml_value(v)}" for k, v in ic.items()), "",
        "[sources.erp]", source or _memory_source(), "",
        "[sinks.erp]", sink or 'type = "memory"', "",
        "[webhook]", f"tokens = [{toml_value(WEBHOOK_TOKEN)}]", "",
        "[service]", *(f"{k} = {toml_value(v)}" for k, v in svc.items()), "",
        "[[companies]]", 'name = "acme"', f"company_id = {toml_value(COMPANY_ID)}",
        'source = "erp"', 'sink = "erp"', f"kinds = {toml_value(list(kinds))}",
        'transaction_types = ["INV"]', f"schedules = {toml_value(plan)}", "",
    ]
    path = root / "icsync.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def _memory_source() -> str:
    rows = {"tax_codes": TAX_CODES, "account_codes": ACCOUNTS}
    return 'type = "memory"\n' + "\n".join(
        f"rows.{kind} = {toml_value(value)}" for kind, value in rows.items())


def wait_until(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``predicate`` (blocking) until truthy (its value) or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


async def wait_for(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``predicate`` until truthy (its value) or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@asynccontextmanager
async def running_daemon(config: Config, **kw: Any) -> AsyncIterator[tuple[Daemon, str]]:
    """The daemon serving in this event loop; (daemon, base URL). Stopped on the way out."""
    daemon = Daemon(config, **kw)
    task = asyncio.create_task(daemon.serve())
    started = asyncio.create_task(daemon.started.wait())
    await asyncio.wait({task, started}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()
    assert daemon.started.is_set(), "the daemon did not start"
    try:
        yield daemon, f"http://127.0.0.1:{daemon.port}"
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 15) == 0


def load(path: Path) -> Config:
    """Load a written config."""
    return load_config(path)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for an icsync child process: no inherited icsync or systemd settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ICSYNC_", "NOTIFY_SOCKET", "WATCHDOG_", "CREDENTIALS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_daemon(config_path: Path, log_path: Path, *, listen: str | None = None,
                 **env: str) -> subprocess.Popen[bytes]:
    """A real ``icsync run`` process, its output (stdout and stderr) into ``log_path``."""
    args = [sys.executable, "-m", "sync.cli", "run", "--config", str(config_path)]
    if listen:
        args += ["--listen", listen]
    out = log_path.open("ab")
    try:
        return subprocess.Popen(args, cwd=ROOT, env=child_env(**env), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def wait_http(url: str, timeout: float = 30) -> None:
    """Block until ``url`` answers (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1, trust_env=False)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM a daemon and wait for it; SIGKILL if it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a daemon's output (other lines skipped)."""
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


# -- transactions and the ERP (the checkers of S15, S16, S18) ---------------------------------


def money(value: float) -> dict[str, Any]:
    """iCompleat's money object in GBP."""
    amount = {"Display": f"£{value:.2f}", "Value": value}
    return {"Base": amount, "Local": dict(amount)}


def tx_body(n: int) -> dict[str, Any]:
    """A realistic approved-to-be invoice detail (without Id), numbered ``n``."""
    net = float(100 + n)
    line = {"Code": "4000", "Description": f"Office paper, box {n}", "Quantity": 1,
            "UnitCost": money(net), "Net": money(net), "Vat": money(net * 0.2),
            "Gross": money(net * 1.2), "Analysis": [{"Name": "Tax Code", "Value": {"Code": "T1"}}]}
    return {"Type": "INV", "Title": f"INV {n}", "SupplierName": "Northwind Supplies Ltd",
            "References": {"Identifier": f"INV-{n:05d}", "PurchaseOrder": f"PO-{n:05d}",
                           "Supplier": "SUP-001"},
            "Supplier": {"Name": "Northwind Supplies Ltd", "Code": "SUP-001"},
            "Dates": {"Invoice": "2025-03-01", "PaymentDue": "2025-03-31"},
            "Net": money(net), "Vat": money(net * 0.2), "Gross": money(net * 1.2),
            "Analysis": [{"Name": "Currency Code", "Value": {"Code": "GBP"}}], "Lines": [line]}


def approve(sandbox: Any, numbers: Iterable[int]) -> list[str]:
    """Create and approve one invoice per number in the sandbox; their ids."""
    ids = []
    for n in numbers:
        tx = sandbox.state.create_transaction(TENANT_ID, COMPANY_ID, tx_body(n))
        sandbox.state.approve(TENANT_ID, tx["Id"])
        ids.append(str(tx["Id"]))
    return ids


def sql_sink(path: Path) -> str:
    """The [sinks.erp] body of a SQLite ERP at ``path`` (no unique index: the sink serialises)."""
    return f'type = "sql"\nurl = {toml_value(_sqlite(path))}\nunique_index = false'


def erp_entries(path: Path) -> dict[str, list[str]]:
    """Transaction id -> journal numbers of its ERP entries."""
    import sqlite3

    found: dict[str, list[str]] = {}
    if not path.exists():
        return found
    with sqlite3.connect(path) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'icsync_transactions'").fetchone():
            for tx_id, journal in db.execute(
                    "SELECT transaction_id, journal_number FROM icsync_transactions"):
                found.setdefault(tx_id, []).append(journal)
    return found


def remote_journals(sandbox: Any) -> dict[str, str | None]:
    """Approved transaction id -> the journal number iCompleat shows (None: not yet)."""
    return {tx["Id"]: (tx.get("Posting") or {}).get("JournalNumber")
            for tx in sandbox.state.all_transactions(TENANT_ID) if tx["Status"] == "APPR"}


def exactly_once(sandbox: Any, erp: Path) -> tuple[list[str], dict[str, list[str]], list[str],
                                                    dict[str, Any]]:
    """(lost, doubled, unexpected, disagreeing) between iCompleat and the ERP: all empty = pass."""
    entries, remote = erp_entries(erp), remote_journals(sandbox)
    lost = sorted(set(remote) - set(entries))
    doubled = {k: v for k, v in entries.items() if len(v) != 1}
    unexpected = sorted(set(entries) - set(remote))
    disagree = {k: (v[0], remote.get(k)) for k, v in entries.items()
                if len(v) == 1 and remote.get(k) != v[0]}
    return lost, doubled, unexpected, disagree


def run_holders(logs: Iterable[Path]) -> dict[int, str]:
    """Run record id -> the holder that started it, from the daemons' job_started lines."""
    return {int(line["run_row"]): str(line["holder"]) for log in logs
            for line in json_lines(log) if line.get("event") == "job_started"}


def overlaps(runs: Iterable[Any], holders: dict[int, str],
             killed: dict[str, float] | None = None) -> list[str]:
    """Pairs of runs of one job whose [start, end] intervals overlap (should be none).

    ``holders`` maps run ids to holders (:func:`run_holders`). A run never finished ends at
    its holder's kill time in ``killed`` (Unix seconds by pid), else it is open-ended.
    """
    by_job: dict[str, list[tuple[float, float, str]]] = {}
    for run in runs:
        holder = holders.get(run.id) or str(run.counts.get("holder") or f"?{run.id}")
        if run.finished_at is not None:
            end = run.finished_at.timestamp()
        else:
            end = (killed or {}).get(holder.split(":")[1] if ":" in holder else "", float("inf"))
        by_job.setdefault(f"{run.company}:{run.job}", []).append(
            (run.started_at.timestamp(), end, holder))
    found = []
    for job, spans in by_job.items():
        spans.sort()
        for (s1, e1, h1), (s2, e2, h2) in pairwise(spans):
            if s2 < e1:
                found.append(f"{job}: {h1} [{s1:.3f}, {e1:.3f}] overlaps {h2} from {s2:.3f} "
                             f"to {e2:.3f}")
    return found
