"""`icsync sync` and `icsync demo` through the real command line entry point (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.cli import main
from sync.foundation.tomlout import toml_text
from tests.fixtures.sandbox import CANARY_KEY
from tests.reference.support import erp_execute, last_seq, settings_dict, writes


@pytest.fixture
def config_file(sandbox: SandboxServer, erp: Path, tmp_path: Path) -> Path:
    """A TOML configuration for the sample ERP and the sandbox."""
    path = tmp_path / "icsync.toml"
    path.write_text(toml_text(settings_dict(sandbox.url, erp, tmp_path / "cli-state.db")))
    return path


def test_dry_run_json_is_one_document(sandbox: SandboxServer, config_file: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run --json prints the plan of every kind as one JSON document; nothing is sent."""
    code = main(["sync", "--config", str(config_file), "--dry-run", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["exit_code"] == 0
    plan = doc["companies"][0]["plan"]
    assert {k["kind"] for k in plan["kinds"]} == {"currencies", "tax_codes", "account_codes",
                                                  "delivery_sites", "custom_fields", "suppliers"}
    assert len(plan["plan_hash"]) == 64
    assert writes(sandbox) == []


def test_dry_run_text_shows_changes_and_rejections(config_file: Path, erp: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The text plan lists field-level changes and the rejected row with its reason."""
    assert main(["sync", "--config", str(config_file)]) == 0
    capsys.readouterr()
    erp_execute(erp, "UPDATE suppliers SET phone = '+44 20 7946 0001' WHERE supplier_code = "
                     "'S00002'")
    erp_execute(erp, "UPDATE suppliers SET iso = 'ZZ' WHERE supplier_code = 'S00003'")
    code = main(["sync", "--config", str(config_file), "--dry-run", "--kind", "suppliers"])
    out = capsys.readouterr().out
    assert code == 4  # a rejected row makes the run partial
    assert "S00002" in out
    assert "'+44 20 7946 0001'" in out
    assert "bad_iso_country" in out
    assert CANARY_KEY not in out


def test_apply_prints_a_summary_and_records_the_run(sandbox: SandboxServer, config_file: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A real run prints one row per kind; a second run is a no-op and exits 0."""
    assert main(["sync", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "suppliers" in out
    assert "refresh" in out
    seq = last_seq(sandbox)
    assert main(["sync", "--config", str(config_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert writes(sandbox, seq) == []
    assert {k["strategy"] for k in doc["companies"][0]["kinds"]} == {"none"}


def test_unknown_kind_is_a_usage_error(config_file: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--kind vendors: exit 2 naming the option."""
    assert main(["sync", "--config", str(config_file), "--kind", "vendors"]) == 2
    assert "--kind" in capsys.readouterr().err


def test_demo_runs_the_tour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`icsync demo --fast --workdir DIR`: every chapter as told, its files under DIR."""
    code = main(["demo", "--fast", "--workdir", str(tmp_path / "demo")])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    for text in ("The plan", "The first sync", "Changes in the ERP", "The safety guard",
                 "exit code 3", "bad_iso_country"):
        assert text in out
    made = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"erp.db", "icompleat_api_key", "icsync.toml", "state.db"} <= made


def test_a_bad_bundle_is_one_clear_line_from_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        sandbox: SandboxServer, erp: Path) -> None:
    """``icsync sync`` with SSL_CERT_FILE naming a missing file: exit 2 and one line naming
    it, no traceback."""
    config = tmp_path / "icsync.toml"
    config.write_text(toml_text(settings_dict(sandbox.url, erp, tmp_path / "state.db")))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nowhere.pem"))
    code = main(["sync", "--config", str(config), "--dry-run", "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert "SSL_CERT_FILE" in err
    assert "nowhere.pem" in err
    assert "Traceback" not in err
