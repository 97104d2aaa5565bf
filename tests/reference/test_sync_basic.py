"""The engine end to end: first load, no-op, incremental change, dry run."""

from __future__ import annotations

from pathlib import Path

from connectors.icompleat.sandbox import SandboxServer
from sync.demo.data import apply_changes, create_erp
from sync.foundation.config import Config
from tests.reference.support import last_seq, make_config, remote, remote_codes, sync, writes


def test_first_run_loads_every_kind(sandbox: SandboxServer, config: Config) -> None:
    """A first run sends each kind as a complete set and the sandbox equals the ERP."""
    result = sync(config)
    assert result.outcome == "ok", result.to_dict()
    assert len(remote_codes(sandbox, "suppliers")) == 150
    assert len(remote_codes(sandbox, "currencies")) == 6
    fields = remote(sandbox, "custom_fields")
    assert [f["Name"] for f in fields] == ["Department"]
    suppliers = next(k for k in result.kinds if k.kind == "suppliers")
    assert suppliers.created == 150
    assert suppliers.writes == 2


def test_second_run_makes_no_writes(sandbox: SandboxServer, config: Config) -> None:
    """Over an unchanged source the second run sends nothing."""
    sync(config)
    seq = last_seq(sandbox)
    result = sync(config)
    assert result.outcome == "ok", result.to_dict()
    assert writes(sandbox, seq) == []
    assert all(k.strategy == "none" for k in result.kinds)


def test_changes_flow_incrementally(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Edits, a new and a removed supplier go as targeted calls; the invalid row is held."""
    erp = create_erp(tmp_path / "big.db", suppliers_count=600)
    config = make_config(sandbox.url, erp, tmp_path / "big-state.db")
    sync(config)
    changes = apply_changes(erp)
    seq = last_seq(sandbox)
    result = sync(config)
    assert result.outcome == "partial", result.to_dict()  # the invalid row is rejected
    codes = remote_codes(sandbox, "suppliers")
    new, removed, bad = (c.key for c in changes[3:])
    assert new in codes
    assert removed not in codes
    assert bad not in codes
    routes = sorted(e.route for e in writes(sandbox, seq))
    assert routes == ["suppliers.delete", "suppliers.edit", "suppliers.edit", "suppliers.edit",
                      "suppliers.post"]
    assert result.plan is not None
    assert [r.key for r in result.plan.rejected] == [bad]


def test_dry_run_writes_nothing(sandbox: SandboxServer, config: Config) -> None:
    """A dry run plans every kind and sends no write at all."""
    result = sync(config, dry_run=True)
    assert writes(sandbox) == []
    assert result.plan is not None
    assert {k.kind for k in result.plan.kinds} == {k.kind for k in result.kinds}
    assert next(k for k in result.plan.kinds if k.kind == "suppliers").calls == 2


def test_dry_run_over_an_empty_state_plans_as_over_a_filled_one(sandbox: SandboxServer,
                                                                 tmp_path: Path) -> None:
    """A dry run with an empty state digests only the rows iCompleat already holds (nothing
    else is compared); its plan is the plan of a dry run whose state holds every record."""
    erp = create_erp(tmp_path / "erp.db", suppliers_count=300)
    filled = make_config(sandbox.url, erp, tmp_path / "filled.db")
    sync(filled)
    apply_changes(erp)
    fresh = make_config(sandbox.url, erp, tmp_path / "fresh.db")
    plans = [sync(config, dry_run=True).plan for config in (filled, fresh)]
    suppliers = [next(k for k in p.kinds if k.kind == "suppliers") for p in plans if p]
    assert len(suppliers) == 2
    assert suppliers[0].diff.edited_keys == suppliers[1].diff.edited_keys
    assert len(suppliers[0].diff.edited_keys) == 3
    assert suppliers[0].diff.creates == suppliers[1].diff.creates
    assert len(suppliers[0].diff.creates) == 1
    assert suppliers[0].diff.unchanged == suppliers[1].diff.unchanged == 296
    assert suppliers[0].diff.deletes == suppliers[1].diff.deletes
