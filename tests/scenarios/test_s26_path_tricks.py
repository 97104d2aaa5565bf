"""S26, S27, S28: hostile input through real processes: codes ``.`` and ``..`` through the sandbox,
unusable ids pushed to the webhook, a formula title in the CSV drop, file modes under umask 022.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.icompleat.routes import ROUTES
from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.app import SEGMENTS_HEADER
from sync.foundation.tomlout import toml_value
from tests.daemon.world import (
    ROOT,
    WEBHOOK_TOKEN,
    child_env,
    free_port,
    stop,
    tx_body,
    wait_http,
    write_config,
)
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID, api_headers
from tests.scenarios.harness import show

pytestmark = pytest.mark.slow
DOTS = (".", "..")
FORMULA = "=cmd|' /C calc'!A0"


# Enough other codes that editing or deleting two is cheaper than refreshing the whole list.
FILLER = [{"Code": f"{4000 + i}", "Name": f"Account {i}"} for i in range(250)]


def _accounts(name: str, with_dots: bool = True) -> str:
    dots = [{"Code": c, "Name": f"{name} {c}"} for c in DOTS] if with_dots else []
    return 'type = "memory"\n' + f"rows.account_codes = {toml_value([*FILLER, *dots])}"


def _sync(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sync.cli", "sync", "--config", str(config),
                           *extra], cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=120, check=False)


def _remote(sandbox: SandboxServer) -> dict[str, str]:
    return {r["Code"]: r["Name"] for r in sandbox.state.ref_set(TENANT_ID, COMPANY_ID,
                                                                "accountcodes")}


def test_dot_codes_are_created_edited_and_deleted_as_one_segment(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Account codes ``.`` and ``..`` go through create, edit and delete with `icsync sync`;
    every edit and delete reaches the route it was meant for, and nothing is left stuck."""
    def configure(name: str, with_dots: bool = True) -> Path:
        source = _accounts(name, with_dots)
        return write_config(tmp_path, sandbox.url, source=source, kinds=("account_codes",))

    created = _sync(configure("first"))
    assert created.returncode == 0, created.stdout + created.stderr
    assert {c: _remote(sandbox).get(c) for c in DOTS} == {c: f"first {c}" for c in DOTS}
    edited = _sync(configure("second"))
    assert edited.returncode == 0, edited.stdout + edited.stderr
    assert {c: _remote(sandbox).get(c) for c in DOTS} == {c: f"second {c}" for c in DOTS}
    deleted = _sync(configure("", with_dots=False), "--allow-deletes")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert set(_remote(sandbox)) == {row["Code"] for row in FILLER}
    calls = [e for e in sandbox.state.log.entries() if e.route.startswith("accountcodes.")]
    writes = [e for e in calls if e.route in ("accountcodes.edit", "accountcodes.delete")]
    assert len(writes) == 4
    assert all(e.path.endswith(("/%2E", "/%2E%2E")) and e.status == 200 for e in writes)
    assert all(e.route != "?" for e in sandbox.state.log.entries())
    show(capsys, f"S26 dot codes: {len(writes)} edits/deletes of '.' and '..' each reached "
                 f"its own segment; {len(calls)} account-code calls, none misrouted")


def test_the_sandbox_echoes_each_decoded_segment(sandbox: SandboxServer) -> None:
    """A path rendered for ``.`` or ``..`` arrives as one segment holding exactly that."""
    for code in (*DOTS, "a/b", "%2E", "NULL-ish"):
        path = ROUTES["accountcodes.delete"].render(tenantId=TENANT_ID, companyId=COMPANY_ID,
                                                    code=code)
        answer = httpx.delete(sandbox.url + path, headers=api_headers(CANARY_KEY),
                              trust_env=False)
        assert sandbox.state.log.entries()[-1].route == "accountcodes.delete"
        assert json.loads(answer.headers[SEGMENTS_HEADER])["code"] == code
        assert answer.status_code == 400  # no such record: the code arrived intact


def _files_daemon(tmp_path: Path, sandbox: SandboxServer) -> tuple[Path, int, Path]:
    drop = tmp_path / "drop"
    drop.mkdir()
    port = free_port()
    sink = f'type = "files"\ndirectory = {toml_value(str(drop))}\nformat = "csv"'
    config = write_config(tmp_path, sandbox.url, sink=sink, service={"listen": f"127.0.0.1:{port}"},
                          schedules={"transactions": "1h", "reference": "1h"})
    return config, port, drop


def _umask_022() -> None:
    os.umask(0o022)


def _push(url: str, body: bytes) -> int:
    return httpx.post(url, content=body, timeout=30, trust_env=False, headers={
        "x-compleat-secret-token": WEBHOOK_TOKEN}).status_code


def test_bad_ids_formulas_and_file_modes(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Surrogate, 100 KB, dotted and non-GUID ids get 4xx; a formula title is neutralised in the
    CSV drop; the state DB, its WAL/SHM and the document are 0600 under umask 022."""
    config, port, drop = _files_daemon(tmp_path, sandbox)
    tx: dict[str, Any] = {**tx_body(7), "Title": FORMULA}
    tx["References"]["Identifier"] = "+SUM(A1:A9)"
    created = sandbox.state.create_transaction(TENANT_ID, COMPANY_ID, tx)
    sandbox.state.approve(TENANT_ID, created["Id"])
    log = tmp_path / "daemon.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sync.cli", "run", "--config", str(config)],
                                cwd=ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_umask_022)
    url = f"http://127.0.0.1:{port}/webhooks/icompleat/invoices"
    bad_ids = {"surrogate": b'{"Id": "\\ud800"}',
               "100 KB": json.dumps({"Id": "a" * 100_000}).encode(),
               "dot-dot": b'{"Id": ".."}', "dot": b'{"Id": "."}', "slash": b'{"Id": "../x"}',
               "number": b'{"Id": 12}', "padded guid": json.dumps(
                   {"Id": f" {created['Id']}/.."}).encode()}
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        answers = {name: _push(url, body) for name, body in bad_ids.items()}
        good = _push(url, json.dumps({"Id": created["Id"]}).encode())
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [*tmp_path.glob("state.db*"),
                                                                  *drop.glob("*.csv")]}
    finally:
        assert stop(proc) == 0
    documents = list(drop.glob("*.csv"))
    rows = list(csv.DictReader(io.StringIO(documents[0].read_text(encoding="utf-8"))))
    text = log.read_text(encoding="utf-8", errors="replace")
    show(capsys, f"S26-S28 inputs: {len(bad_ids)} bad ids answered "
                 f"{sorted(set(answers.values()))}; "
                 f"formula title written as {rows[0]['title']!r}; modes "
                 f"{ {k: oct(v) for k, v in sorted(modes.items())} }")
    assert all(400 <= status < 500 for status in answers.values()), answers
    assert good == 200
    assert len(documents) == 1
    assert rows[0]["title"] == "'" + FORMULA
    assert all(not str(v).startswith(("=", "+", "-", "@")) for v in rows[0].values())
    assert "Traceback" not in text
    assert "state.db" in modes
    assert all(mode == 0o600 for mode in modes.values()), modes
