"""The sandbox's credentials, envelope, paging and reference-kind writes over loopback HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from connectors.icompleat.routes import ROUTES
from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.errors import field_from_message
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID, api_headers


def path(name: str, **params: Any) -> str:
    """The route's path for the fixture tenant and company."""
    params.setdefault("tenantId", TENANT_ID)
    if "companyId" in ROUTES[name].params:
        params.setdefault("companyId", COMPANY_ID)
    return ROUTES[name].render(**params)


def suppliers(n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` valid suppliers with codes S00000, S00001..."""
    return [{"Code": f"S{i:05d}", "Name": f"Supplier {i}"} for i in range(start, start + n)]


def post(client: httpx.Client, records: list[dict[str, Any]], token: str = "",
         name: str = "suppliers.post", payload: str = "Suppliers") -> httpx.Response:
    """POST one chunk of a refresh / append."""
    return client.post(path(name), json={payload: records, "ContinuationToken": token})


def codes(sandbox: SandboxServer, kind: str = "suppliers") -> list[str]:
    """The codes the sandbox holds for ``kind``."""
    return [r["Code"] for r in sandbox.state.records(TENANT_ID, COMPANY_ID, kind)]


def test_tenant_is_unwrapped_beside_metadata(sandbox_client: httpx.Client) -> None:
    """The tenant's fields sit at top level next to MetaData, with the 7-digit Z time."""
    body = sandbox_client.get(path("tenant")).json()
    assert body["Id"] == TENANT_ID
    meta = body["MetaData"]
    assert meta["Version"] == 1
    assert meta["RequestUrl"].endswith(path("tenant"))
    assert meta["DateCreated"].endswith("Z")
    assert len(meta["DateCreated"].split(".")[1]) == 8


def test_companies_are_listed(sandbox_client: httpx.Client) -> None:
    """The companies call names each company with Id and Name."""
    body = sandbox_client.get(path("companies")).json()
    assert [c["Id"] for c in body["Companies"]] == [COMPANY_ID]
    assert body["Companies"][0]["Name"]


@pytest.mark.parametrize(("tenant", "headers"), [
    (TENANT_ID, {"x-api-version": "1"}),
    (TENANT_ID, api_headers("not-the-key")),
    (TENANT_ID, api_headers(CANARY_KEY[:-1])),
    ("00000000-0000-0000-0000-000000000000", api_headers()),
])
def test_bad_credentials_are_401(sandbox: SandboxServer, tenant: str,
                                 headers: dict[str, str]) -> None:
    """A missing or wrong key, or an unknown tenant, is HTTP 401 without the key in the body."""
    response = httpx.get(sandbox.url + ROUTES["tenant"].render(tenantId=tenant), headers=headers)
    assert response.status_code == 401
    assert CANARY_KEY not in response.text


def test_tenant_id_compares_case_insensitively(sandbox_client: httpx.Client) -> None:
    """GUIDs are compared without regard to case."""
    response = sandbox_client.get(path("companies", tenantId=TENANT_ID.upper()))
    assert response.status_code == 200


def test_wrong_api_version_is_400(sandbox: SandboxServer) -> None:
    """A request without x-api-version 1 is refused with an error body naming the header."""
    headers = {**api_headers(), "x-api-version": "2"}
    response = httpx.get(sandbox.url + path("tenant"), headers=headers)
    assert response.status_code == 400
    assert "x-api-version" in response.json()["Message"]


def test_unknown_path_is_404_and_wrong_method_405(sandbox_client: httpx.Client) -> None:
    """A path no route matches is 404; a known path with another method is 405."""
    assert sandbox_client.get("/api/nothing/here").status_code == 404
    assert sandbox_client.patch(path("tenant")).status_code == 405


def test_unknown_company_is_error_code_2(sandbox_client: httpx.Client) -> None:
    """A company the tenant does not have answers 400 with ErrorCode 2."""
    response = sandbox_client.get(path("suppliers.list", companyId="nope", pageNumber=1))
    assert response.status_code == 400
    assert response.json()["ErrorCode"] == 2


def test_lists_page_at_100_and_end_with_an_empty_page(sandbox: SandboxServer,
                                                      sandbox_client: httpx.Client) -> None:
    """250 records read as 100, 100, 50, then an empty page; in code order."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers", suppliers(250)[::-1])
    pages = [sandbox_client.get(path("suppliers.list", pageNumber=n)).json()["Suppliers"]
             for n in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [100, 100, 50, 0]
    assert [r["Code"] for p in pages for r in p] == [f"S{i:05d}" for i in range(250)]


@pytest.mark.parametrize("page", ["0", "x", "-1"])
def test_bad_page_number_is_error_12(sandbox_client: httpx.Client, page: str) -> None:
    """A page number that is not a whole number from 1 names the pageNumber field."""
    body = sandbox_client.get(path("taxcodes.list", pageNumber=page)).json()
    assert body["ErrorCode"] == 12
    assert field_from_message(body["Message"]) == "pageNumber"


def test_null_segments_and_double_slash_are_accepted(sandbox: SandboxServer) -> None:
    """`NULL`, `null` and a leading `//api` are served like the real client sent them."""
    list_path = f"/api/transactions/{TENANT_ID}/1/{COMPANY_ID}/null/NULL/null"
    for raw in (list_path, "/" + list_path):
        response = httpx.get(sandbox.url + raw, headers=api_headers())
        assert response.status_code == 200, raw
        assert response.json()["Transactions"] == []


def test_code_with_slash_stays_in_its_segment(sandbox: SandboxServer,
                                              sandbox_client: httpx.Client) -> None:
    """A code containing '/' is edited and deleted through its %2F-encoded segment."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "accountcodes", [{"Code": "A/1", "Name": "x"}])
    edit = sandbox_client.put(path("accountcodes.edit", code="A/1"), json={"Name": "y"})
    assert edit.json()["AccountCode"] == {"Code": "A/1", "Name": "y"}
    assert "A%2F1" in edit.json()["MetaData"]["RequestUrl"]
    assert sandbox_client.delete(path("accountcodes.delete", code="A/1")).status_code == 200
    assert codes(sandbox, "account_codes") == []


def test_refresh_replaces_the_live_set_with_its_first_chunk(
        sandbox: SandboxServer, sandbox_client: httpx.Client) -> None:
    """An empty token starts a new set that is live at once, before any further chunk."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers", suppliers(5, start=900))
    response = post(sandbox_client, suppliers(100))
    assert response.status_code == 200
    assert response.json()["ContinuationToken"]
    assert codes(sandbox) == [f"S{i:05d}" for i in range(100)]


