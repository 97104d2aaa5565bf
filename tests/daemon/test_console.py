"""The operator console in a real browser (Playwright driving Debian's Chromium) on a real daemon.

The pages' numbers are checked against the state DB; a retry clicked with the token changes the
row, and neither a wrong token nor a forged form (no CSRF cookie) changes anything.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from connectors.icompleat.sandbox import SandboxServer
from sync.state.alerts import Finding
from sync.state.store import QuarantineEntry, StateStore
from sync.transactions.rules import RESOLVED_PREFIX
from tests.daemon.world import (
    ROOT,
    free_port,
    json_lines,
    start_daemon,
    stop,
    wait_http,
    write_config,
)
from tests.fixtures.sandbox import COMPANY_ID

CHROMIUM = Path(os.environ.get("ICSYNC_CHROMIUM", "/usr/bin/chromium"))
TOKEN = "console-canary-token-8d2f61a4c0"
SCREENSHOT = ROOT / "docs" / "console.png"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Chromium is not installed (.ci/run installs it)")


def seed(root: Path) -> None:
    """A state DB with 30 days of runs, a quarantined record and transaction, and a backlog."""
    path = root / "state.db"
    with StateStore.open(f"sqlite:///{path}") as store:
        for n in range(40):
            run = store.start_run("acme", "reference")
            kinds = {"suppliers": {"created": n % 3, "unchanged": 100}}
            store.finish_run(run, "ok" if n % 9 else "partial",
                             {"calls": 5 + n % 7, "kinds": kinds})
        store.quarantine("acme", "suppliers",
                         [QuarantineEntry("SUP-9", "bad_iban", "SUP-9: IBAN GB00 fails its "
                                                               "check digits", field="iban")])
        store.ledger_seen(COMPANY_ID, "tx-refused-1", "INV")
        store.ledger_transition(COMPANY_ID, "tx-refused-1", expect=["seen"], to="quarantined",
                                attempts=3, last_error="ERP refused it: supplier on hold")
        store.ledger_seen(COMPANY_ID, "tx-waiting-1", "INV")
        store.acquire_lease("acme:readback", "erp-host-2:4242:9f1c0a7e", 3600)
        store.alert_observe(["guard_block:acme"], [Finding(
            "guard_block:acme", "guard_block", "acme", "acme: the guard blocked the reference "
            "sync", "The source shrank by 31% (limit 10%): nothing was deleted.")])
        store.note_capability_change("suppliers.list", "paging", "token", "page")
    now = datetime.now(UTC)
    with sqlite3.connect(path) as db:
        for run_id, in db.execute("SELECT id FROM runs").fetchall():
            start = now - timedelta(hours=17 * (41 - run_id) + 1)
            db.execute("UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?",
                       (f"{start:%Y-%m-%d %H:%M:%S.%f}",
                        f"{start + timedelta(seconds=20 + run_id * 3 % 50):%Y-%m-%d %H:%M:%S.%f}",
                        run_id))


@pytest.fixture
def console(tmp_path: Path, sandbox: SandboxServer) -> Iterator[str]:
    """A daemon process serving the console with actions on; its base URL."""
    token = tmp_path / "console-token"
    token.write_text(TOKEN + "\n", encoding="utf-8")
    port = free_port()
    service = {"listen": f"127.0.0.1:{port}", "console": True, "console_actions": True,
               "console_token_file": str(token)}
    config = write_config(tmp_path, sandbox.url, service=service,
                          schedules={"reference": "0 3 1 1 *", "transactions": "0 3 1 1 *"})
    seed(tmp_path)
    proc = start_daemon(config, tmp_path / "daemon.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
        yield url
    finally:
        stop(proc)


def store_of(root: Path) -> StateStore:
    """The daemon's state DB."""
    return StateStore.open(f"sqlite:///{root / 'state.db'}")


