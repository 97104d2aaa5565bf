"""Operator commands on a real state DB and the sandbox: status, check, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.cli import main
from sync.daemon.jobs import ScheduledJob
from sync.daemon.metrics import Metrics
from sync.daemon.schedules import build_trigger
from sync.foundation.errors import ExitCode
from sync.state.store import Fence, QuarantineEntry, StateStore
from tests.daemon.world import write_config
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID


class _Done:
    outcome = "partial"
    exit_code = 4

    def to_dict(self) -> dict[str, object]:
        return {"kinds": [{"kind": "suppliers", "created": 3, "rejected": 1}]}


async def _done(_fence: Fence) -> _Done:
    return _Done()


def _seed(root: Path) -> None:
    """A finished run, quarantined records, ledger rows in several states, a held lease."""
    with StateStore.open(f"sqlite:///{root / 'state.db'}") as store:
        store.quarantine("acme", "suppliers", [
            QuarantineEntry("S1", "bad_iban", "supplier S1: BankAccountNumber is not an IBAN",
                            field="BankAccountNumber"),
            QuarantineEntry("S2", "too_long", "supplier S2: Name is over 100 characters")])
        for tx_id, status in (("tx-posted", "posted"), ("tx-bad", "quarantined")):
            store.ledger_seen(COMPANY_ID, tx_id, "INV")
            store.ledger_transition(COMPANY_ID, tx_id, expect=["seen"], to=status,
                                    last_error="ERP refused: unknown supplier SUP-9")
        store.acquire_lease("acme:transactions", "host-b:42:abcd", 300)


async def _run_once(root: Path) -> None:
    with StateStore.open(f"sqlite:///{root / 'state.db'}") as store:
        job = ScheduledJob(company="acme", job="reference", action=_done, store=store,
                           holder="host-a:1:beef", lease_seconds=5, metrics=Metrics(),
                           trigger=build_trigger("15m"))
        await job()


async def test_status_json_and_tables(tmp_path: Path, sandbox: SandboxServer,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Last runs with counts, quarantine, ledger backlog and leases with their holders."""
    config = write_config(tmp_path, sandbox.url)
    await _run_once(tmp_path)
    _seed(tmp_path)
    capsys.readouterr()
    assert main(["status", "--config", str(config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    run = next(r for r in doc["runs"] if r["job"] == "reference")
    assert (run["outcome"], run["holder"]) == ("partial", "host-a:1:beef")
    assert run["counts"] == "suppliers: created 3, rejected 1"
    assert doc["quarantine"] == [{"company": "acme", "kind": "suppliers", "open": 2}]
    assert {(b["status"], b["count"]) for b in doc["ledger"]} == {("posted", 1),
                                                                  ("quarantined", 1)}
    leases = {lease["name"]: lease for lease in doc["leases"]}
    assert leases["acme:transactions"]["holder"] == "host-b:42:abcd"
    assert leases["acme:transactions"]["live"] is True
    assert leases["acme:reference"]["live"] is False
    assert main(["status", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    for title in ("Last runs", "Quarantined records", "Transaction ledger backlog", "Leases"):
        assert title in text
    assert "host-b:42:abcd" in text
    # Times in the tables to the second, in UTC (the JSON keeps the whole value).
    expires = datetime.fromisoformat(leases["acme:transactions"]["expires_at"])
    assert f"{expires.astimezone(UTC):%Y-%m-%d %H:%M:%S}" in text
    assert "+00:00" not in text


def test_check_all_ok(tmp_path: Path, sandbox: SandboxServer,
                      capsys: pytest.CaptureFixture[str]) -> None:
    """Every step reported ok: configuration, state DB, source kinds, sink, tenant, company."""
    assert main(["check", "--config", str(write_config(tmp_path, sandbox.url))]) == 0
    out = capsys.readouterr().out
    for step in ("configuration", "state database", "source erp: tax_codes for acme",
                 "sink erp", "iCompleat tenant", "iCompleat companies", "company acme"):
        assert f"ok   {step}" in out, out
    assert "FAIL" not in out


def test_check_reports_rejected_key_with_exit_5(tmp_path: Path, sandbox: SandboxServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A refused key fails the iCompleat steps with exit 5; the other steps still report."""
    config = write_config(tmp_path, sandbox.url, api_key="wrong-key-for-check-1234")
    assert main(["check", "--config", str(config)]) == ExitCode.AUTH
    out = capsys.readouterr().out
    assert "FAIL iCompleat tenant" in out
    assert "ok   source erp: account_codes for acme" in out
    assert "wrong-key-for-check-1234" not in out


def test_check_broken_source_and_unknown_company(tmp_path: Path, sandbox: SandboxServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable source fails its step; a company id not in the tenant is a config error."""
    source = (f'type = "sql"\nurl = "sqlite:///{tmp_path / "missing-dir" / "erp.db"}"\n'
              '[sources.erp.kinds.tax_codes]\ntable = "tax_codes"\n'
              '[sources.erp.kinds.account_codes]\ntable = "accounts"')
    config = write_config(tmp_path, sandbox.url, source=source)
    text = config.read_text().replace(COMPANY_ID, "00000000-0000-0000-0000-00000000dead")
    config.write_text(text)
    assert main(["check", "--config", str(config)]) == ExitCode.CONFIG
    out = capsys.readouterr().out
    assert "FAIL source erp: tax_codes for acme" in out
    assert "FAIL company acme" in out
    assert "companies.0.company_id" in out
    assert CANARY_KEY not in out


def test_check_bad_configuration_exits_2(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A configuration that does not validate stops the check at the first step."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[service]\nlisten = 8787\n")
    assert main(["check", "--config", str(bad)]) == ExitCode.CONFIG
    assert "FAIL configuration" in capsys.readouterr().out


def test_errors_ids_after_options_and_unknown_words(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The ids may follow the options, as the usage line writes them; an unknown option
    there is still a usage error (exit 2), and so is a stray word after another command."""
    config = str(write_config(tmp_path, sandbox.url))
    _seed(tmp_path)
    assert main(["errors", "resolve", "--config", config, "--kind", "transactions",
                 "tx-bad"]) == 0
    assert capsys.readouterr().out == "1 item(s) resolved.\n"
    with pytest.raises(SystemExit) as exited:
        main(["errors", "retry", "--config", config, "1", "--colour"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["status", "--config", config, "extra"])
    assert exited.value.code == 2
    assert "unrecognized arguments: extra" in capsys.readouterr().err


def test_errors_list_retry_resolve(tmp_path: Path, sandbox: SandboxServer,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """List both kinds of quarantine; retry a record; resolve a transaction; refuse unknown ids."""
    config = str(write_config(tmp_path, sandbox.url))
    _seed(tmp_path)
    assert main(["errors", "list", "--config", config, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in listed["records"]] == ["S1", "S2"]
    assert listed["records"][0]["field"] == "BankAccountNumber"
    assert [t["id"] for t in listed["transactions"]] == ["tx-bad"]
    first = str(listed["records"][0]["id"])
    assert main(["errors", "retry", first, "--config", config]) == 0
    assert main(["errors", "retry", "--config", config, "tx-bad"]) == 0  # ids after options
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        assert [r.key for r in store.quarantined("acme", status="retry")] == ["S1"]
        row = store.ledger_get(COMPANY_ID, "tx-bad")
        assert row is not None
        assert row.attempts == 0
        assert row.next_attempt_at is not None
        assert row.next_attempt_at <= datetime.now(UTC)
    assert main(["errors", "resolve", "tx-bad", "--config", config]) == 0
    capsys.readouterr()
    assert main(["errors", "list", "--config", config, "--kind", "transactions", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"records": [], "transactions": []}
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        row = store.ledger_get(COMPANY_ID, "tx-bad")
        assert row is not None
        assert (row.status, row.next_attempt_at) == ("quarantined", None)
        assert (row.last_error or "").startswith("resolved by an operator")
    assert main(["errors", "resolve", "999", "--config", config]) == ExitCode.CONFIG
    assert main(["errors", "retry", "--config", config]) == ExitCode.CONFIG
    assert main(["errors", "resolve", "--all", "--kind", "suppliers", "--config", config]) == 0
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        assert {r.key for r in store.quarantined("acme", status="resolved")} == {"S1", "S2"}
