"""Helpers shared by the engine tests and the fault scenarios: a real config over a real ERP.

Every test runs the real engine against the sandbox over loopback HTTP, a SQLite ERP made by
:mod:`sync.demo.data` (read through ``connectors.sql``) and a real SQLite state database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from connectors.icompleat.client import CallRecord
from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import source_settings
from sync.foundation.config import Config, parse_settings
from sync.reference.engine import CompanyResult, sync_company
from sync.runtime.context import open_runtime
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

COMPANY = "uk"


def settings_dict(sandbox_url: str, erp: Path, state: Path, **company: Any) -> dict[str, Any]:
    """A whole configuration: the sandbox, the ERP as source ``erp``, one company ``uk``."""
    return {
        "state": {"url": f"sqlite:///{state}", "lease_seconds": 3},
        "icompleat": {"base_url": sandbox_url, "tenant_id": TENANT_ID, "api_key": CANARY_KEY,
                      "requests_per_minute": 0, "timeout_seconds": 5, "backoff_seconds": 0.01,
                      "max_backoff_seconds": 0.05},
        "sources": {"erp": source_settings(erp)},
        "companies": [{"name": COMPANY, "company_id": COMPANY_ID, "source": "erp", **company}],
    }


def make_config(sandbox_url: str, erp: Path, state: Path, **company: Any) -> Config:
    """The validated configuration of :func:`settings_dict`."""
    return Config(parse_settings(settings_dict(sandbox_url, erp, state, **company)))


async def run_sync(config: Config, *, on_call: Callable[[CallRecord], None] | None = None,
                   **options: Any) -> CompanyResult:
    """One ``sync_company`` of the configured company in a fresh runtime."""
    async with open_runtime(config, on_call=on_call) as rt:
        return await sync_company(rt, config.settings.companies[0], **options)


def sync(config: Config, **options: Any) -> CompanyResult:
    """:func:`run_sync` from synchronous code."""
    return asyncio.run(run_sync(config, **options))


def remote(sandbox: SandboxServer, kind: str) -> list[dict[str, Any]]:
    """Every record the sandbox holds for ``kind``."""
    return sandbox.state.records(TENANT_ID, COMPANY_ID, kind)


def remote_codes(sandbox: SandboxServer, kind: str) -> list[str]:
    """The codes the sandbox holds for a paged kind."""
    return [r["Code"] for r in remote(sandbox, kind)]


def writes(sandbox: SandboxServer, since: int = 0) -> list[Any]:
    """Write requests the sandbox logged after sequence number ``since``."""
    return [e for e in sandbox.state.log.entries() if e.method != "GET" and e.seq > since]


def last_seq(sandbox: SandboxServer) -> int:
    """The sequence number of the last logged request (0 when none)."""
    entries = sandbox.state.log.entries()
    return entries[-1].seq if entries else 0


def erp_execute(erp: Path, sql: str, params: Sequence[Any] = ()) -> int:
    """Run one statement against the ERP; the rows it changed."""
    with closing(sqlite3.connect(erp)) as db, db:
        return db.execute(sql, params).rowcount
