"""`icsync check --live` against the sandbox: every route's verdict, table and JSON, GETs only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.cli import main
from sync.foundation.errors import ExitCode
from sync.state.store import StateStore
from tests.daemon.world import write_config
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID

KINDS = ("tax_codes", "account_codes")


def _live_json(config: Path, capsys: pytest.CaptureFixture[str], *extra: str
               ) -> tuple[int, dict[str, dict[str, object]]]:
    capsys.readouterr()
    code = main(["check", "--config", str(config), "--live", "--json", *extra])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "FAIL" not in captured.err, captured.err
    return code, {str(p["route"]): p for p in doc["routes"]}


def test_live_probe_reports_every_route_with_gets_only(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Each route the configuration uses gets a verdict; nothing but GET reaches iCompleat."""
    tx = sandbox.state.create_transaction(TENANT_ID, COMPANY_ID, {"Type": "INV"})
    sandbox.state.approve(TENANT_ID, tx["Id"])
    sandbox.state.log.clear()
    config = write_config(tmp_path, sandbox.url, kinds=KINDS)
    code, routes = _live_json(config, capsys)
    assert code == ExitCode.OK
    for name in ("tenant", "companies", "users", "taxcodes.list", "accountcodes.list",
                 "transactions.list", "transaction.detail"):
        assert routes[name]["verdict"] == "ok", routes[name]
        assert routes[name]["status"] == 200
        assert isinstance(routes[name]["ms"], float)
    assert routes["taxcodes.list"]["basis"] == "documented"
    assert routes["companies"]["basis"] == "assumed"
    assert "customfields.list" not in routes  # not a kind this company syncs
    assert {e.method for e in sandbox.state.log.entries()} == {"GET"}


def test_live_probe_table_and_an_unsupported_read(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The table names each route and verdict; a read answered 404 fails the check."""
    monkeypatch.setenv("COLUMNS", "200")  # whole names, whatever width the runner reports
    sandbox.state.contract.set_unsupported("users", 404)
    config = write_config(tmp_path, sandbox.url, kinds=KINDS)
    capsys.readouterr()
    assert main(["check", "--config", str(config), "--live"]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "iCompleat routes (icsync check --live)" in out
    for word in ("taxcodes.list", "unsupported", "documented", "ok"):
        assert word in out, out


def test_probe_writes_learns_capabilities_without_changing_data(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Write probes hit only unknown codes and ids; 405s are stored and shown by status."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "taxcodes", [{"Code": "S", "Name": "s", "Rate": 5}])
    sandbox.state.contract.set_unsupported("taxcodes.edit", 405)
    sandbox.state.contract.set_unsupported("transaction.journal", 405)
    config = write_config(tmp_path, sandbox.url, kinds=KINDS)
    code, routes = _live_json(config, capsys, "--probe-writes", "--test-company", "acme")
    assert code == ExitCode.OK
    assert routes["taxcodes.edit"]["verdict"] == "unsupported"
    assert routes["taxcodes.delete"]["verdict"] == "ok"
    assert routes["transaction.edit"]["verdict"] == "unsupported"
    assert routes["taxcodes.post"]["verdict"] == "skipped"
    assert sandbox.state.records(TENANT_ID, COMPANY_ID, "taxcodes") == [
        {"Code": "S", "Name": "s", "Rate": 5}]
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        learned = {c.operation: c.supported for c in store.capabilities(TENANT_ID)}
    assert learned["taxcodes.edit"] is False
    assert learned["transaction.journal"] is False
    assert learned["taxcodes.delete"] is True
    assert main(["status", "--config", str(config), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    refused = {c["operation"]: c["fallback"] for c in status["capabilities"]
               if not c["supported"]}
    assert "refresh" in refused["taxcodes.edit"]
    assert "webhook" in refused["transaction.journal"]
    assert main(["check", "--config", str(config)]) == 0
    assert "taxcodes.edit: unsupported" in capsys.readouterr().out


def test_probe_writes_needs_a_test_company(tmp_path: Path, sandbox: SandboxServer) -> None:
    """--probe-writes without --test-company is a usage error, before any call."""
    config = write_config(tmp_path, sandbox.url)
    assert main(["check", "--config", str(config), "--live", "--probe-writes"]) == ExitCode.CONFIG
    assert sandbox.state.log.entries() == []


def test_company_guid_matches_ignoring_case(tmp_path: Path, sandbox: SandboxServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A company id written in upper case is the tenant's company: GUIDs ignore case."""
    config = write_config(tmp_path, sandbox.url)
    config.write_text(config.read_text().replace(COMPANY_ID, COMPANY_ID.upper()))
    assert main(["check", "--config", str(config)]) == 0
    assert "ok   company acme" in capsys.readouterr().out
