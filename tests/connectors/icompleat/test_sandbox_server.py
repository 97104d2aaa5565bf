"""The sandbox as a server: every route served, overrides, tenants, concurrency, dying clients."""

from __future__ import annotations

import logging
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from connectors.icompleat.routes import ROUTES, build_routes
from connectors.icompleat.sandbox import SandboxServer
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID, api_headers

SAMPLE_PARAMS: dict[str, Any] = {
    "tenantId": TENANT_ID, "companyId": COMPANY_ID, "pageNumber": 1, "code": "X",
    "customFieldId": "F", "transactionId": "T", "userId": None, "status": None,
    "transactionType": None,
}


@pytest.mark.parametrize("name", list(ROUTES))
def test_every_route_of_the_table_is_served(sandbox: SandboxServer, name: str) -> None:
    """Each route answers with the contract's 200 or 400 body, never 404/405/5xx."""
    route = ROUTES[name]
    url = sandbox.url + route.render(**{p: SAMPLE_PARAMS[p] for p in route.params})
    body = {route.request_payload: [], "ContinuationToken": ""} if route.request_payload else {}
    response = httpx.request(route.method, url, headers=api_headers(),
                             json=body if route.is_write and route.method != "DELETE" else None)
    assert response.status_code in (200, 400), response.text
    assert "MetaData" in response.json()
    assert sandbox.state.log.entries()[-1].route == name


def test_an_overridden_route_table_is_served(tmp_path: Any) -> None:
    """A user's path override moves the route in the sandbox too; the old path is gone."""
    table = build_routes({"suppliers.list": {"path": "/v9/vendors/{tenantId}/{companyId}/"
                                                     "{pageNumber}"}})
    with SandboxServer(tenant_id=TENANT_ID, company_ids=[COMPANY_ID], api_key=CANARY_KEY,
                       routes=table) as sandbox:
        sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers", [{"Code": "A", "Name": "a"}])
        moved = httpx.get(sandbox.url + f"/v9/vendors/{TENANT_ID}/{COMPANY_ID}/1",
                          headers=api_headers())
        old = httpx.get(sandbox.url + ROUTES["suppliers.list"].render(
            tenantId=TENANT_ID, companyId=COMPANY_ID, pageNumber=1), headers=api_headers())
    assert moved.json()["Suppliers"] == [{"Code": "A", "Name": "a"}]
    assert old.status_code == 404


def test_tenants_have_their_own_keys_and_companies(sandbox: SandboxServer) -> None:
    """A second tenant's key opens that tenant only, and its companies are its own."""
    other, other_company = "9a8b7c6d-0000-4000-8000-000000000002", "c0c0c0c0-1111-4111-8111-1"
    sandbox.state.add_tenant(other, "icsync-second-tenant-key", [other_company])

    def companies(tenant: str, key: str) -> httpx.Response:
        return httpx.get(sandbox.url + ROUTES["companies"].render(tenantId=tenant),
                         headers=api_headers(key))

    assert companies(other, CANARY_KEY).status_code == 401
    assert companies(TENANT_ID, "icsync-second-tenant-key").status_code == 401
    assert [c["Id"] for c in companies(other, "icsync-second-tenant-key").json()[
        "Companies"]] == [other_company]


def test_concurrent_writers_leave_a_consistent_set(sandbox: SandboxServer) -> None:
    """Eight threads appending to one set through one token lose no record."""
    url = sandbox.url + ROUTES["suppliers.post"].render(tenantId=TENANT_ID, companyId=COMPANY_ID)
    token = httpx.post(url, headers=api_headers(), json={
        "Suppliers": [], "ContinuationToken": ""}).json()["ContinuationToken"]
    failures: list[int] = []

    def writer(n: int) -> None:
        with httpx.Client(headers=api_headers(), timeout=10) as client:
            for chunk in range(5):
                records = [{"Code": f"W{n}-{chunk}-{i}", "Name": "w"} for i in range(20)]
                response = client.post(url, json={"Suppliers": records,
                                                  "ContinuationToken": token})
                if response.status_code != 200:
                    failures.append(response.status_code)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert len(sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers")) == 8 * 5 * 20


def reset_socket(sock: socket.socket) -> None:
    """Close ``sock`` with an RST, as the kernel does for a killed process mid-request."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_dying_mid_request_do_not_disturb_the_server(
        sandbox: SandboxServer, caplog: pytest.LogCaptureFixture) -> None:
    """Half-sent bodies and resets leave nothing applied, no server error and others served."""
    host, port = sandbox.url.removeprefix("http://").split(":")
    path = ROUTES["suppliers.post"].render(tenantId=TENANT_ID, companyId=COMPANY_ID)
    headers = "".join(f"{k}: {v}\r\n" for k, v in api_headers().items())
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\n{headers}content-type: "
                         "application/json\r\ncontent-length: 500\r\n\r\n{\"Suppl".encode())
            reset_socket(sock)
        time.sleep(0.2)
        ok = httpx.get(sandbox.url + ROUTES["tenant"].render(tenantId=TENANT_ID),
                       headers=api_headers())
    assert ok.status_code == 200
    assert sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers") == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_killed_client_ends_its_hung_request(sandbox: SandboxServer) -> None:
    """SIGKILL of a process waiting on a hang frees the request; the log records no answer."""
    sandbox.state.faults.set("tenant", hang=True)
    script = ("import httpx, sys; httpx.get(sys.argv[1], headers={sys.argv[2]: sys.argv[3], "
              "'x-api-version': '1'}, timeout=60)")
    url = sandbox.url + ROUTES["tenant"].render(tenantId=TENANT_ID)
    child = subprocess.Popen([sys.executable, "-c", script, url, ROUTES.headers["key"],
                              CANARY_KEY])
    try:
        deadline = time.monotonic() + 20
        while sandbox.state.faults.snapshot()["tenant"]["seen"] == 0:
            assert time.monotonic() < deadline, "the child never reached the sandbox"
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait(10)
    deadline = time.monotonic() + 5
    while not sandbox.state.log.entries("tenant") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(e.status, e.fault) for e in sandbox.state.log.entries("tenant")] == [(0, "hang")]
