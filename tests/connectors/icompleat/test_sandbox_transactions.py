"""The sandbox's transactions: create, list with filters and paging, detail, edits, Posting."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors.icompleat.models import parse_transaction
from connectors.icompleat.routes import ROUTES
from connectors.icompleat.sandbox import SandboxServer
from connectors.icompleat.sandbox.core import default_user_id
from sync.foundation.errors import field_from_message
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID


def invoice(title: str = "Office chairs", tx_type: str = "INV") -> dict[str, Any]:
    """A transaction body in the detail shape, without Id."""
    money = {"Base": {"Display": "£40.00", "Value": 40}, "Local": {"Value": 40}}
    return {"Type": tx_type, "Title": title, "SupplierName": "Acme",
            "References": {"Identifier": "INV-1", "Supplier": "ACME"},
            "Dates": {"Invoice": "2024-05-01", "Delivery": "string"},
            "Net": money, "Vat": money, "Gross": money,
            "Analysis": [{"Name": "Currency Code", "Value": {"Code": "GBP"}}],
            "Lines": [{"Code": "4000", "Description": "Chair", "Quantity": None,
                       "Net": money, "Vat": money, "Gross": money}]}


def create(client: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create a transaction through the API; the created detail."""
    response = client.post(ROUTES["transaction.create"].render(
        tenantId=TENANT_ID, companyId=COMPANY_ID), json=body or invoice())
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()["Transaction"]
    return created


def listing(client: httpx.Client, page: int = 1, status: str | None = None,
            tx_type: str | None = None, user: str | None = None,
            company: str = COMPANY_ID) -> httpx.Response:
    """GET one page of the transactions list."""
    return client.get(ROUTES["transactions.list"].render(
        tenantId=TENANT_ID, pageNumber=page, companyId=company, userId=user, status=status,
        transactionType=tx_type))


def edit(client: httpx.Client, tx_id: str, body: dict[str, Any]) -> httpx.Response:
    """PUT a partial edit."""
    return client.put(ROUTES["transaction.edit"].render(tenantId=TENANT_ID,
                                                        transactionId=tx_id), json=body)


def detail(client: httpx.Client, tx_id: str, user: str | None = None) -> httpx.Response:
    """GET one transaction."""
    return client.get(ROUTES["transaction.detail"].render(tenantId=TENANT_ID,
                                                          transactionId=tx_id, userId=user))


def error(response: httpx.Response) -> tuple[int, int, str | None]:
    """(HTTP status, ErrorCode, field named by the message)."""
    body = response.json()
    return response.status_code, body["ErrorCode"], field_from_message(body["Message"])


def test_create_assigns_id_status_and_company(sandbox_client: httpx.Client) -> None:
    """A created transaction is SAV, has an Id, its company, owner, line ids and parses."""
    tx = create(sandbox_client)
    assert tx["Status"] == "SAV"
    assert tx["Company"]["Id"] == COMPANY_ID
    assert tx["Owner"]["Id"] == default_user_id(TENANT_ID)
    assert [(line["Number"], bool(line["Id"])) for line in tx["Lines"]] == [(1, True)]
    parsed = parse_transaction(tx)
    assert (parsed.id, parsed.currency, parsed.journal_number) == (tx["Id"], "GBP", None)


@pytest.mark.parametrize(("body", "field"), [
    ({"Title": "no type"}, "Type"),
    ({"Type": "XYZ"}, "Type"),
    ({"Type": "INV", "Id": "mine"}, "Id"),
    ({"Type": "INV", "Lines": "many"}, "Lines"),
])
def test_create_refuses_bad_bodies(sandbox_client: httpx.Client, body: dict[str, Any],
                                   field: str) -> None:
    """A missing or unknown Type, a client-chosen Id or malformed lines are ErrorCode 12."""
    response = sandbox_client.post(ROUTES["transaction.create"].render(
        tenantId=TENANT_ID, companyId=COMPANY_ID), json=body)
    assert error(response) == (400, 12, field)


def test_list_pages_at_20_with_page_fields(sandbox_client: httpx.Client) -> None:
    """45 transactions list as 20, 20, 5, then empty, each page naming its number and size."""
    ids = [create(sandbox_client, invoice(f"t{i}"))["Id"] for i in range(45)]
    pages = [listing(sandbox_client, page).json() for page in (1, 2, 3, 4)]
    assert [(p["PageNumber"], p["Count"], p["PageSize"]) for p in pages] == [
        (1, 20, 20), (2, 20, 20), (3, 5, 20), (4, 0, 20)]
    assert [t["Id"] for p in pages for t in p["Transactions"]] == ids
    assert "Lines" not in pages[0]["Transactions"][0]


