"""The first day with a real ERP: each defect a new user met, as a regression test through the
real command line, the sandbox over loopback and real files and SQLite databases."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from connectors.icompleat.sandbox import SandboxServer
from sync.cli import main
from sync.console.render import render_plan
from sync.daemon.jobs import is_failure
from sync.demo.data import create_erp, source_settings
from sync.reference.engine import sync_company
from sync.runtime.context import open_runtime
from sync.runtime.jobrun import JobReport, fill
from sync.transactions.rules import PollResult
from tests.erp.support import settings, write_config
from tests.reference.support import erp_execute, last_seq, make_config, writes

HEADER = "Code,Name,IsoCode,VatNumber,BankAccountNumber\r\n"


def csv_folder(tmp_path: Path, body: bytes, name: str = "suppliers.csv") -> Path:
    """A folder holding one export ``name`` with ``body``."""
    folder = tmp_path / "exports"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(body)
    return folder


def files_config(sandbox: SandboxServer, tmp_path: Path, folder: Path,
                 kinds: dict[str, dict[str, Any]], **extra: Any) -> Path:
    """A configuration file syncing ``kinds`` from the exports in ``folder``."""
    source = {"type": "files", "directory": str(folder), "kinds": kinds}
    data = settings(sandbox.url, tmp_path / "state.db", source,
                    company={"kinds": list(kinds)}, **extra)
    return write_config(tmp_path / "icsync.toml", data)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``icsync ARGS`` in process: exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


CP1252 = (HEADER + "A1,Abbey Ltd,GB,,\r\nB2,Café Lumière,FR,,\r\n,,,,\r\n").encode("cp1252")


def test_windows_1252_export_is_a_clear_error_in_check_and_sync(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Windows-1252 file read as UTF-8: check and the dry run both exit 2 naming the file,
    the line and the encoding to set; no traceback, nothing sent. Check's lines are never
    broken, however narrow the terminal and long the path."""
    monkeypatch.setenv("COLUMNS", "40")
    config = files_config(sandbox, tmp_path, csv_folder(tmp_path, CP1252), {"suppliers": {}})
    code, out, _ = cli(capsys, "check", "--config", str(config))
    assert code == 2
    assert "suppliers.csv: line 3" in out
    assert 'encoding = "cp1252"' in out
    code, _, err = cli(capsys, "sync", "--config", str(config), "--dry-run")
    assert code == 2
    assert "suppliers.csv: line 3" in err
    assert "Traceback" not in err
    assert writes(sandbox) == []


