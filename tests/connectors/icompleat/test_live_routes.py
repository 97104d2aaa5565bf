"""The documented route shapes, lenient body binding and the spaced throttle body, over loopback."""

from __future__ import annotations

import json

import httpx
import pytest

from connectors.icompleat.client import ClientLimits, IcompleatClient
from connectors.icompleat.limiter import Limiter
from connectors.icompleat.routes import ROUTES, RouteTable, build_routes
from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.core import default_user_id
from sync.foundation.config import parse_settings
from sync.foundation.errors import ApiError, BadUser, ConfigError
from sync.foundation.secrets import Secret
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

LIMITS = ClientLimits(requests_per_minute=0, max_attempts=1)
TAXES = [{"Code": "S", "Name": "Standard", "Rate": 20}, {"Code": "Z", "Name": "Zero", "Rate": 0}]
CURRENCIES = [{"Code": "GBP", "Name": "Pound", "Rate": 1, "IsBase": True},
              {"Code": "EUR", "Name": "Euro", "Rate": 1.17, "IsBase": False}]


def make_client(sandbox: SandboxServer, *, user_id: str | None = None,
                routes: RouteTable = ROUTES) -> IcompleatClient:
    """The project's client on the sandbox, with its own limiter."""
    return IcompleatClient(base_url=sandbox.url, tenant_id=TENANT_ID, routes=routes,
                           api_key=Secret(CANARY_KEY, origin="sandbox fixture key"),
                           limits=LIMITS, limiter=Limiter(0, 4), user_id=user_id)


@pytest.fixture
def seeded(sandbox: SandboxServer) -> SandboxServer:
    """The sandbox with two tax codes and two currencies."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "taxcodes", TAXES)
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "currencycodes", CURRENCIES)
    return sandbox


def _paths(sandbox: SandboxServer, route: str) -> list[str]:
    return [e.path for e in sandbox.state.log.entries(route)]


@pytest.mark.parametrize("api", ["taxcodes", "currencycodes"])
async def test_user_scoped_lists_send_null_without_a_user_id(seeded: SandboxServer,
                                                             api: str) -> None:
    """Tax and currency lists carry the user and transaction segments, both NULL by default."""
    async with make_client(seeded) as client:
        rows = await client.list_reference(api, COMPANY_ID)
    assert len(rows) == 2
    assert _paths(seeded, f"{api}.list") == [f"/api/{api}/{TENANT_ID}/{COMPANY_ID}/1/NULL/NULL"]


@pytest.mark.parametrize("api", ["taxcodes", "currencycodes"])
async def test_user_scoped_lists_send_the_configured_user_id(seeded: SandboxServer,
                                                             api: str) -> None:
    """A configured user id goes in the user segment; an unknown one is ErrorCode 3."""
    user = default_user_id(TENANT_ID)
    async with make_client(seeded, user_id=user) as client:
        assert len(await client.list_reference(api, COMPANY_ID)) == 2
    assert _paths(seeded, f"{api}.list") == [f"/api/{api}/{TENANT_ID}/{COMPANY_ID}/1/{user}/NULL"]
    stranger = "0b0b0b0b-0000-4000-8000-00000000000b"
    async with make_client(seeded, user_id=stranger) as client:
        with pytest.raises(BadUser):
            await client.list_reference(api, COMPANY_ID)


def test_suppliers_list_keeps_three_segments() -> None:
    """Only the documented lists grew segments: suppliers stay company and page."""
    assert ROUTES["suppliers.list"].params == ("tenantId", "companyId", "pageNumber")
    assert ROUTES["taxcodes.list"].params[-2:] == ("userId", "transactionId")


@pytest.mark.parametrize("api", ["taxcodes", "currencycodes"])
def test_the_old_three_segment_form_is_404(seeded: SandboxServer,
                                           sandbox_client: httpx.Client, api: str) -> None:
    """The sandbox serves only the documented shape: the old guess answers 404."""
    old = sandbox_client.get(f"/api/{api}/{TENANT_ID}/{COMPANY_ID}/1")
    assert old.status_code == 404
    new = sandbox_client.get(f"/api/{api}/{TENANT_ID}/{COMPANY_ID}/1/null/null")
    assert new.status_code == 200


async def test_a_stale_three_segment_override_is_caught(seeded: SandboxServer) -> None:
    """An override still pointing at the old path fails loudly (HTTP 404), never reads empty."""
    stale = build_routes({"taxcodes.list": {"path": "/api/taxcodes/{tenantId}/{companyId}/"
                                                    "{pageNumber}"}})
    async with make_client(seeded, routes=stale) as client:
        with pytest.raises(ApiError, match="HTTP 404"):
            await client.list_reference("taxcodes", COMPANY_ID)


def test_user_id_must_be_a_guid() -> None:
    """`[icompleat] user_id` is optional; when set it must be a GUID (case ignored)."""
    assert parse_settings({}).icompleat.user_id is None
    upper = "1B4E28BA-2FA1-11D2-883F-0016D3CCA427"
    assert parse_settings({"icompleat": {"user_id": upper}}).icompleat.user_id == upper.lower()
    with pytest.raises(ConfigError) as caught:
        parse_settings({"icompleat": {"user_id": "admin"}})
    assert caught.value.key == "icompleat.user_id"


async def test_users_list_with_and_without_a_company(sandbox: SandboxServer) -> None:
    """The users route answers for a company and for NULL; an unknown company is ErrorCode 2."""
    async with make_client(sandbox) as client:
        mine = await client.users(COMPANY_ID)
        everyone = await client.users()
        with pytest.raises(ApiError, match="ErrorCode 2"):
            await client.users("5e5e5e5e-0000-4000-8000-00000000005e")
    assert [u["Id"] for u in mine] == [default_user_id(TENANT_ID)] == [u["Id"] for u in everyone]
    assert _paths(sandbox, "users")[1] == f"/api/users/{TENANT_ID}/NULL"


async def test_transactions_list_accepts_a_null_company(sandbox: SandboxServer) -> None:
    """A NULL company lists every company's transactions instead of failing."""
    other = "6f6f6f6f-0000-4000-8000-00000000006f"
    sandbox.state.get_tenant(TENANT_ID).companies[other] = sandbox.state._new_company(
        TENANT_ID, other, "Second")
    one = sandbox.state.create_transaction(TENANT_ID, COMPANY_ID, {"Type": "INV"})
    two = sandbox.state.create_transaction(TENANT_ID, other, {"Type": "INV"})
    async with make_client(sandbox) as client:
        pages = [p async for p in client.transaction_pages(None, status=None)]
    assert [t["Id"] for page in pages for t in page] == [one["Id"], two["Id"]]
    assert "/1/NULL/NULL/NULL/NULL" in _paths(sandbox, "transactions.list")[0]


