"""Continuation tokens and leases: an append token iCompleat no longer honours, and two runs of
one company at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.cli import main
from sync.demo.data import create_erp
from sync.foundation.config import Config
from sync.foundation.errors import LeaseLost
from sync.foundation.tomlout import toml_text
from sync.reference.engine import sync_company
from sync.runtime.context import open_runtime
from sync.state.store import StateStore
from tests.reference.support import (
    erp_execute,
    last_seq,
    make_config,
    remote_codes,
    settings_dict,
    sync,
    writes,
)


def test_expired_token_falls_back_to_a_refresh(sandbox: SandboxServer, tmp_path: Path) -> None:
    """The stored token expired in iCompleat (400, code 20): the new supplier goes in a
    complete set instead, in the same run."""
    erp = create_erp(tmp_path / "erp.db", suppliers_count=600)
    config = make_config(sandbox.url, erp, tmp_path / "state.db")
    sync(config)
    erp_execute(erp, "INSERT INTO suppliers (supplier_code, supplier_name) VALUES "
                     "('S09999', 'Late Arrival Ltd')")
    clock = sandbox.state.clock
    sandbox.state.clock = lambda: clock() + 7200  # every token of the sandbox has expired
    seq = last_seq(sandbox)
    result = sync(config)
    statuses = [(e.route, e.status) for e in writes(sandbox, seq)]
    assert statuses[0] == ("suppliers.post", 400)
    assert statuses[1:] == [("suppliers.post", 200)] * 7  # a complete set of 601
    assert result.outcome == "ok", result.to_dict()
    assert "S09999" in remote_codes(sandbox, "suppliers")


def test_second_instance_waits_then_gives_up(sandbox: SandboxServer, config: Config, erp: Path,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """While another instance holds the company's reference lease, `icsync sync` waits one
    lease time for it, then exits 1 naming the holder, having sent nothing."""
    path = tmp_path / "icsync.toml"
    path.write_text(toml_text(settings_dict(sandbox.url, erp, tmp_path / "lease-state.db")))
    store = StateStore.open(f"sqlite:///{tmp_path / 'lease-state.db'}")
    try:
        fence = store.acquire_lease("uk:reference", "other-host:1:abcd", 30)
        assert fence is not None
        started = time.monotonic()
        assert main(["sync", "--config", str(path)]) == 1
        assert time.monotonic() - started >= 3  # lease_seconds in the test configuration
        assert "other-host:1:abcd" in capsys.readouterr().err
        assert writes(sandbox) == []
        store.release_lease(fence)
        assert main(["sync", "--config", str(path)]) == 0
    finally:
        store.close()


def test_lost_lease_stops_the_run(sandbox: SandboxServer, config: Config) -> None:
    """A fence another instance has since taken over: the first state write raises LeaseLost
    out of sync_company (not an outcome), before anything is sent to iCompleat."""
    async def attempt() -> None:
        async with open_runtime(config) as rt:
            old = rt.store.acquire_lease("uk:reference", "me:1:aaaa", 0.2)
            assert old is not None
            await asyncio.sleep(0.3)
            assert rt.store.acquire_lease("uk:reference", "other:2:bbbb", 30) is not None
            await sync_company(rt, config.settings.companies[0], fence=old)

    with pytest.raises(LeaseLost):
        asyncio.run(attempt())
    assert writes(sandbox) == []
