"""Every fault switch of the sandbox, and its request log, over loopback HTTP."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from connectors.icompleat.routes import ROUTES
from connectors.icompleat.sandbox import Fault, SandboxServer
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID, api_headers


def path(name: str, **params: Any) -> str:
    """The route's path for the fixture tenant and company."""
    params.setdefault("tenantId", TENANT_ID)
    if "companyId" in ROUTES[name].params:
        params.setdefault("companyId", COMPANY_ID)
    return ROUTES[name].render(**params)


def post_suppliers(client: httpx.Client, *codes: str) -> httpx.Response:
    """Refresh the suppliers with ``codes``."""
    return client.post(path("suppliers.post"), json={
        "Suppliers": [{"Code": c, "Name": c} for c in codes], "ContinuationToken": ""})


def stored(sandbox: SandboxServer) -> list[str]:
    """The supplier codes the sandbox holds."""
    return [r["Code"] for r in sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers")]


def test_error_status_per_route_and_for_every_route(sandbox: SandboxServer,
                                                    sandbox_client: httpx.Client) -> None:
    """A route's own fault applies to it alone and wins over the '*' fault."""
    faults = sandbox.state.faults
    faults.set("companies", error_rate=1.0, error_status=503)
    assert sandbox_client.get(path("companies")).status_code == 503
    assert sandbox_client.get(path("tenant")).status_code == 200
    faults.set("*", error_rate=1.0, error_status=502)
    assert sandbox_client.get(path("tenant")).status_code == 502
    assert sandbox_client.get(path("companies")).status_code == 503


def test_error_before_the_write_leaves_data_untouched(sandbox: SandboxServer,
                                                      sandbox_client: httpx.Client) -> None:
    """A plain error fault answers before applying anything."""
    sandbox.state.faults.set("suppliers.post", error_rate=1.0)
    assert post_suppliers(sandbox_client, "A").status_code == 500
    assert stored(sandbox) == []


def test_error_rate_is_a_seeded_fraction(sandbox: SandboxServer,
                                         sandbox_client: httpx.Client) -> None:
    """A 30% error rate fails about 30% of calls, and the same seed fails the same calls."""
    runs = []
    for _ in range(2):
        sandbox.state.faults.seed(7)
        sandbox.state.faults.set("tenant", error_rate=0.3)
        runs.append([sandbox_client.get(path("tenant")).status_code for _ in range(200)])
    assert runs[0] == runs[1]
    assert 35 <= runs[0].count(500) <= 85


def test_status_zero_drops_the_connection(sandbox: SandboxServer,
                                          sandbox_client: httpx.Client) -> None:
    """error_status 0 closes the connection without an answer and logs status 0."""
    sandbox.state.faults.set("tenant", error_rate=1.0, error_status=0)
    with pytest.raises(httpx.TransportError):
        sandbox_client.get(path("tenant"))
    assert sandbox.state.log.counts()["tenant"] == {0: 1}


@pytest.mark.parametrize("mode", ["500", "drop"])
def test_commit_then_fail_applies_the_write(sandbox: SandboxServer,
                                            sandbox_client: httpx.Client, mode: str) -> None:
    """The write is applied, then the answer is a 500 or no answer at all."""
    sandbox.state.faults.set("suppliers.post", commit_then_fail=mode)
    if mode == "500":
        assert post_suppliers(sandbox_client, "A", "B").status_code == 500
    else:
        with pytest.raises(httpx.TransportError):
            post_suppliers(sandbox_client, "A", "B")
    assert stored(sandbox) == ["A", "B"]
    assert sandbox.state.log.entries("suppliers.post")[-1].fault == f"commit-then-{mode}"


def test_latency_delays_the_answer(sandbox: SandboxServer,
                                   sandbox_client: httpx.Client) -> None:
    """A latency switch holds every answer of the route for that long."""
    sandbox.state.faults.set("tenant", latency=0.25)
    started = time.monotonic()
    assert sandbox_client.get(path("tenant")).status_code == 200
    assert time.monotonic() - started >= 0.25


def test_hang_never_answers_nor_applies(sandbox: SandboxServer) -> None:
    """A hung write times the client out, is not applied, and is logged with status 0."""
    sandbox.state.faults.set("suppliers.post", hang=True)
    client = httpx.Client(base_url=sandbox.url, headers=api_headers(), timeout=0.3)
    with client, pytest.raises(httpx.ReadTimeout):
        post_suppliers(client, "A")
    deadline = time.monotonic() + 5
    while not sandbox.state.log.entries("suppliers.post") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stored(sandbox) == []
    assert sandbox.state.log.entries("suppliers.post")[0].fault == "hang"


def test_clearing_a_hang_releases_the_waiting_client(sandbox: SandboxServer) -> None:
    """A client waiting on a hang gets its connection closed once the switch is cleared."""
    sandbox.state.faults.set("tenant", hang=True)
    outcome: list[BaseException] = []

    def call() -> None:
        with httpx.Client(base_url=sandbox.url, headers=api_headers(), timeout=10) as client:
            try:
                client.get(path("tenant"))
            except httpx.TransportError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 10
    while sandbox.state.faults.snapshot()["tenant"]["seen"] == 0:  # the request is hanging
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sandbox.state.faults.clear("tenant")
    worker.join(5)
    assert not worker.is_alive()
    assert len(outcome) == 1


def test_key_rotation_at_request_n(sandbox: SandboxServer,
                                   sandbox_client: httpx.Client) -> None:
    """Request N and later are refused with the old key; the new key works."""
    sandbox.state.faults.rotate_key_at(TENANT_ID, 3, "icsync-rotated-key")
    statuses = [sandbox_client.get(path("tenant")).status_code for _ in range(4)]
    assert statuses == [200, 200, 401, 401]
    fresh = httpx.get(sandbox.url + path("tenant"), headers=api_headers("icsync-rotated-key"))
    assert fresh.status_code == 200


@pytest.mark.parametrize(("retry_after", "header"), [(2, "2"), (0.5, "0.5"), (None, None)])
def test_429_with_and_without_retry_after(sandbox: SandboxServer,
                                          sandbox_client: httpx.Client,
                                          retry_after: float | None, header: str | None) -> None:
    """Throttling answers 429 with Retry-After when set, without it otherwise."""
    sandbox.state.faults.set("suppliers.list", throttle_rate=1.0, retry_after=retry_after)
    response = sandbox_client.get(path("suppliers.list", pageNumber=1))
    assert response.status_code == 429
    assert response.headers.get("retry-after") == header
    assert response.json()["statusCode"] == 429


@pytest.mark.parametrize("status", [200, 500])
def test_429_inside_the_body(sandbox: SandboxServer, sandbox_client: httpx.Client,
                             status: int) -> None:
    """The body-only variant answers 200 or 500 with statusCode 429 and a message."""
    sandbox.state.faults.set("*", throttle_rate=1.0, throttle_body_status=status, retry_after=3)
    response = sandbox_client.get(path("companies"))
    assert response.status_code == status
    body = response.json()
    assert body["statusCode"] == 429
    assert "3 seconds" in body["message"]
    assert "Companies" not in body


def test_after_and_times_pick_which_requests_fail(sandbox: SandboxServer,
                                                  sandbox_client: httpx.Client) -> None:
    """after=1, times=1 lets the first call through, fails the second, then switches off."""
    sandbox.state.faults.set("tenant", Fault(error_rate=1.0, after=1, times=1))
    statuses = [sandbox_client.get(path("tenant")).status_code for _ in range(3)]
    assert statuses == [200, 500, 200]
    assert sandbox.state.faults.snapshot()["tenant"]["fired"] == 1


def test_list_changes_between_pages(sandbox: SandboxServer,
                                    sandbox_client: httpx.Client) -> None:
    """An insert before the read position after page 1 shifts page 2 by one record."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers",
                       [{"Code": f"S{i:03d}", "Name": "s"} for i in range(150)])
    sandbox.state.faults.set("suppliers.list", change_after_page=1,
                             change_insert=[{"Code": "A000", "Name": "early"}],
                             change_remove=["S149"])
    pages = [sandbox_client.get(path("suppliers.list", pageNumber=n)).json()["Suppliers"]
             for n in (1, 2, 3)]
    seen = [r["Code"] for p in pages for r in p]
    assert seen.count("S099") == 2
    assert "A000" not in seen
    assert "S149" not in seen
    assert len(pages[1]) == 50
    assert "A000" in [r["Code"] for r in sandbox.state.records(TENANT_ID, COMPANY_ID,
                                                               "suppliers")]


def test_request_log_counts_per_route_and_status(sandbox: SandboxServer,
                                                 sandbox_client: httpx.Client) -> None:
    """Counts per route and status; entries carry the path and never a header value."""
    sandbox_client.get(path("tenant"))
    sandbox_client.get(path("tenant"))
    httpx.get(sandbox.url + path("tenant"))
    sandbox_client.get(path("suppliers.list", pageNumber=1))
    log = sandbox.state.log
    assert log.counts() == {"tenant": {200: 2, 401: 1}, "suppliers.list": {200: 1}}
    assert log.count(status=200) == 3
    assert CANARY_KEY not in repr(log.entries())
    assert sandbox.state.faults.requests == 4


def test_unknown_switch_is_refused() -> None:
    """A misspelt switch name is an error listing the known ones."""
    with pytest.raises(ValueError, match="error_rate"):
        Fault.from_json({"eror_rate": 1})