def test_camel_case_bodies_are_bound_case_insensitively(sandbox: SandboxServer,
                                                        sandbox_client: httpx.Client) -> None:
    """A camelCase refresh is read as the PascalCase one, as the real service did."""
    path = ROUTES["taxcodes.post"].render(tenantId=TENANT_ID, companyId=COMPANY_ID)
    body = {"taxCodes": [{"code": "S", "name": "Standard", "rate": 20}],
            "continuationToken": ""}
    answer = sandbox_client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    assert sandbox.state.records(TENANT_ID, COMPANY_ID, "taxcodes") == [
        {"Code": "S", "Name": "Standard", "Rate": 20}]


def test_strict_mode_refuses_camel_case(sandbox: SandboxServer,
                                        sandbox_client: httpx.Client) -> None:
    """With strict_keys on, camelCase is refused (400, ErrorCode 12) and PascalCase is not."""
    sandbox.state.contract.strict_keys = True
    path = ROUTES["taxcodes.post"].render(tenantId=TENANT_ID, companyId=COMPANY_ID)
    camel = sandbox_client.post(path, json={"taxCodes": [{"code": "S", "name": "s", "rate": 1}],
                                            "continuationToken": ""})
    assert camel.status_code == 400
    assert camel.json()["ErrorCode"] == 12
    pascal_body = {"TaxCodes": [{"Code": "S", "Name": "s", "Rate": 1}], "ContinuationToken": ""}
    pascal = sandbox_client.post(path, json=pascal_body)
    assert pascal.status_code == 200


async def test_icsync_sends_pascal_case_under_strict_binding(sandbox: SandboxServer) -> None:
    """icsync's own writes pass the strict sandbox: it never relies on lenient binding."""
    sandbox.state.contract.strict_keys = True
    async with make_client(sandbox) as client:
        await client.refresh_reference("taxcodes", COMPANY_ID, TAXES)
        tx = await client.create_transaction(COMPANY_ID, {"Type": "INV", "Title": "t"})
        await client.approve(tx["Id"])
        await client.record_journal(tx["Id"], "J-1")
    assert len(sandbox.state.records(TENANT_ID, COMPANY_ID, "taxcodes")) == 2


def test_body_only_throttle_has_the_real_spacing(sandbox: SandboxServer,
                                                 sandbox_client: httpx.Client) -> None:
    """The body-only 429 reads `"statusCode": 429`, one space, as the real front wrote it."""
    sandbox.state.faults.set("companies", throttle_rate=1.0, throttle_body_status=200)
    answer = sandbox_client.get(f"/api/companies/{TENANT_ID}")
    assert answer.status_code == 200
    assert '"statusCode": 429' in answer.text
    assert json.loads(answer.text)["statusCode"] == 429