def test_append_with_token_and_last_duplicate_wins(sandbox: SandboxServer,
                                                   sandbox_client: httpx.Client) -> None:
    """Chunks sent with the returned token add to the set; a repeated code keeps the last."""
    token = post(sandbox_client, suppliers(100)).json()["ContinuationToken"]
    second = [*suppliers(2, start=100), {"Code": "S00000", "Name": "renamed"},
              {"Code": "S00000", "Name": "renamed again"}]
    response = post(sandbox_client, second, token)
    assert response.json()["ContinuationToken"] == token
    records = {r["Code"]: r for r in sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers")}
    assert len(records) == 102
    assert records["S00000"]["Name"] == "renamed again"


def test_token_of_a_superseded_set_is_error_20(sandbox: SandboxServer,
                                               sandbox_client: httpx.Client) -> None:
    """A newer refresh invalidates the older set's token; the live set is left alone."""
    old = post(sandbox_client, suppliers(100)).json()["ContinuationToken"]
    post(sandbox_client, suppliers(3, start=500))
    response = post(sandbox_client, suppliers(1, start=700), old)
    assert response.status_code == 400
    assert response.json()["ErrorCode"] == 20
    assert codes(sandbox) == ["S00500", "S00501", "S00502"]


def test_unknown_token_and_token_of_another_list_are_error_20(
        sandbox_client: httpx.Client) -> None:
    """A made-up token, or one issued for another kind, is refused with ErrorCode 20."""
    assert post(sandbox_client, suppliers(1), "made-up").json()["ErrorCode"] == 20
    token = post(sandbox_client, suppliers(100)).json()["ContinuationToken"]
    other = post(sandbox_client, [{"Code": "A", "Name": "a"}], token, "accountcodes.post",
                 "AccountCodes")
    assert other.json()["ErrorCode"] == 20


def test_token_expires_after_its_ttl_since_last_use(sandbox: SandboxServer,
                                                    sandbox_client: httpx.Client) -> None:
    """Each use gives the token another TTL; past that it is ErrorCode 20, saying expired."""
    now = [1_000_000.0]
    sandbox.state.clock = lambda: now[0]
    sandbox.state.token_ttl = 60
    token = post(sandbox_client, suppliers(100)).json()["ContinuationToken"]
    now[0] += 50
    assert post(sandbox_client, suppliers(100, start=100), token).status_code == 200
    now[0] += 50
    assert post(sandbox_client, suppliers(100, start=200), token).status_code == 200
    now[0] += 61
    body = post(sandbox_client, suppliers(1, start=300), token).json()
    assert body["ErrorCode"] == 20
    assert "expired" in body["Message"]
    assert len(codes(sandbox)) == 300


def test_more_than_100_records_in_a_chunk_is_refused(sandbox_client: httpx.Client) -> None:
    """A chunk over the chunk size is ErrorCode 12 naming the payload."""
    body = post(sandbox_client, suppliers(101)).json()
    assert body["ErrorCode"] == 12
    assert field_from_message(body["Message"]) == "Suppliers"


def test_edit_replaces_the_whole_record(sandbox: SandboxServer,
                                        sandbox_client: httpx.Client) -> None:
    """PUT stores the body as the record: fields left out are gone."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "suppliers",
                       [{"Code": "S1", "Name": "One", "Email": "a@b.c"}])
    body = sandbox_client.put(path("suppliers.edit", code="S1"),
                              json={"Code": "S1", "Name": "Uno"}).json()
    assert body["Supplier"] == {"Code": "S1", "Name": "Uno"}
    assert sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers") == [body["Supplier"]]


def test_edit_of_an_unknown_code_is_11_and_a_code_change_is_12(
        sandbox: SandboxServer, sandbox_client: httpx.Client) -> None:
    """An unknown code is ErrorCode 11; a body code differing from the path is 12 on Code."""
    missing = sandbox_client.put(path("taxcodes.edit", code="T9"), json={"Name": "x", "Rate": 1})
    assert missing.json()["ErrorCode"] == 11
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "taxcodes", [{"Code": "T1", "Name": "t", "Rate": 0}])
    moved = sandbox_client.put(path("taxcodes.edit", code="T1"),
                               json={"Code": "T2", "Name": "t", "Rate": 0}).json()
    assert moved["ErrorCode"] == 12
    assert field_from_message(moved["Message"]) == "Code"


def test_delete_one_and_unknown_delete_is_11(sandbox: SandboxServer,
                                             sandbox_client: httpx.Client) -> None:
    """DELETE removes the record; deleting it again is ErrorCode 11."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "deliverysites", [{"Code": "D1", "Name": "Dock"}])
    assert sandbox_client.delete(path("deliverysites.delete", code="D1")).status_code == 200
    again = sandbox_client.delete(path("deliverysites.delete", code="D1"))
    assert again.status_code == 400
    assert again.json()["ErrorCode"] == 11
    assert codes(sandbox, "delivery_sites") == []


BAD_RECORDS = [
    ({"Name": "no code"}, "Code"),
    ({"Code": "", "Name": "empty code"}, "Code"),
    ({"Code": "X" * 21, "Name": "long code"}, "Code"),
    ({"Code": "OK", "Name": "N" * 101}, "Name"),
    ({"Code": "OK"}, "Name"),
    ({"Code": "OK", "Name": "n", "TownOrCity": "T" * 101}, "TownOrCity"),
    ({"Code": "OK", "Name": "bell\x07"}, "Name"),
    ({"Code": "OK", "Name": "lone \ud800 surrogate"}, "Name"),
    ({"Code": "OK", "Name": "n", "IsoCode": "GBR"}, "IsoCode"),
    ({"Code": "OK", "Name": "n", "IsoCode": "G1"}, "IsoCode"),
    ({"Code": "OK", "Name": "n", "PaymentDueDays": "thirty"}, "PaymentDueDays"),
    ({"Code": "OK", "Name": "n", "VatNumber": "GB123"}, "VatNumber"),
    ({"Code": 7, "Name": "n"}, "Code"),
]


@pytest.mark.parametrize(("record", "field"), BAD_RECORDS)
def test_invalid_supplier_refuses_the_chunk_naming_the_field(
        sandbox: SandboxServer, sandbox_client: httpx.Client, record: dict[str, Any],
        field: str) -> None:
    """One bad record refuses its whole chunk with ErrorCode 12 naming its index and field."""
    # json.dumps escapes a lone surrogate as \ud800, as a careless client would send it
    raw = json.dumps({"Suppliers": [{"Code": "GOOD", "Name": "g"}, record],
                       "ContinuationToken": ""})
    response = sandbox_client.post(path("suppliers.post"), content=raw,
                                   headers={"content-type": "application/json"})
    body = response.json()
    assert response.status_code == 400
    assert body["ErrorCode"] == 12
    assert field_from_message(body["Message"]) == field
    assert "Suppliers[1]" in body["Message"]
    assert codes(sandbox) == []


@pytest.mark.parametrize(("api", "record", "field"), [
    ("taxcodes", {"Code": "T", "Name": "t", "Rate": -1}, "Rate"),
    ("taxcodes", {"Code": "T", "Name": "t"}, "Rate"),
    ("taxcodes", {"Code": "T", "Name": "t", "Rate": True}, "Rate"),
    ("currencycodes", {"Code": "EURO", "Name": "e", "Rate": 1}, "Code"),
    ("currencycodes", {"Code": "GBP", "Name": "p", "Rate": 1.5, "IsBase": True}, "Rate"),
    ("deliverysites", {"Code": "D", "Name": "d", "AddressLine1": "x"}, "AddressLine1"),
])
def test_kind_specific_rules(sandbox_client: httpx.Client, api: str, record: dict[str, Any],
                             field: str) -> None:
    """Rates are numbers >= 0, currency codes are short, each kind has its own field names."""
    payload = next(k for k in ("TaxCodes", "CurrencyCodes", "DeliverySites")
                   if k.lower() == api)
    body = post(sandbox_client, [record], name=f"{api}.post", payload=payload).json()
    assert body["ErrorCode"] == 12
    assert field_from_message(body["Message"]) == field


def test_empty_optional_fields_are_stored_as_absent(sandbox: SandboxServer,
                                                    sandbox_client: httpx.Client) -> None:
    """Null and empty optional fields are omitted from the stored and listed record."""
    post(sandbox_client, [{"Code": "S", "Name": "n", "Email": "", "Telephone": None,
                           "PaymentDueDays": 30, "AnalysisDefaults": [
                               {"FieldCode": "AccountCode", "Value": "4000"}]}])
    listed = sandbox_client.get(path("suppliers.list", pageNumber=1)).json()["Suppliers"]
    assert listed == [{"Code": "S", "Name": "n", "PaymentDueDays": 30, "AnalysisDefaults": [
        {"FieldCode": "AccountCode", "Value": "4000"}]}]


def currencies(*specs: tuple[str, bool]) -> list[dict[str, Any]]:
    """Currencies with the given codes and base flags."""
    return [{"Code": c, "Name": c, "Rate": 1 if base else 1.2, "IsBase": base}
            for c, base in specs]


def test_a_complete_currency_set_has_exactly_one_base(sandbox_client: httpx.Client) -> None:
    """Zero or two base currencies in a complete set are refused on IsBase; one is fine."""
    for bad in (currencies(("EUR", False)), currencies(("GBP", True), ("EUR", True))):
        body = post(sandbox_client, bad, name="currencycodes.post",
                    payload="CurrencyCodes").json()
        assert body["ErrorCode"] == 12
        assert field_from_message(body["Message"]) == "IsBase"
    good = post(sandbox_client, currencies(("GBP", True), ("EUR", False)),
                name="currencycodes.post", payload="CurrencyCodes")
    assert good.status_code == 200


def test_edits_and_deletes_keep_one_base_currency(sandbox: SandboxServer,
                                                  sandbox_client: httpx.Client) -> None:
    """A second base, unsetting the base, or deleting it is refused on IsBase."""
    sandbox.state.seed(TENANT_ID, COMPANY_ID, "currencies",
                       currencies(("GBP", True), ("EUR", False)))
    second = sandbox_client.put(path("currencycodes.edit", code="EUR"),
                                json=currencies(("EUR", True))[0]).json()
    unset = sandbox_client.put(path("currencycodes.edit", code="GBP"),
                               json=currencies(("GBP", False))[0]).json()
    delete = sandbox_client.delete(path("currencycodes.delete", code="GBP")).json()
    for body in (second, unset, delete):
        assert body["ErrorCode"] == 12
        assert field_from_message(body["Message"]) == "IsBase"
    rate = sandbox_client.put(path("currencycodes.edit", code="EUR"),
                              json={"Name": "Euro", "Rate": 1.17, "IsBase": False})
    assert rate.status_code == 200
