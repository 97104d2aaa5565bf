"""End to end over real exports: check, dry run, sync, change, guard and --full through the
real command line and the sandbox over loopback. After each step the sandbox holds exactly the
valid rows, and every rejected row is named (in the plan and in `icsync errors list`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.cli import main
from tests.erp.support import copy_samples, settings, write_config
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID
from tests.reference.support import last_seq, writes

VALID_SUPPLIERS = {"ABB001": "Abbey Stationers Ltd", "CAF002": "Café Lumière SARL",
                   "KEN005": "Kent Packaging Ltd", "MUL006": "Müller Maschinenbau GmbH"}
REJECTED = {("BRO003", "bad_iban"), ("DUP01", "duplicate_key"), ("dup01", "duplicate_key"),
            ("LON007", "too_long"), ("ISO008", "bad_iso_country")}
KINDS = ["currencies", "tax_codes", "account_codes", "suppliers"]


def remote(sandbox: SandboxServer, kind: str) -> dict[str, dict[str, Any]]:
    """The sandbox's records of ``kind`` by code."""
    return {r["Code"]: r for r in sandbox.state.records(TENANT_ID, COMPANY_ID, kind)}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``icsync ARGS`` in process: the exit code and standard output."""
    code = main(list(args))
    return code, capsys.readouterr().out


def rewrite(path: Path, change: Any) -> None:
    """Rewrite a Windows-1252 CRLF export line by line (``change`` maps a line to lines)."""
    lines = path.read_bytes().decode("cp1252").split("\r\n")
    out = [new for line in lines for new in change(line)]
    path.write_bytes("\r\n".join(out).encode("cp1252"))


@pytest.fixture
def sage50(sandbox: SandboxServer, tmp_path: Path) -> Path:
    """A configuration over a copy of the Sage 50 exports, preset sage50, base GBP."""
    folder = copy_samples("sage50", tmp_path)
    source = {"type": "files", "directory": str(folder), "preset": "sage50",
              "kinds": {"currencies": {"base_currency": "GBP"}}}
    data = settings(sandbox.url, tmp_path / "state.db", source, company={"kinds": KINDS},
                    validation={"bank": "reject"})
    return write_config(tmp_path / "icsync.toml", data)


def assert_remote_is_valid_rows(sandbox: SandboxServer, suppliers: dict[str, str]) -> None:
    """The sandbox holds exactly the valid rows of every kind."""
    assert {c: r["Name"] for c, r in remote(sandbox, "suppliers").items()} == suppliers
    assert set(remote(sandbox, "accountcodes")) == {"0030", "4000", "5000", "7502", "7900"}
    assert {c: r["Rate"] for c, r in remote(sandbox, "taxcodes").items()} == {
        "T0": 0, "T1": 20, "T5": 5, "T9": 0}
    currencies = remote(sandbox, "currencycodes")
    assert {c for c, r in currencies.items() if r.get("IsBase")} == {"GBP"}
    assert set(currencies) == {"GBP", "EUR", "USD"}


def test_sage50_exports_end_to_end(sandbox: SandboxServer, sage50: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """check, dry run, sync, no-op, change, guard, override and --full over Sage 50 exports."""
    config = str(sage50)
    suppliers_csv = tmp_path / "sage50" / "suppliers.csv"
    code, out = cli(capsys, "check", "--config", config)
    assert code == 0, out
    assert "1 blank rows skipped" in out

    code, out = cli(capsys, "sync", "--config", config, "--dry-run", "--json")
    plan = json.loads(out)["companies"][0]["plan"]
    assert code == 4
    assert writes(sandbox) == []
    assert {(r["key"], r["reason"]) for r in plan["rejected"]} == REJECTED

    code, out = cli(capsys, "sync", "--config", config)
    assert code == 4
    assert len(writes(sandbox)) == plan["total_calls"]  # the dry run's plan is what ran
    assert "suppliers: 1 blank row(s) skipped" in out
    assert_remote_is_valid_rows(sandbox, VALID_SUPPLIERS)
    code, out = cli(capsys, "errors", "list", "--config", config, "--json")
    named = {(r["key"], r["reason"]) for r in json.loads(out)["records"]}
    assert named == REJECTED

    seq = last_seq(sandbox)
    assert cli(capsys, "sync", "--config", config)[0] == 4
    assert writes(sandbox, seq) == []  # an unchanged export makes no call

    rewrite(suppliers_csv, lambda line: [line.replace("Kent Packaging Ltd", "Kent Packaging plc")])
    seq = last_seq(sandbox)
    assert cli(capsys, "sync", "--config", config)[0] == 4
    assert [e.method for e in writes(sandbox, seq)] == ["PUT"]
    changed = {**VALID_SUPPLIERS, "KEN005": "Kent Packaging plc"}
    assert_remote_is_valid_rows(sandbox, changed)

    original = suppliers_csv.read_bytes()
    rewrite(suppliers_csv, lambda line: [] if line.startswith(("CAF002", "KEN005", "MUL006"))
            else [line])
    code, out = cli(capsys, "sync", "--config", config, "--dry-run", "--json")
    planned = {k["kind"]: k for k in json.loads(out)["companies"][0]["plan"]["kinds"]}
    assert code == 3
    seq = last_seq(sandbox)
    code, out = cli(capsys, "sync", "--config", config)
    assert code == 3
    assert len(writes(sandbox, seq)) == planned["suppliers"]["calls"] == 0
    assert "Nothing will be deleted or refreshed" in out
    assert_remote_is_valid_rows(sandbox, changed)

    assert cli(capsys, "sync", "--config", config, "--allow-deletes")[0] == 4
    assert_remote_is_valid_rows(sandbox, {"ABB001": "Abbey Stationers Ltd"})

    suppliers_csv.write_bytes(original)
    assert sandbox.state.remove(TENANT_ID, COMPANY_ID, "suppliers", "ABB001")  # by hand
    code, out = cli(capsys, "sync", "--config", config, "--full")
    assert code == 4
    assert "suppliers: 1 record(s) changed in iCompleat (repaired from the source)" in out
    assert_remote_is_valid_rows(sandbox, changed)


def test_business_central_workbooks_and_netsuite_csv(sandbox: SandboxServer, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Excel workbooks (Business Central) and BOM-marked CSV (NetSuite) sync exactly their
    valid, active rows; a second run makes no call."""
    for erp, expected in (("business_central", {"V00010", "V00020"}),
                          ("netsuite", {"VEN-0001", "VEN-0002"})):
        sandbox.state.reset()
        folder = copy_samples(erp, tmp_path)
        source = {"type": "files", "directory": str(folder), "preset": erp,
                  "kinds": {"currencies": {"base_currency": "GBP"}} if erp != "netsuite"
                  else {}}
        data = settings(sandbox.url, tmp_path / f"{erp}.db", source,
                        company={"kinds": ["currencies", "account_codes", "suppliers"]})
        config = str(write_config(tmp_path / f"{erp}.toml", data))
        code, out = cli(capsys, "sync", "--config", config)
        assert code == 0, out
        assert set(remote(sandbox, "suppliers")) == expected
        assert {c for c, r in remote(sandbox, "currencycodes").items() if r.get("IsBase")} == {
            "GBP"}
        seq = last_seq(sandbox)
        assert cli(capsys, "sync", "--config", config)[0] == 0
        assert writes(sandbox, seq) == []
