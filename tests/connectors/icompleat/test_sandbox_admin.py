"""The sandbox's admin API under /_sandbox/, as a test in another process would drive it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.icompleat.routes import ROUTES
from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.admin import build_admin, is_loopback
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID, api_headers

TOKEN = "icsync-admin-webhook-token-77aa"


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """A plain client on the admin API: no key."""
    with httpx.Client(base_url=sandbox.url + "/_sandbox", timeout=10, trust_env=False) as client:
        yield client


def api(sandbox: SandboxServer, name: str, **params: Any) -> httpx.Response:
    """GET an API route with the fixture credentials."""
    params.setdefault("tenantId", TENANT_ID)
    if "companyId" in ROUTES[name].params:
        params.setdefault("companyId", COMPANY_ID)
    return httpx.get(sandbox.url + ROUTES[name].render(**params), headers=api_headers())


def test_summary_names_tenants_but_never_keys(admin: httpx.Client) -> None:
    """The summary lists tenants and companies; no key appears."""
    response = admin.get("/")
    assert response.json()["tenants"] == [
        {"Id": TENANT_ID, "Companies": [{"Id": COMPANY_ID, "Name": "Sandbox company 1"}]}]
    assert CANARY_KEY not in response.text


def test_faults_set_read_and_cleared(sandbox: SandboxServer, admin: httpx.Client) -> None:
    """A fault armed through the admin API strikes the API until it is cleared."""
    armed = admin.put("/faults/tenant", json={"error_rate": 1, "error_status": 503})
    assert armed.json()["error_status"] == 503
    assert api(sandbox, "tenant").status_code == 503
    assert admin.get("/faults").json()["tenant"]["fired"] == 1
    admin.delete("/faults/tenant")
    assert api(sandbox, "tenant").status_code == 200
    admin.put("/faults/*", json={"throttle_rate": 1, "retry_after": 1})
    assert api(sandbox, "companies").status_code == 429
    admin.delete("/faults")
    assert api(sandbox, "companies").status_code == 200


def test_bad_fault_requests(admin: httpx.Client) -> None:
    """An unknown route is 404 and an unknown switch 400, each naming what is known."""
    unknown_route = admin.put("/faults/suppliers.nope", json={"error_rate": 1})
    assert unknown_route.status_code == 404
    assert "suppliers.list" in unknown_route.text
    bad_switch = admin.put("/faults/tenant", json={"eror_rate": 1})
    assert bad_switch.status_code == 400
    assert "error_rate" in bad_switch.text


def test_key_rotation_now_and_at_request_n(sandbox: SandboxServer,
                                           admin: httpx.Client) -> None:
    """Rotation takes effect at once, or at the Nth API request."""
    admin.post("/rotate-key", json={"tenant_id": TENANT_ID, "new_key": "rotated-key-1",
                                    "at_request": 2})
    assert [api(sandbox, "tenant").status_code for _ in range(2)] == [200, 401]
    admin.post("/rotate-key", json={"tenant_id": TENANT_ID, "new_key": CANARY_KEY})
    assert api(sandbox, "tenant").status_code == 200
    assert "rotated-key-1" not in admin.get("/").text


def test_request_log_and_its_reset(sandbox: SandboxServer, admin: httpx.Client) -> None:
    """The log shows counts per route and status and the entries, and can be emptied."""
    api(sandbox, "tenant")
    api(sandbox, "suppliers.list", pageNumber=1)
    log = admin.get("/log", params={"route": "tenant"}).json()
    assert log["counts"] == {"tenant": {"200": 1}, "suppliers.list": {"200": 1}}
    assert [e["route"] for e in log["entries"]] == ["tenant"]
    admin.delete("/log")
    assert admin.get("/log").json()["counts"] == {}


def test_seed_read_and_remove_records(admin: httpx.Client) -> None:
    """Seeded records are read back in full and removed one by one."""
    base = f"/{TENANT_ID}/{COMPANY_ID}/suppliers"
    admin.post("/seed" + base, json={"records": [{"Code": "A/1", "Name": "a"},
                                                 {"Code": "B", "Name": "b"}]})
    assert admin.delete("/records" + base + "/A%2F1").status_code == 200
    assert admin.get("/records" + base).json()["records"] == [{"Code": "B", "Name": "b"}]
    assert admin.delete("/records" + base + "/A%2F1").status_code == 404


def test_seed_validates_unless_told_not_to(admin: httpx.Client) -> None:
    """A record the API would refuse is a 400 naming the field, unless validate is false."""
    base = f"/{TENANT_ID}/{COMPANY_ID}/tax_codes"
    refused = admin.post("/seed" + base, json={"records": [{"Code": "T", "Name": "t"}]})
    assert refused.status_code == 400
    assert refused.json()["ErrorCode"] == 12
    admin.post("/seed" + base, json={"records": [{"Code": "T", "Name": "t"}], "validate": False})
    assert admin.get("/records" + base).json()["records"] == [{"Code": "T", "Name": "t"}]


def test_unknown_tenant_or_kind_is_404(admin: httpx.Client) -> None:
    """An unknown tenant or kind is a 404 naming it."""
    assert admin.get(f"/records/nobody/{COMPANY_ID}/suppliers").status_code == 404
    assert admin.get(f"/records/{TENANT_ID}/{COMPANY_ID}/widgets").status_code == 404


def test_settings_change_the_token_ttl(sandbox: SandboxServer, admin: httpx.Client) -> None:
    """The token TTL and webhook timeout are set in seconds."""
    body = admin.put("/settings", json={"token_ttl": 5, "webhook_timeout": 2}).json()
    assert body == {"token_ttl": 5.0, "webhook_timeout": 2.0}
    assert (sandbox.state.token_ttl, sandbox.pusher.timeout) == (5.0, 2.0)


def test_webhooks_transactions_tray_and_retry(sandbox: SandboxServer,
                                              admin: httpx.Client) -> None:
    """Configure an endpoint, create and approve, see the failure, retry it from the tray."""
    hooks = admin.put("/webhooks", json={"tenant_id": TENANT_ID, "url": "http://127.0.0.1:9/x",
                                         "token": TOKEN, "types": ["INV"], "duplicates": 2})
    assert hooks.json()["duplicates"] == 2
    assert [e["type"] for e in hooks.json()["endpoints"]] == ["INV"]
    assert TOKEN not in hooks.text
    tx = admin.post(f"/transactions/{TENANT_ID}/{COMPANY_ID}",
                    json={"Type": "INV", "Title": "t"}).json()["transaction"]
    approved = admin.post(f"/transactions/{TENANT_ID}/{tx['Id']}/approve").json()
    assert approved["transaction"]["Status"] == "APPR"
    assert sandbox.wait_for_pushes(5)
    assert len(admin.get("/deliveries").json()["deliveries"]) == 2
    [failure] = admin.get("/posting-failures").json()["failures"]
    retried = admin.post(f"/posting-failures/{failure['Id']}/retry").json()
    assert (retried["ok"], retried["transaction_id"]) == (False, tx["Id"])
    assert admin.get("/posting-failures").json()["failures"][0]["Attempts"] == 3
    assert admin.post("/posting-failures/nope/retry").status_code == 404
    listed = admin.get(f"/transactions/{TENANT_ID}").json()["transactions"]
    assert [t["Id"] for t in listed] == [tx["Id"]]


def test_reset_empties_everything(sandbox: SandboxServer, admin: httpx.Client) -> None:
    """Reset removes data, faults, the log and restores the key."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers", [{"Code": "A", "Name": "a"}])
    sandbox.state.rotate_key(TENANT_ID, "another-key-123")
    admin.put("/faults/companies", json={"error_rate": 1})
    assert admin.post("/reset").json() == {"reset": True}
    assert api(sandbox, "companies").status_code == 200
    assert sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers") == []
    assert admin.get("/faults").json() == {}