def test_list_filters_by_status_type_and_user(sandbox_client: httpx.Client) -> None:
    """Status, type and user segments filter; NULL means any."""
    inv, order = create(sandbox_client), create(sandbox_client, invoice(tx_type="ORD"))
    edit(sandbox_client, inv["Id"], {"Status": "APPR"})
    only = [t["Id"] for t in listing(sandbox_client, status="APPR").json()["Transactions"]]
    orders = [t["Id"] for t in listing(sandbox_client, tx_type="ORD").json()["Transactions"]]
    mine = listing(sandbox_client, user=default_user_id(TENANT_ID)).json()["Transactions"]
    assert (only, orders, len(mine)) == ([inv["Id"]], [order["Id"]], 2)


def test_unknown_user_is_3_and_unknown_company_is_2(sandbox_client: httpx.Client) -> None:
    """A user id the tenant does not have is ErrorCode 3; an unknown company 2."""
    tx = create(sandbox_client)
    assert error(listing(sandbox_client, user="nobody"))[:2] == (400, 3)
    assert error(detail(sandbox_client, tx["Id"], user="nobody"))[:2] == (400, 3)
    assert error(listing(sandbox_client, company="other"))[:2] == (400, 2)


def test_detail_and_unknown_transaction_is_10(sandbox_client: httpx.Client) -> None:
    """Detail returns the whole transaction; unknown ids are ErrorCode 10 on read and edit."""
    tx = create(sandbox_client)
    assert detail(sandbox_client, tx["Id"].upper()).json()["Transaction"] == tx
    assert error(detail(sandbox_client, "missing"))[:2] == (400, 10)
    assert error(edit(sandbox_client, "missing", {"Status": "APPR"}))[:2] == (400, 10)


def test_approve_deny_and_bad_status(sandbox_client: httpx.Client) -> None:
    """Status APPR approves, DEN denies; an unknown status or field is ErrorCode 12."""
    tx = create(sandbox_client)
    approved = edit(sandbox_client, tx["Id"], {"Status": "APPR"}).json()["Transaction"]
    assert approved["Status"] == "APPR"
    assert approved["LastUpdatedGuid"] != tx["LastUpdatedGuid"]
    other = create(sandbox_client)
    assert edit(sandbox_client, other["Id"], {"Status": "DEN"}).json()["Transaction"][
        "Status"] == "DEN"
    assert error(edit(sandbox_client, tx["Id"], {"Status": "MAYBE"})) == (400, 12, "Status")
    assert error(edit(sandbox_client, tx["Id"], {"Id": "x"})) == (400, 12, "Id")


def test_journal_number_is_recorded_once(sandbox_client: httpx.Client) -> None:
    """The first number makes the Posting block; the same again is 200, another is 12."""
    tx = create(sandbox_client)
    edit(sandbox_client, tx["Id"], {"Status": "APPR"})
    first = edit(sandbox_client, tx["Id"], {"JournalNumber": "J-1"}).json()["Transaction"]
    assert first["Posting"]["JournalNumber"] == "J-1"
    assert first["Posting"]["PostedAt"].endswith("Z")
    again = edit(sandbox_client, tx["Id"], {"JournalNumber": "J-1"})
    assert again.json()["Transaction"] == first
    assert error(edit(sandbox_client, tx["Id"], {"JournalNumber": "J-2"})) == (
        400, 12, "JournalNumber")
    listed = listing(sandbox_client).json()["Transactions"][0]
    assert listed["Posting"] == first["Posting"]
    assert parse_transaction(listed).journal_number == "J-1"


def test_journal_number_needs_an_approved_transaction(sandbox_client: httpx.Client) -> None:
    """A journal number on a saved transaction, or an empty one, is ErrorCode 12."""
    tx = create(sandbox_client)
    assert error(edit(sandbox_client, tx["Id"], {"JournalNumber": "J-1"})) == (
        400, 12, "JournalNumber")
    edit(sandbox_client, tx["Id"], {"Status": "APPR"})
    assert error(edit(sandbox_client, tx["Id"], {"JournalNumber": ""})) == (
        400, 12, "JournalNumber")


def test_deleted_transaction_cannot_come_back(sandbox: SandboxServer,
                                              sandbox_client: httpx.Client) -> None:
    """Once DEL, a status change is refused; the checker view shows every transaction."""
    tx = create(sandbox_client)
    edit(sandbox_client, tx["Id"], {"Status": "DEL"})
    assert error(edit(sandbox_client, tx["Id"], {"Status": "APPR"})) == (400, 12, "Status")
    assert [t["Status"] for t in sandbox.state.all_transactions(TENANT_ID)] == ["DEL"]
