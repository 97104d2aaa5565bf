"""The contract: every route of the table is served by the sandbox and called by the client."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from connectors.icompleat.client import CallRecord, ClientLimits, IcompleatClient
from connectors.icompleat.limiter import Limiter
from connectors.icompleat.routes import REFERENCE_APIS, ROUTES, Route
from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.secrets import Secret
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

Step = Callable[[IcompleatClient], Awaitable[None]]


def _sample_path(route: Route) -> str:
    values: dict[str, str | int | None] = {p: "x" for p in route.params}
    values.update(tenantId=TENANT_ID)
    if "companyId" in values:
        values["companyId"] = COMPANY_ID
    if "pageNumber" in values:
        values["pageNumber"] = 1
    return route.render(**values)


@pytest.mark.parametrize("name", list(ROUTES))
def test_every_route_is_served_by_the_sandbox(sandbox_client: httpx.Client,
                                              sandbox: SandboxServer, name: str) -> None:
    """Each route answers with its own handler: never 404, 405 or a server fault."""
    route = ROUTES[name]
    body: dict[str, Any] | None = {} if route.is_write and route.method != "DELETE" else None
    response = sandbox_client.request(route.method, _sample_path(route), json=body)
    assert response.status_code not in (404, 405, 500), response.text
    assert any(e.route == name for e in sandbox.state.log.entries())


def _two_records(plural: str) -> list[dict[str, Any]]:
    if plural == "currencycodes":  # exactly one base; the second one can be deleted
        return [{"Code": "GBP", "Name": "Pound", "Rate": 1, "IsBase": True},
                {"Code": "EUR", "Name": "Euro", "Rate": 1.2, "IsBase": False}]
    extra = {"Rate": 5} if plural == "taxcodes" else {}
    return [{"Code": f"R{i}", "Name": f"Record {i}", **extra} for i in (1, 2)]


async def _reference_steps(client: IcompleatClient) -> None:
    for plural, *_ in REFERENCE_APIS:
        first, second = _two_records(plural)
        token = await client.refresh_reference(plural, COMPANY_ID, [first])
        await client.post_reference(plural, COMPANY_ID, [second], token)
        assert len(await client.list_reference(plural, COMPANY_ID)) == 2
        _ = [page async for page in client.reference_pages(plural, COMPANY_ID)]
        await client.edit_reference(plural, COMPANY_ID, second["Code"], second)
        await client.delete_reference(plural, COMPANY_ID, second["Code"])


async def _custom_field_steps(client: IcompleatClient) -> None:
    created = await client.create_custom_fields(COMPANY_ID, [{"Name": "Dept", "Type": "List"}])
    field_id = created[0]["Id"]
    await client.custom_fields(COMPANY_ID)
    await client.post_custom_field_values(COMPANY_ID, field_id, [{"Code": "D", "Name": "d"}])
    await client.custom_field(COMPANY_ID, field_id)
    await client.edit_custom_field(COMPANY_ID, field_id, {"Mandatory": True})
    await client.delete_custom_field(COMPANY_ID, field_id)


async def _transaction_steps(client: IcompleatClient) -> None:
    tx = await client.create_transaction(COMPANY_ID, {"Type": "INV", "Title": "t"})
    other = await client.create_transaction(COMPANY_ID, {"Type": "INV", "Title": "u"})
    await client.edit_transaction(tx["Id"], {"Title": "t2"})
    await client.approve(tx["Id"])
    await client.deny(other["Id"])
    await client.record_journal(tx["Id"], "J-9")
    _ = [page async for page in client.transaction_pages(COMPANY_ID)]
    await client.transaction(tx["Id"])


async def _tenant_steps(client: IcompleatClient) -> None:
    await client.tenant()
    await client.companies()


STEPS: dict[str, Step] = {"tenant": _tenant_steps, "reference": _reference_steps,
                          "customfields": _custom_field_steps,
                          "transactions": _transaction_steps}
EXERCISED = {
    "tenant", "companies", "reference_pages", "list_reference", "post_reference",
    "refresh_reference", "edit_reference", "delete_reference", "custom_fields", "custom_field",
    "create_custom_fields", "edit_custom_field", "delete_custom_field",
    "post_custom_field_values", "transaction_pages", "transaction", "create_transaction",
    "edit_transaction", "approve", "deny", "record_journal",
}


def test_every_public_method_is_exercised_here() -> None:
    """A new client method must join the contract run below."""
    public = {n for n, f in inspect.getmembers(IcompleatClient)
              if not n.startswith("_") and (inspect.iscoroutinefunction(f)
                                            or inspect.isasyncgenfunction(f))}
    assert public - {"aclose"} == EXERCISED


async def test_every_route_is_called_by_a_client_method(sandbox: SandboxServer) -> None:
    """Running every client method touches every route of the table, each answered 2xx."""
    calls: list[CallRecord] = []
    limits = ClientLimits(requests_per_minute=0, max_attempts=1)
    async with IcompleatClient(base_url=sandbox.url, tenant_id=TENANT_ID,
                               api_key=Secret(CANARY_KEY, origin="sandbox fixture key"),
                               limits=limits, limiter=Limiter(0, 4),
                               on_call=calls.append) as client:
        for step in STEPS.values():
            await step(client)
    ok_routes = {c.route for c in calls if c.outcome == "ok"}
    assert set(ROUTES) - ok_routes == set()