async def test_admin_answers_loopback_clients_only(sandbox: SandboxServer) -> None:
    """A client that is not on loopback is refused with 403; a loopback one is served."""
    app = build_admin(sandbox.state, sandbox.pusher)
    for host, status in (("10.1.2.3", 403), ("127.0.0.1", 200)):
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            assert (await client.get("/_sandbox/")).status_code == status
    assert (is_loopback("::1"), is_loopback("localhost"), is_loopback("nope")) == (
        True, True, False)


def test_admin_root_answers_with_and_without_the_slash(sandbox: SandboxServer) -> None:
    """/_sandbox and /_sandbox/ both answer the summary."""
    for path in ("/_sandbox", "/_sandbox/"):
        response = httpx.get(sandbox.url + path, timeout=10, trust_env=False)
        assert response.status_code == 200
        assert response.json()["tenants"][0]["Id"] == TENANT_ID


def test_sandbox_help_documents_every_admin_endpoint() -> None:
    """`icsync sandbox --help` lists every admin endpoint with what it does."""
    import contextlib
    import io

    from sync.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["sandbox", "--help"])
    text = out.getvalue()
    for path in ("/_sandbox/faults/{route}", "/_sandbox/log", "/_sandbox/webhooks",
                 "/_sandbox/transactions/{tenant}/{tx}/approve", "/_sandbox/posting-failures"):
        assert path in text
    assert "Approve a transaction" in text