def test_undecodable_rows_can_be_quarantined_instead(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With encoding_errors = "quarantine" only the undecodable row is rejected (bad_encoding),
    the rest is synced, and the next run makes no write."""
    config = files_config(sandbox, tmp_path, csv_folder(tmp_path, CP1252),
                          {"suppliers": {"encoding_errors": "quarantine"}})
    code, out, _ = cli(capsys, "sync", "--config", str(config), "--dry-run")
    assert code == 4
    assert "bad_encoding" in out
    assert cli(capsys, "sync", "--config", str(config))[0] == 4
    seq = last_seq(sandbox)
    assert [r["Code"] for r in sandbox.state.records(*_ids(), "suppliers")] == ["A1"]
    assert cli(capsys, "sync", "--config", str(config))[0] == 4
    assert writes(sandbox, seq) == []


def _ids() -> tuple[str, str]:
    from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID

    return TENANT_ID, COMPANY_ID


def test_sql_text_that_is_not_utf8_names_the_column(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A SQLite ERP holding Windows-1252 text: check exits 2 naming the column and cp1252;
    with encoding = "cp1252" on the kind the names read correctly."""
    erp = create_erp(tmp_path / "erp.db", suppliers_count=3)
    with closing(sqlite3.connect(erp)) as db, db:
        db.execute("UPDATE suppliers SET supplier_name = CAST(? AS TEXT) WHERE rowid = 1",
                   ("Café Lumière".encode("cp1252"),))
    source = source_settings(erp)
    source["kinds"] = {"suppliers": source["kinds"]["suppliers"]}
    data = settings(sandbox.url, tmp_path / "state.db", source, company={"kinds": ["suppliers"]})
    config = write_config(tmp_path / "icsync.toml", data)
    code, out, _ = cli(capsys, "check", "--config", str(config))
    assert code == 2
    assert "column 'Name'" in out or "column 'supplier_name'" in out
    assert 'encoding = "cp1252"' in out
    source["kinds"]["suppliers"]["encoding"] = "cp1252"
    write_config(config, data)
    code, out, _ = cli(capsys, "sync", "--config", str(config), "--dry-run", "--json")
    plan = json.loads(out)["companies"][0]["plan"]
    assert code == 0
    assert len(plan["kinds"][0]["creates"]) == 3


def test_missing_export_is_named_and_never_nothing_to_do(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing export file: the plan table still lists the kind (not read), the error is
    printed, and "Nothing to do" is not; exit 4."""
    folder = csv_folder(tmp_path, (HEADER + "A1,Abbey,GB,,\r\n").encode())
    config = files_config(sandbox, tmp_path, folder, {"suppliers": {}, "tax_codes": {}})
    (folder / "suppliers.csv").unlink()
    code, out, _ = cli(capsys, "sync", "--config", str(config), "--dry-run")
    assert code == 4
    assert "Nothing to do" not in out
    assert "Suppliers" in out
    assert "not read" in out
    assert "the file does not exist" in out


def test_status_shows_counts_and_errors_of_command_line_runs(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`icsync status` shows a command-line run's counts per kind and its error, as it does
    for the daemon's runs."""
    folder = csv_folder(tmp_path, (HEADER + "A1,Abbey,GB,,\r\nB2,Brown,GB,,\r\n").encode())
    config = files_config(sandbox, tmp_path, folder, {"tax_codes": {}, "suppliers": {}})
    assert cli(capsys, "sync", "--config", str(config))[0] == 4  # no tax code export
    code, out, _ = cli(capsys, "status", "--config", str(config), "--json")
    run = json.loads(out)["runs"][0]
    assert code == 0
    assert "suppliers: created 2" in run["counts"]
    assert "tax_codes" in (run["error"] or "")


def test_rejected_counts_rows_and_listings_cut_by_record(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A row with two bad fields counts once per kind and in the total."""
    body = HEADER + "A1,Abbey,ZZ,,GB00BUKB20201555555555\r\nB2,Brown,GB,,\r\n"
    config = files_config(sandbox, tmp_path, csv_folder(tmp_path, body.encode()),
                          {"suppliers": {}}, validation={"bank": "reject"})
    code, out, _ = cli(capsys, "sync", "--config", str(config), "--dry-run", "--json")
    company = json.loads(out)["companies"][0]
    assert code == 4
    assert company["plan"]["kinds"][0]["rejected"] == 1
    assert company["kinds"][0]["rejected"] == 1
    assert len(company["plan"]["rejected"]) == 2  # both reasons are still listed


async def _dry_plan(config: Any) -> Any:
    async with open_runtime(config) as rt:
        return (await sync_company(rt, config.settings.companies[0], dry_run=True)).plan


def test_more_lines_count_records_not_lines(sandbox: SandboxServer, tmp_path: Path) -> None:
    """"... and N more" counts the records left out, not their lines."""
    import asyncio

    erp = create_erp(tmp_path / "erp.db", suppliers_count=10)
    config = make_config(sandbox.url, erp, tmp_path / "state.db", kinds=["suppliers"])
    from tests.reference.support import sync

    sync(config)
    erp_execute(erp, "UPDATE suppliers SET supplier_name = supplier_name || ' (new)', "
                     "town = 'Elsewhere' WHERE rowid <= 4")
    plan = asyncio.run(_dry_plan(config))
    console = Console(record=True, width=200)
    render_plan(plan, console, limit=1)
    text = console.export_text()
    assert "... and 3 more" in text


def test_guard_dry_run_plan_is_what_the_blocked_run_writes(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A shrink past the guard: the dry run's plan (strategy, calls) is exactly what the real
    run sends (creates and edits, one record at a time), and both exit 3 saying so."""
    erp = create_erp(tmp_path / "erp.db", suppliers_count=150)
    data = settings(sandbox.url, tmp_path / "state.db", source_settings(erp),
                    company={"kinds": ["suppliers"]})
    config = write_config(tmp_path / "icsync.toml", data)
    assert cli(capsys, "sync", "--config", str(config))[0] == 0
    erp_execute(erp, "DELETE FROM suppliers WHERE rowid > 110")
    erp_execute(erp, "UPDATE suppliers SET supplier_name = supplier_name || ' Ltd' "
                     "WHERE rowid <= 3")
    code, out, _ = cli(capsys, "sync", "--config", str(config), "--dry-run", "--json")
    planned = json.loads(out)["companies"][0]["plan"]["kinds"][0]
    assert code == 3
    assert (planned["strategy"], planned["calls"]) == ("targeted", 3)
    seq = last_seq(sandbox)
    code, out, _ = cli(capsys, "sync", "--config", str(config))
    sent = writes(sandbox, seq)
    assert code == 3
    assert len(sent) == planned["calls"]
    assert {e.method for e in sent} == {"PUT"}
    assert "creates and edits still go out" in out


def test_errors_list_keeps_bracketed_text(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`icsync errors list` prints "[validation] vat" in a message as it is."""
    body = HEADER + "A1,Abbey,GB,GB123456789,\r\n"
    config = files_config(sandbox, tmp_path, csv_folder(tmp_path, body.encode()),
                          {"suppliers": {}}, validation={"vat": "reject"})
    assert cli(capsys, "sync", "--config", str(config))[0] == 4
    code, out, _ = cli(capsys, "errors", "list", "--config", str(config))
    assert code == 0
    assert "[validation]" in " ".join(out.split())


def test_check_exits_2_for_a_bad_query_and_a_missing_mapped_column(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A query with a syntax error, and a mapping to a column the source lacks, are
    configuration errors (exit 2) naming the setting."""
    erp = create_erp(tmp_path / "erp.db", suppliers_count=3)
    source = {"type": "sql", "url": f"sqlite:///{erp}", "kinds": {
        "suppliers": {"query": "SELEC supplier_code AS Code FROM suppliers"}}}
    data = settings(sandbox.url, tmp_path / "state.db", source, company={"kinds": ["suppliers"]})
    config = write_config(tmp_path / "icsync.toml", data)
    code, out, _ = cli(capsys, "check", "--config", str(config))
    assert code == 2
    assert "sources.erp.kinds.suppliers.query" in out
    source["kinds"]["suppliers"] = {"table": "suppliers", "mapping": {"Name": "nom"}}
    write_config(config, data)
    code, out, _ = cli(capsys, "check", "--config", str(config))
    assert code == 2
    assert "sources.erp.kinds.suppliers.mapping.Name" in out


def test_check_notes_a_field_that_is_never_sent(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Mapping a VAT number works but check says it is validated only, never sent."""
    body = HEADER + "A1,Abbey,GB,GB980780684,\r\n"
    config = files_config(sandbox, tmp_path, csv_folder(tmp_path, body.encode()),
                          {"suppliers": {}})
    code, out, _ = cli(capsys, "check", "--config", str(config))
    assert code == 0
    assert "VatNumber is validated only and never sent" in " ".join(out.split())


def test_erp_refused_invoice_does_not_make_the_service_unready() -> None:
    """A poll left partial by a quarantined transaction (the ERP refused it; it waits for its
    retry) is a business outcome: it never counts towards /readyz's failure streak; a passing
    failure (ERP down) does."""
    refused = PollResult("uk", seen=1, quarantined=1)
    refused.problem("transaction T1: the ERP refused it (field supplier_code)")
    refused.finish(1, 0.1)
    report = JobReport("uk", "transactions", "ok")
    fill(report, refused)
    assert report.outcome == "partial"
    assert not is_failure(report)
    down = PollResult("uk", seen=1, failed=1)
    down.problem("transaction T2: the ERP is unreachable")
    down.finish(0, 0.1)
    fill(report, down)
    assert is_failure(report)


def test_full_reads_the_source_and_the_remote_list_once(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`sync --full` reads the export once and iCompleat's supplier list once (its pages)."""
    rows = "".join(f"S{i:03d},Supplier {i},GB,,\r\n" for i in range(150))
    folder = csv_folder(tmp_path, (HEADER + rows).encode())
    config = files_config(sandbox, tmp_path, folder, {"suppliers": {}})
    assert cli(capsys, "sync", "--config", str(config))[0] == 0
    seq = last_seq(sandbox)
    assert cli(capsys, "sync", "--config", str(config), "--full")[0] == 0
    pages = [e.path for e in sandbox.state.log.entries() if e.seq > seq]
    assert len(pages) == len(set(pages)) == 2  # pages 1 and 2: a short page ends the list


class _Terminal(io.StringIO):
    """Captured standard output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_sync_on_a_terminal_shows_progress(
        sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the real run draws a progress bar per kind, sized by its planned calls
    (the engine reports through callbacks; the command draws)."""
    rows = "".join(f"S{i:04d},Supplier {i},GB,,\r\n" for i in range(250))
    folder = csv_folder(tmp_path, (HEADER + rows).encode())
    config = files_config(sandbox, tmp_path, folder, {"suppliers": {}})
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    assert main(["sync", "--config", str(config)]) == 0
    text = screen.getvalue()
    assert "uk: Suppliers" in text
    assert "3/3" in text  # a refresh of 250 records: three chunks
