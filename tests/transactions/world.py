"""A world for transaction tests: the sandbox on loopback, a SQLite ERP, a state DB, a config.

Shared by tests/transactions and the transaction scenarios (S02, S20, S21).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette

from connectors.icompleat.sandbox.server import BackgroundServer
from sync.foundation.config import Config, load_config
from sync.foundation.logs import configure
from sync.runtime.context import Runtime, open_runtime
from sync.transactions.webhook import create_webhook_routes
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_TOKEN = "whk-canary-7f3e9a1c55d04b2e"
SUPPLIERS = ("SUP-001", "SUP-002", "SUP-003")


def money(value: Decimal) -> dict[str, Any]:
    """iCompleat's money object for ``value`` in GBP."""
    amount = {"Display": f"£{value:.2f}", "Value": float(value)}
    return {"Base": amount, "Local": dict(amount)}


def tx_body(n: int, tx_type: str = "INV", supplier: str = "SUP-001") -> dict[str, Any]:
    """A realistic transaction detail (without Id) numbered ``n``."""
    net = Decimal(100 + n)
    vat = (net * Decimal("0.2")).quantize(Decimal("0.01"))
    line = {"Code": "4000", "Description": f"Office paper, box {n}", "Quantity": 2,
            "UnitCost": money(net / 2), "Net": money(net), "Vat": money(vat),
            "Gross": money(net + vat),
            "Analysis": [{"Name": "Tax Code", "Value": {"Code": "T1"}}]}
    return {
        "Type": tx_type, "Title": f"{tx_type} {n}", "SupplierName": "Northwind Supplies Ltd",
        "References": {"Identifier": f"{tx_type}-{n:05d}", "PurchaseOrder": f"PO-{n:05d}",
                       "Supplier": supplier},
        "Supplier": {"Name": "Northwind Supplies Ltd", "Code": supplier},
        "Dates": {"Invoice": "2025-03-01", "PaymentDue": "2025-03-31"},
        "Net": money(net), "Vat": money(vat), "Gross": money(net + vat),
        "Analysis": [{"Name": "Currency Code", "Value": {"Code": "GBP"}}],
        "Lines": [line],
    }


