"""Commands that do not plan start without pandas or pyarrow (measured in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.tomlout import toml_text
from tests.reference.support import settings_dict

HEAVY = ("pandas", "pyarrow", "numpy")
# Loaded only for what they are for: a terminal's tables, a line of log, httpx's own client.
UNNEEDED = ("rich", "structlog", "click", "pygments")
PROBE = (
    "import json, os, sys\n"
    "from sync.cli import main\n"
    "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
    "watch = json.loads(os.environ['WATCH'])\n"
    "print('\\nMODULES ' + json.dumps([m for m in watch if m in sys.modules]))\n"
)
ROOT = Path(__file__).resolve().parents[2]


def imported(*args: str, watch: tuple[str, ...] = HEAVY) -> tuple[list[str], str]:
    """The modules of ``watch`` a fresh ``icsync *args`` process had imported when it
    returned."""
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=False,
                         env={**os.environ, "WATCH": json.dumps(watch)})
    lines = [line for line in out.stdout.splitlines() if line.startswith("MODULES ")]
    assert lines, out.stderr
    return json.loads(lines[-1][len("MODULES "):]), out.stdout


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A configuration whose state database is in tmp_path (no server is contacted)."""
    path = tmp_path / "icsync.toml"
    path.write_text(toml_text(settings_dict("http://127.0.0.1:9", tmp_path / "erp.db",
                                            tmp_path / "state.db")))
    return path


@pytest.mark.parametrize("args", [("--help",), ("check", "--help"), ("run", "--help"),
                                  ("status", "--help"), ("errors", "--help"),
                                  ("poll", "--help"), ("sync", "--help")])
def test_help_imports_no_frames(args: tuple[str, ...]) -> None:
    """--help of the operator commands imports neither pandas, pyarrow nor numpy."""
    assert imported(*args)[0] == []


@pytest.mark.parametrize("args", [("status",), ("status", "--json"), ("errors", "list")])
def test_operator_commands_import_no_frames(config_file: Path, args: tuple[str, ...]) -> None:
    """status and errors list read the state database without pandas, pyarrow or numpy."""
    modules, out = imported(args[0], "--config", str(config_file), *args[1:])
    assert modules == [], out


def test_a_planning_command_does_import_them(config_file: Path) -> None:
    """The probe can fail: sync --dry-run (which plans) does import pandas."""
    modules, _ = imported("sync", "--config", str(config_file), "--dry-run", "--kind",
                          "currencies")
    assert "pandas" in modules


def test_a_quiet_json_dry_run_loads_no_terminal_or_log_library(
        sandbox: SandboxServer, erp: Path, tmp_path: Path) -> None:
    """``sync --dry-run --json`` that logs nothing at its level needs neither rich nor
    structlog (nor httpx's own command-line client); the probe sees rich in a table, and
    structlog once a warning is logged (iCompleat unreachable)."""
    def dry_run(url: str, *extra: str) -> tuple[list[str], str]:
        path = tmp_path / "icsync.toml"
        path.write_text(toml_text(settings_dict(url, erp, tmp_path / "state.db")))
        return imported("sync", "--config", str(path), "--dry-run", *extra, watch=UNNEEDED)

    modules, out = dry_run(sandbox.url, "--json")
    assert modules == [], out
    assert '"outcome": "ok"' in out
    assert dry_run(sandbox.url)[0] == ["rich"]
    assert "structlog" in dry_run("http://127.0.0.1:9", "--json")[0]


def test_the_console_entry_exits_with_the_commands_code_and_whole_output(
        config_file: Path, tmp_path: Path) -> None:
    """``entry`` skips the interpreter's teardown, not the output, the exit code or the exit
    handlers; a reader that is gone costs exit 1 and no traceback."""
    def icsync(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sync.cli", *args], capture_output=True,
                              text=True, cwd=ROOT, timeout=120, check=False)

    done = icsync("status", "--json", "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    assert "runs" in json.loads(done.stdout)
    missing = icsync("status", "--config", str(tmp_path / "nowhere.toml"))
    assert missing.returncode == 2
    assert "nowhere.toml" in missing.stderr
    assert "Traceback" not in missing.stderr
    marker = tmp_path / "handler-ran"
    probe = ("import atexit, pathlib, sys\n"
             f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
             "sys.argv[1:] = ['status', '--config', " + repr(str(config_file)) + "]\n"
             "from sync.cli import entry\nentry()\n")
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    assert marker.read_text() == "yes"
    for table in ([], ["--json"]):  # rich's table and the JSON document alike
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first line is written
        try:
            gone = subprocess.run([sys.executable, "-m", "sync.cli", "status", *table,
                                   "--config", str(config_file)], stdout=write_end,
                                  stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
                                  check=False)
        finally:
            os.close(write_end)
        assert gone.returncode == 141, table  # as a process ended by SIGPIPE; said in --help
        assert gone.stderr == ""
