"""Edit-one and delete-one answered 404/405: learned, remembered, synced by refresh, re-probed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import apply_changes, create_erp
from sync.foundation.config import Config
from sync.runtime.capabilities import reprobe_due, usable
from sync.state.rows import CapabilityRow
from sync.state.store import StateStore
from tests.fixtures.sandbox import TENANT_ID
from tests.reference.support import (
    erp_execute,
    last_seq,
    make_config,
    remote,
    remote_codes,
    sync,
    writes,
)


def _capabilities(config: Config) -> dict[str, CapabilityRow]:
    with StateStore.open(config.settings.state.url) as store:
        return {r.operation: r for r in store.capabilities(TENANT_ID)}


def _world(sandbox: SandboxServer, tmp_path: Path) -> tuple[Path, Config]:
    erp = create_erp(tmp_path / "erp.db", suppliers_count=600)
    config = make_config(sandbox.url, erp, tmp_path / "state.db")
    assert sync(config).outcome == "ok"
    return erp, config


def test_unsupported_edit_and_delete_converge_by_refresh(sandbox: SandboxServer,
                                                         tmp_path: Path) -> None:
    """Edits and a delete meet 405/404: remembered per tenant, and the kind is refreshed."""
    erp, config = _world(sandbox, tmp_path)
    sandbox.state.contract.set_unsupported("suppliers.edit", 405)
    sandbox.state.contract.set_unsupported("suppliers.delete", 404)
    changes = apply_changes(erp)
    seq = last_seq(sandbox)
    result = sync(config)
    assert result.outcome == "partial", result.to_dict()  # only the invalid row is held back
    new, removed, bad = (c.key for c in changes[3:])
    codes = remote_codes(sandbox, "suppliers")
    assert new in codes
    assert removed not in codes
    assert bad not in codes
    edited = {c.key for c in changes[:3]}
    assert len(edited & set(codes)) == 3
    routes = [e.route for e in writes(sandbox, seq)]
    assert routes.count("suppliers.edit") == 1  # one refused try, then a refresh
    assert routes.count("suppliers.post") == 6  # 600 records: six chunks
    learned = _capabilities(config)
    assert learned["suppliers.edit"].supported is False
    assert learned["suppliers.edit"].status == 405


def test_a_remembered_refusal_goes_straight_to_refresh(sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
    """The next run with an edit plans a refresh at once: no edit call is sent again."""
    erp, config = _world(sandbox, tmp_path)
    sandbox.state.contract.set_unsupported("suppliers.edit", 404)
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 1 1' WHERE rowid = 1")
    sync(config)
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 2 2' WHERE rowid = 2")
    seq = last_seq(sandbox)
    result = sync(config)
    assert result.outcome == "ok", result.to_dict()
    routes = [e.route for e in writes(sandbox, seq)]
    assert "suppliers.edit" not in routes
    assert routes.count("suppliers.post") == 6
    assert "+44 2 2" in {r.get("Telephone") for r in remote(sandbox, "suppliers")}


def test_a_refused_call_is_probed_again_after_the_interval(sandbox: SandboxServer,
                                                           tmp_path: Path) -> None:
    """Once the re-probe interval has passed, the call is tried again and, working, is kept."""
    erp, config = _world(sandbox, tmp_path)
    with StateStore.open(config.settings.state.url) as store:
        store.record_capability(TENANT_ID, "suppliers.edit", supported=False, status=405,
                                detail="refused", at=datetime.now(UTC) - timedelta(days=2))
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 3 3' WHERE rowid = 3")
    seq = last_seq(sandbox)
    assert sync(config).outcome == "ok"
    assert [e.route for e in writes(sandbox, seq)] == ["suppliers.edit"]
    assert _capabilities(config)["suppliers.edit"].supported is True


def test_reprobe_rule() -> None:
    """A refusal is honoured for the interval, then the call is due again."""
    now = datetime(2026, 1, 2, tzinfo=UTC)
    row = CapabilityRow(TENANT_ID, "taxcodes.edit", False, 404, "", now - timedelta(hours=23))
    day = timedelta(days=1)
    assert not usable(row, now, day)
    assert reprobe_due(row, now + timedelta(hours=1), day)
    assert usable(None, now, day)


def _capability_alerts(config: Config) -> list[str]:
    with StateStore.open(config.settings.state.url) as store:
        return [a.key for a in store.alert_conditions() if a.condition == "capability"]


def test_a_capability_change_starts_one_alert_and_its_return_clears_it(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    """A refused edit starts the route's capability alert once; the call working again at its
    re-probe clears it."""
    erp, config = _world(sandbox, tmp_path)
    sandbox.state.contract.set_unsupported("suppliers.edit", 405)
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 4 4' WHERE rowid = 4")
    sync(config)
    assert _capability_alerts(config) == ["capability:suppliers.edit:supported"]
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 5 5' WHERE rowid = 5")
    sync(config)  # remembered: refreshed, no second alert
    assert _capability_alerts(config) == ["capability:suppliers.edit:supported"]
    sandbox.state.contract.clear()
    with StateStore.open(config.settings.state.url) as store:
        store.record_capability(TENANT_ID, "suppliers.edit", supported=False, status=405,
                                detail="refused", at=datetime.now(UTC) - timedelta(days=2))
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 6 6' WHERE rowid = 6")
    assert sync(config).outcome == "ok"
    assert _capability_alerts(config) == []
