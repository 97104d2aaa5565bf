"""The sandbox with --db: every answered write survives a restart; no secret reaches the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.icompleat.routes import ROUTES
from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.persist import SqliteStore
from sync.foundation.errors import ConfigError
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID, api_headers

WEBHOOK_TOKEN = "icsync-persist-webhook-token-91b2"


def server(db: Path) -> SandboxServer:
    """A sandbox on ``db`` with the fixture credentials and an endpoint nobody listens on."""
    return SandboxServer(tenant_id=TENANT_ID, company_ids=[COMPANY_ID], api_key=CANARY_KEY,
                         db=db, webhook_url="http://127.0.0.1:9/hook",
                         webhook_token=WEBHOOK_TOKEN)


def client(sandbox: SandboxServer) -> httpx.Client:
    """A plain client carrying the two headers."""
    return httpx.Client(base_url=sandbox.url, headers=api_headers(), timeout=10,
                        trust_env=False)


def path(name: str, **params: Any) -> str:
    """The route's path for the fixture tenant and company."""
    return ROUTES[name].render(tenantId=TENANT_ID, companyId=COMPANY_ID, **params)


def fill(sandbox: SandboxServer) -> dict[str, Any]:
    """Write one of everything through the API; what to expect after a restart."""
    with client(sandbox) as api:
        token = api.post(path("suppliers.post"), json={"Suppliers": [
            {"Code": f"S{i:03d}", "Name": "s"} for i in range(100)], "ContinuationToken": ""}
        ).json()["ContinuationToken"]
        field = api.post(path("customfields.create"), json={"CustomFields": [
            {"Name": "Project"}]}).json()["CustomFields"][0]
        api.post(path("customfield.values", customFieldId=field["Id"]), json={
            "CustomFieldListItems": [{"Code": "P1", "Name": "p"}], "ContinuationToken": ""})
        posted, failed = (api.post(path("transaction.create"), json={"Type": "INV"}).json()[
            "Transaction"]["Id"] for _ in range(2))
        for tx_id in (posted, failed):
            api.put(ROUTES["transaction.edit"].render(tenantId=TENANT_ID, transactionId=tx_id),
                    json={"Status": "APPR"})
        assert sandbox.wait_for_pushes(10)
        api.put(ROUTES["transaction.edit"].render(tenantId=TENANT_ID, transactionId=posted),
                json={"JournalNumber": "J-1"})
    state = sandbox.state
    return {"token": token, "field": field["Id"], "failed": failed,
            "suppliers": state.records(TENANT_ID, COMPANY_ID, "suppliers"),
            "fields": state.records(TENANT_ID, COMPANY_ID, "customfields"),
            "transactions": state.all_transactions(TENANT_ID)}


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    """Records, custom fields, transactions with postings, the tray and tokens come back."""
    db = tmp_path / "sandbox.db"
    with server(db) as first:
        before = fill(first)
    with server(db) as second, client(second) as api:
        state = second.state
        assert state.records(TENANT_ID, COMPANY_ID, "suppliers") == before["suppliers"]
        assert state.records(TENANT_ID, COMPANY_ID, "customfields") == before["fields"]
        assert state.all_transactions(TENANT_ID) == before["transactions"]
        assert [f["TransactionId"] for f in state.posting_failures()] == [before["failed"]]
        more = api.post(path("suppliers.post"), json={
            "Suppliers": [{"Code": "S100", "Name": "s"}], "ContinuationToken": before["token"]})
        assert more.status_code == 200
        assert len(state.records(TENANT_ID, COMPANY_ID, "suppliers")) == 101


def test_a_refresh_after_a_restart_supersedes_old_tokens(tmp_path: Path) -> None:
    """Set generations are stored too: a new refresh still invalidates a pre-restart token."""
    db = tmp_path / "sandbox.db"
    with server(db) as first:
        before = fill(first)
    with server(db) as second, client(second) as api:
        api.post(path("suppliers.post"), json={"Suppliers": [{"Code": "N", "Name": "n"}]})
        stale = api.post(path("suppliers.post"), json={
            "Suppliers": [{"Code": "X", "Name": "x"}], "ContinuationToken": before["token"]})
        assert stale.json()["ErrorCode"] == 20


def test_no_secret_reaches_the_database_file(tmp_path: Path) -> None:
    """Neither the API key nor the webhook token is written to the file or its WAL."""
    db = tmp_path / "sandbox.db"
    with server(db) as sandbox:
        fill(sandbox)
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert CANARY_KEY.encode() not in written
    assert WEBHOOK_TOKEN.encode() not in written
    assert b"S099" in written


def test_an_unopenable_database_is_a_config_error(tmp_path: Path) -> None:
    """A --db path that cannot be opened names the option."""
    with pytest.raises(ConfigError, match="--db"):
        SqliteStore(tmp_path / "missing-dir" / "sandbox.db")
