"""The sandbox's custom fields and their values over loopback HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.icompleat.routes import ROUTES
from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.errors import field_from_message
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID


def path(name: str, **params: Any) -> str:
    """The route's path for the fixture tenant and company."""
    return ROUTES[name].render(tenantId=TENANT_ID, companyId=COMPANY_ID, **params)


def create(client: httpx.Client, *names: str) -> list[dict[str, Any]]:
    """Create one List field per name; the created fields."""
    body = {"CustomFields": [{"Name": n, "Type": "List", "Mandatory": False} for n in names]}
    response = client.post(path("customfields.create"), json=body)
    assert response.status_code == 200, response.text
    created: list[dict[str, Any]] = response.json()["CustomFields"]
    return created


def values(client: httpx.Client, field_id: str, items: list[dict[str, str]],
           token: str = "") -> httpx.Response:
    """POST one chunk of values."""
    return client.post(path("customfield.values", customFieldId=field_id),
                       json={"CustomFieldListItems": items, "ContinuationToken": token})


def error(response: httpx.Response) -> tuple[int, int, str | None]:
    """(HTTP status, ErrorCode, field named by the message)."""
    body = response.json()
    return response.status_code, body["ErrorCode"], field_from_message(body["Message"])


def test_create_then_list_and_detail(sandbox_client: httpx.Client) -> None:
    """Created fields get ids, list as {Id, Name} and show their definition in detail."""
    created = create(sandbox_client, "Project", "Cost centre")
    listed = sandbox_client.get(path("customfields.list")).json()["CustomFields"]
    assert listed == sorted(({"Id": f["Id"], "Name": f["Name"]} for f in created),
                            key=lambda f: f["Name"].casefold())
    detail = sandbox_client.get(path("customfield.detail", customFieldId=created[0]["Id"]))
    assert detail.json()["CustomField"] == {"Id": created[0]["Id"], "Name": "Project",
                                            "Type": "List", "Mandatory": False, "Active": True,
                                            "Values": []}


def test_field_names_must_be_unique_and_valid(sandbox_client: httpx.Client) -> None:
    """A name already in use (any case), repeated in one call, or empty is refused on Name."""
    create(sandbox_client, "Project")
    for names in (["project"], ["A", "a"], [""]):
        body = {"CustomFields": [{"Name": n} for n in names]}
        assert error(sandbox_client.post(path("customfields.create"), json=body)) == (
            400, 12, "Name")


def test_values_replace_then_append_with_token(sandbox: SandboxServer,
                                               sandbox_client: httpx.Client) -> None:
    """No token replaces the values at once; the token appends; a repeated code keeps the last."""
    field_id = create(sandbox_client, "Project")[0]["Id"]
    values(sandbox_client, field_id, [{"Code": "OLD", "Name": "old"}])
    first = values(sandbox_client, field_id, [{"Code": f"P{i:03d}", "Name": "p"}
                                              for i in range(100)])
    token = first.json()["ContinuationToken"]
    values(sandbox_client, field_id, [{"Code": "P000", "Name": "renamed"}, {"Code": "P100",
                                                                          "Name": "p"}], token)
    detail = sandbox_client.get(path("customfield.detail", customFieldId=field_id)).json()
    got = {v["Code"]: v["Name"] for v in detail["CustomField"]["Values"]}
    assert len(got) == 101
    assert got["P000"] == "renamed"
    assert "OLD" not in got
    assert sandbox.state.records(TENANT_ID, COMPANY_ID, "custom_fields")[0]["Values"] == (
        detail["CustomField"]["Values"])


def test_values_token_rules(sandbox_client: httpx.Client) -> None:
    """A superseded token, or one of another field, is ErrorCode 20."""
    one, two = (f["Id"] for f in create(sandbox_client, "One", "Two"))
    old = values(sandbox_client, one, [{"Code": "A", "Name": "a"}]).json()["ContinuationToken"]
    values(sandbox_client, one, [{"Code": "B", "Name": "b"}])
    assert error(values(sandbox_client, one, [{"Code": "C", "Name": "c"}], old))[1] == 20
    fresh = values(sandbox_client, one, [{"Code": "D", "Name": "d"}]).json()["ContinuationToken"]
    assert error(values(sandbox_client, two, [{"Code": "E", "Name": "e"}], fresh))[1] == 20


def test_invalid_values_are_refused_naming_the_field(sandbox_client: httpx.Client) -> None:
    """A value code over 20 characters or a value without a name is ErrorCode 12."""
    field_id = create(sandbox_client, "Project")[0]["Id"]
    assert error(values(sandbox_client, field_id, [{"Code": "X" * 21, "Name": "x"}])) == (
        400, 12, "Code")
    assert error(values(sandbox_client, field_id, [{"Code": "X"}])) == (400, 12, "Name")


def test_edit_and_deactivate_a_field(sandbox_client: httpx.Client) -> None:
    """PUT changes the definition; an inactive field leaves the list but keeps its detail."""
    field_id = create(sandbox_client, "Project")[0]["Id"]
    renamed = sandbox_client.put(path("customfield.edit", customFieldId=field_id),
                                 json={"Name": "Job", "Mandatory": True}).json()["CustomField"]
    assert (renamed["Name"], renamed["Mandatory"], renamed["Type"]) == ("Job", True, "List")
    sandbox_client.put(path("customfield.edit", customFieldId=field_id), json={"Active": False})
    assert sandbox_client.get(path("customfields.list")).json()["CustomFields"] == []
    detail = sandbox_client.get(path("customfield.detail", customFieldId=field_id)).json()
    assert detail["CustomField"]["Active"] is False


def test_delete_a_field_and_unknown_field_is_21(sandbox_client: httpx.Client) -> None:
    """DELETE removes the field; every call on an unknown field id is ErrorCode 21."""
    field_id = create(sandbox_client, "Project")[0]["Id"]
    assert sandbox_client.delete(path("customfield.delete",
                                      customFieldId=field_id)).status_code == 200
    calls = [sandbox_client.get(path("customfield.detail", customFieldId=field_id)),
             sandbox_client.put(path("customfield.edit", customFieldId=field_id),
                                json={"Name": "x"}),
             sandbox_client.delete(path("customfield.delete", customFieldId=field_id)),
             values(sandbox_client, field_id, [{"Code": "A", "Name": "a"}])]
    assert [error(c)[:2] for c in calls] == [(400, 21)] * 4


def test_field_ids_compare_case_insensitively(sandbox_client: httpx.Client) -> None:
    """A field id is a GUID: its upper-case spelling reaches the same field."""
    field_id = create(sandbox_client, "Project")[0]["Id"]
    response = sandbox_client.get(path("customfield.detail", customFieldId=field_id.upper()))
    assert response.json()["CustomField"]["Id"] == field_id


def test_seed_custom_fields_with_values(sandbox: SandboxServer,
                                        sandbox_client: httpx.Client) -> None:
    """Seeding by field name creates the field once and merges its values."""
    state = sandbox.state
    state.seed(TENANT_ID, COMPANY_ID, "custom_fields",
               [{"Name": "Project", "Values": [{"Code": "A", "Name": "a"}]}])
    state.seed(TENANT_ID, COMPANY_ID, "custom_fields",
               [{"Name": "Project", "Values": [{"Code": "B", "Name": "b"}]}])
    fields = state.records(TENANT_ID, COMPANY_ID, "customfields")
    assert [(f["Name"], [v["Code"] for v in f["Values"]]) for f in fields] == [
        ("Project", ["A", "B"])]
    assert len(sandbox_client.get(path("customfields.list")).json()["CustomFields"]) == 1