class TxWorld:
    """The sandbox, an ERP database file, a state database file and the config between them."""

    def __init__(self, sandbox: Any, root: Path) -> None:
        self.sandbox, self.root = sandbox, root
        self.state = sandbox.state
        self.erp_path = root / "erp.db"
        self.state_path = root / "state.db"
        self.config_path = root / "icsync.toml"
        self._n = 0

    # -- configuration --------------------------------------------------------------------------
    def write_config(self, *, sink: str | None = None, types: tuple[str, ...] = ("INV",),
                     unique_index: bool = True, supplier_check: bool = False,
                     lease_seconds: float = 1.0, refetch: bool = True,
                     max_concurrency: int = 4) -> Config:
        """Write the TOML file and load it."""
        sink_table = sink or self._sql_sink(unique_index, supplier_check)
        self.config_path.write_text(f"""
[state]
url = "sqlite:///{self.state_path}"
lease_seconds = {lease_seconds}

[icompleat]
base_url = "{self.sandbox.url}"
tenant_id = "{TENANT_ID}"
api_key = "{CANARY_KEY}"
max_attempts = 3
backoff_seconds = 0.05
max_backoff_seconds = 0.2
requests_per_minute = 0
max_concurrency = {max_concurrency}

[sinks.erp]
{sink_table}

[webhook]
tokens = ["{WEBHOOK_TOKEN}"]
refetch = {str(refetch).lower()}
max_body_bytes = 200000

[service]
log_format = "json"

[[companies]]
name = "acme"
company_id = "{COMPANY_ID}"
sink = "erp"
transaction_types = {list(types)!r}
""".replace("'", '"'), encoding="utf-8")
        return load_config(self.config_path)

    def _sql_sink(self, unique_index: bool, supplier_check: bool) -> str:
        lines = ['type = "sql"', f'url = "sqlite:///{self.erp_path}"',
                 f"unique_index = {str(unique_index).lower()}"]
        if supplier_check:
            self._suppliers_table()
            lines += ['required_supplier_table = "suppliers"', 'required_supplier_column = "code"']
        return "\n".join(lines)

    def _suppliers_table(self) -> None:
        with sqlite3.connect(self.erp_path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS suppliers (code TEXT PRIMARY KEY)")
            db.executemany("INSERT OR IGNORE INTO suppliers VALUES (?)", [(s,) for s in SUPPLIERS])

    # -- iCompleat ------------------------------------------------------------------------------
    def create(self, tx_type: str = "INV", supplier: str = "SUP-001") -> str:
        """Create one transaction (status SAV); its id."""
        self._n += 1
        tx = self.state.create_transaction(TENANT_ID, COMPANY_ID,
                                           tx_body(self._n, tx_type, supplier))
        return str(tx["Id"])

    def approved(self, count: int, tx_type: str = "INV", supplier: str = "SUP-001") -> list[str]:
        """Create and approve ``count`` transactions; their ids."""
        ids = [self.create(tx_type, supplier) for _ in range(count)]
        for tx_id in ids:
            self.state.approve(TENANT_ID, tx_id)
        return ids

    def remote_journals(self) -> dict[str, str | None]:
        """Approved transaction id -> the journal number iCompleat shows (None: none yet)."""
        return {tx["Id"]: (tx.get("Posting") or {}).get("JournalNumber")
                for tx in self.state.all_transactions(TENANT_ID) if tx["Status"] == "APPR"}

    def record_journal(self, tx_id: str, journal: str) -> None:
        """Record a journal number in iCompleat directly (as another system would)."""
        self.state.edit_transaction(TENANT_ID, tx_id, {"JournalNumber": journal})

    # -- the ERP --------------------------------------------------------------------------------
    def erp_entries(self) -> dict[str, list[str]]:
        """Transaction id -> the journal numbers of its ERP entries (one each, if all is well)."""
        if not self.erp_path.exists():
            return {}
        found: dict[str, list[str]] = defaultdict(list)
        with sqlite3.connect(self.erp_path) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'icsync_transactions'"
                              ).fetchone():
                return {}
            for tx_id, journal in db.execute(
                    "SELECT transaction_id, journal_number FROM icsync_transactions ORDER BY id"):
                found[tx_id].append(journal)
        return dict(found)

    def erp_lines(self) -> int:
        """How many line rows the ERP holds."""
        with sqlite3.connect(self.erp_path) as db:
            return int(db.execute("SELECT count(*) FROM icsync_transaction_lines").fetchone()[0])

    def check_exactly_once(self) -> dict[str, str]:
        """The checker: every approved transaction has exactly one ERP entry with one journal
        number, and iCompleat shows that same number. Returns id -> journal number."""
        entries, remote = self.erp_entries(), self.remote_journals()
        lost = sorted(set(remote) - set(entries))
        doubled = {k: v for k, v in entries.items() if len(v) != 1}
        unexpected = sorted(set(entries) - set(remote))
        disagree = {k: (v[0], remote.get(k)) for k, v in entries.items()
                    if len(v) == 1 and remote.get(k) != v[0]}
        assert (lost, doubled, unexpected, disagree) == ([], {}, [], {})
        return {k: v[0] for k, v in entries.items()}


@dataclass
class PollRun:
    """One ``icsync poll`` subprocess and how it ended."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        """True when the process died of SIGKILL (a crash point fired)."""
        return self.returncode == -signal.SIGKILL

    def summary(self) -> dict[str, Any]:
        """The ``--json`` document it printed."""
        return dict(json.loads(self.stdout))


def run_poll(config_path: Path, *, crash_at: str | None = None, timeout: float = 120,
             extra: tuple[str, ...] = ("--json",)) -> PollRun:
    """Run ``python -m sync.cli poll --config FILE`` with ``ICSYNC_CRASH_AT`` armed or not."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICSYNC_")}
    if crash_at:
        env["ICSYNC_CRASH_AT"] = crash_at
    done = subprocess.run([sys.executable, "-m", "sync.cli", "poll", "--config",
                           str(config_path), *extra], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, check=False)
    return PollRun(done.returncode, done.stdout, done.stderr)


class WebhookServer:
    """sync.transactions.webhook's routes under uvicorn on loopback, on a runtime (and loop) of
    their own,
    as the daemon would serve them."""

    def __init__(self, config: Config) -> None:
        self.runtime: Runtime | None = None

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with open_runtime(config) as rt:
                self.runtime = rt
                app.router.routes.extend(create_webhook_routes(rt))
                yield

        self.server = BackgroundServer(Starlette(lifespan=lifespan))

    @property
    def url(self) -> str:
        """The base URL."""
        return self.server.url

    def endpoint(self, name: str = "invoices") -> str:
        """The URL of one webhook endpoint."""
        return f"{self.url}/webhooks/icompleat/{name}"

    def __enter__(self) -> WebhookServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Every structured log line (JSON, debug and up, from every thread) into a buffer."""
    buffer = io.StringIO()
    configure("json", "debug", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