def test_console_pages_match_the_state_db_and_actions_need_the_token(
        console: str, tmp_path: Path) -> None:
    """Each page shows the DB's numbers; a retry works with the token, never without it."""
    from playwright.sync_api import expect, sync_playwright

    with store_of(tmp_path) as store:
        open_records = len(store.quarantined("acme", status="open"))
        recent = store.runs_since("acme", "reference", datetime.now(UTC) - timedelta(days=30))
        record_id = store.quarantined("acme")[0].id
        holder = store.leases()[0].holder
        alerts = [a for a in store.alert_conditions() if a.condition != "capability"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{console}/")
        assert page.title() == "Overview · icsync"
        assert page.get_by_test_id("quarantine-acme-suppliers").inner_text() == str(open_records)
        assert page.get_by_test_id("quarantine-acme-transactions").inner_text() == "1"
        assert page.get_by_test_id("backlog-acme-seen").inner_text() == "1"
        assert page.get_by_test_id("backlog-acme-quarantined").inner_text() == "1"
        assert page.get_by_test_id("holder-acme:readback").inner_text() == holder
        assert page.locator("[data-testid=alerts] tbody tr").count() == len(alerts)
        assert "suppliers.list" in page.content()
        page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
        if os.environ.get("ICSYNC_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copy(tmp_path / "console.png", SCREENSHOT)

        page.get_by_role("link", name="acme / reference").click()
        chart = page.get_by_test_id("run-chart")
        finished = [r for r in recent if r.finished_at is not None]
        assert chart.get_attribute("data-runs") == str(len(finished))
        assert page.locator("[data-testid=runs] tbody tr").count() == min(50, len(recent))

        page.get_by_role("link", name="Quarantine").click()
        form = page.locator("form", has=page.get_by_test_id(f"retry-record:{record_id}"))
        form.locator("input[name=operator]").fill("Dana from ops")
        form.locator("input[name=token]").fill("not-the-console-token")
        form.get_by_role("button").click()
        expect(page.locator("p.note")).to_contain_text("Refused: wrong console token")
        with store_of(tmp_path) as store:
            assert store.quarantined("acme", status="open")[0].id == record_id

        form = page.locator("form", has=page.get_by_test_id(f"retry-record:{record_id}"))
        form.locator("input[name=operator]").fill("Dana from ops")
        form.locator("input[name=token]").fill(TOKEN)
        form.get_by_role("button").click()
        expect(page.locator("p.note")).to_contain_text("1 item(s) set to be retried")
        with store_of(tmp_path) as store:
            assert [r.id for r in store.quarantined("acme", status="retry")] == [record_id]

        tx_item = f"tx:{COMPANY_ID}:tx-refused-1"
        form = page.locator("form", has=page.get_by_test_id(f"resolve-{tx_item}"))
        form.locator("input[name=operator]").fill("Dana from ops")
        form.locator("input[name=token]").fill(TOKEN)
        form.get_by_role("button").click()
        expect(page.locator("p.note")).to_contain_text("1 item(s) resolved")
        browser.close()

    forged = httpx.post(f"{console}/actions/resolve", trust_env=False,
                        data={"item": f"record:{record_id}", "token": TOKEN, "csrf": "x",
                              "operator": "mallory"})
    assert forged.status_code == 403
    with store_of(tmp_path) as store:
        assert [r.id for r in store.quarantined("acme", status="retry")] == [record_id]
        tx = store.ledger_get(COMPANY_ID, "tx-refused-1")
        assert tx is not None
        assert (tx.last_error or "").startswith(RESOLVED_PREFIX)
    lines = json_lines(tmp_path / "daemon.log")
    done = [x for x in lines if x.get("event") == "console_action"]
    assert [(x["who"], x["action"]) for x in done] == [("Dana from ops", "retry"),
                                                       ("Dana from ops", "resolve")]
    refused = [x for x in lines if x.get("event") == "console_action_refused"]
    assert {x["who"] for x in refused} == {"Dana from ops", "mallory"}
    assert TOKEN not in (tmp_path / "daemon.log").read_text(encoding="utf-8")


def test_console_is_off_by_default_and_read_only_without_actions(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    """No console route unless asked; console without actions has no forms and no POST."""
    port = free_port()
    config = write_config(tmp_path, sandbox.url, service={"listen": f"127.0.0.1:{port}"})
    proc = start_daemon(config, tmp_path / "off.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        assert httpx.get(f"http://127.0.0.1:{port}/", trust_env=False).status_code == 404
    finally:
        stop(proc)
    config = write_config(tmp_path, sandbox.url, service={"listen": f"127.0.0.1:{port}",
                                                           "console": True})
    seed(tmp_path)
    proc = start_daemon(config, tmp_path / "ro.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        page = httpx.get(f"http://127.0.0.1:{port}/quarantine", trust_env=False)
        assert page.status_code == 200
        assert "SUP-9" in page.text
        assert "<form" not in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        posted = httpx.post(f"http://127.0.0.1:{port}/actions/retry", trust_env=False,
                            data={"item": "record:1", "token": TOKEN})
        assert posted.status_code in (404, 405)
    finally:
        stop(proc)
