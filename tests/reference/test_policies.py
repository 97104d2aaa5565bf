"""Delete policy, the guard inside a run, and the operator's retry of a quarantined row."""

from __future__ import annotations

from pathlib import Path

from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.config import Config
from sync.state.store import StateStore
from tests.reference.support import (
    COMPANY,
    erp_execute,
    last_seq,
    make_config,
    remote_codes,
    sync,
    writes,
)


def test_ignore_policy_never_deletes(sandbox: SandboxServer, erp: Path, tmp_path: Path) -> None:
    """Suppliers under "ignore": one removed from the ERP stays in iCompleat, even through a
    refresh, and the next run is a no-op."""
    config = make_config(sandbox.url, erp, tmp_path / "s.db", delete_policy={"suppliers": "ignore"})
    sync(config)
    erp_execute(erp, "DELETE FROM suppliers WHERE supplier_code = 'S00010'")
    erp_execute(erp, "UPDATE suppliers SET phone = '1' WHERE supplier_code < 'S00005'")
    result = sync(config)
    assert "S00010" in remote_codes(sandbox, "suppliers")
    assert {k.kind: k for k in result.kinds}["suppliers"].deleted == 0
    seq = last_seq(sandbox)
    sync(config)
    assert writes(sandbox, seq) == []


def test_blocked_shrink_still_sends_edits(sandbox: SandboxServer, config: Config,
                                          erp: Path) -> None:
    """30% of suppliers gone and one edited: blocked (exit 3), no delete sent, the edit is."""
    sync(config)
    erp_execute(erp, "DELETE FROM suppliers WHERE supplier_code > 'S00105'")
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 1' WHERE supplier_code = 'S00001'")
    seq = last_seq(sandbox)
    result = sync(config)
    assert result.outcome == "blocked"
    assert int(result.exit_code) == 3
    assert [e.route for e in writes(sandbox, seq)] == ["suppliers.edit"]
    assert len(remote_codes(sandbox, "suppliers")) == 150
    kind = {k.kind: k for k in result.kinds}["suppliers"]
    assert "--allow-deletes" in (kind.error or "")
    allowed = sync(config, allow_deletes=True)
    assert allowed.outcome == "ok"
    assert len(remote_codes(sandbox, "suppliers")) == 105


def test_operator_retry_resends_a_quarantined_row(sandbox: SandboxServer, config: Config,
                                                  erp: Path) -> None:
    """A row iCompleat refused is held until an operator sets it to retry."""
    sync(config)
    # A name iCompleat refuses although it passes icsync's validation is hard to make here,
    # so quarantine one by hand as iCompleat's refusal would.
    store = StateStore.open(config.settings.state.url)
    try:
        from sync.state.rows import QuarantineEntry

        erp_execute(erp, "UPDATE suppliers SET phone = '+44 2' WHERE supplier_code = 'S00003'")
        from tests.scenarios.checker import expected

        digest = expected(config, "suppliers")[0]["S00003"]
        store.quarantine(COMPANY, "suppliers", [QuarantineEntry(
            key="S00003", reason="remote_rejected", message="refused", origin="remote",
            source_digest=digest)])
        seq = last_seq(sandbox)
        held = sync(config)
        assert writes(sandbox, seq) == []
        assert {k.kind: k for k in held.kinds}["suppliers"].rejected == 1
        row = store.quarantined(COMPANY, "suppliers")[0]
        store.set_quarantine_status([row.id], "retry")
        seq = last_seq(sandbox)
        sync(config)
        assert [e.route for e in writes(sandbox, seq)] == ["suppliers.edit"]
        assert store.quarantined(COMPANY, "suppliers", None) == []
    finally:
        store.close()


def test_unknown_company_quarantines_nothing(sandbox: SandboxServer, erp: Path,
                                             tmp_path: Path) -> None:
    """iCompleat does not know the company (400, code 2): every kind fails, naming the company;
    no record is quarantined, since the records are not at fault."""
    config = make_config(sandbox.url, erp, tmp_path / "s.db")
    bad = config.settings.model_copy(update={"companies": [
        config.settings.companies[0].model_copy(update={"company_id": "0" * 8})]})
    config = Config(bad)
    result = sync(config)
    assert result.outcome == "partial"
    assert all(k.outcome == "partial" and "00000000" in (k.error or "") for k in result.kinds)
    store = StateStore.open(config.settings.state.url)
    try:
        assert store.quarantined(COMPANY, None, None) == []
    finally:
        store.close()
