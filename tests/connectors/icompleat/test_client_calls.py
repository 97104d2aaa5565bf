"""What the client sends and how it reads answers: paths, headers, bodies, paging, chunks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from connectors.icompleat.client import ClientLimits, IcompleatClient
from connectors.icompleat.routes import ROUTES, build_routes
from sync.foundation.config import Config, parse_settings
from sync.foundation.errors import ApiError, ConfigError
from sync.foundation.secrets import Secret
from tests.connectors.icompleat.support import Script, make_client, ok


def _page(request: httpx.Request) -> int:
    found = ROUTES.resolve(request.method, request.url.raw_path.decode())
    assert found is not None
    return int(found[1]["pageNumber"] or 0)


async def test_every_call_carries_the_contract_headers_and_writes_a_content_type() -> None:
    """x-api-version and the key header go on every call; Content-Type only on writes."""
    script = Script(ok({"Companies": []}), ok({"ContinuationToken": "t"}))
    client = make_client(script, key="header-key-1234")
    await client.companies()
    await client.post_reference("taxcodes", "C1", [{"Code": "Z", "Name": "Zero", "Rate": 0}])
    get, post = script.requests
    for request in (get, post):
        assert request.headers["x-api-version"] == "1"
        assert request.headers["x-api-compleat-key"] == "header-key-1234"
        assert "header-key-1234" not in str(request.url)
    assert "content-type" not in get.headers
    assert post.headers["content-type"] == "application/json"


async def test_header_names_come_from_the_routes_table() -> None:
    """Overridden header names are the ones sent."""
    routes = build_routes(header_overrides={"key": "x-other-key", "version": "x-v"})
    script = Script(ok({"Companies": []}))
    await make_client(script, key="k-1234", routes=routes).companies()
    assert script.requests[0].headers["x-other-key"] == "k-1234"
    assert script.requests[0].headers["x-v"] == "1"
    assert "x-api-compleat-key" not in script.requests[0].headers


async def test_paths_follow_the_routes_table_and_quote_codes() -> None:
    """Each method hits its route; a code with a slash or space stays one segment."""
    script = Script(ok({"Supplier": {"Code": "A/B 1"}}), ok(), ok({"CustomField": {"Id": "x"}}))
    client = make_client(script, tenant="T1")
    assert await client.edit_reference("suppliers", "C1", "A/B 1", {"Code": "A/B 1"}) == {
        "Code": "A/B 1"}
    await client.delete_reference("suppliers", "C1", "A/B 1")
    await client.custom_field("C1", "cf-1")
    paths = [r.url.raw_path for r in script.requests]
    assert paths == [b"/api/supplier/T1/C1/A%2FB%201", b"/api/supplier/T1/C1/A%2FB%201",
                     b"/api/customfield/T1/C1/cf-1"]
    assert script.routes() == ["suppliers.edit", "suppliers.delete", "customfield.detail"]


async def test_base_url_path_prefix_is_kept() -> None:
    """A base URL with a path prefix keeps it in front of every route."""
    script = Script(ok({"Companies": []}))
    client = IcompleatClient(base_url="https://gw.test/icompleat/", tenant_id="T",
                             api_key=Secret("k-1234"), transport=httpx.MockTransport(script))
    await client.companies()
    await client.aclose()
    assert str(script.requests[0].url) == "https://gw.test/icompleat/api/companies/T"


async def test_reference_pages_stop_at_the_first_empty_page() -> None:
    """Pages are read from 1 and a short page does not end the list; the empty page does."""
    sizes = {1: 100, 2: 100, 3: 5}

    def page(request: httpx.Request) -> httpx.Response:
        n = _page(request)
        return ok({"Suppliers": [{"Code": f"{n}-{i}"} for i in range(sizes.get(n, 0))]})

    script = Script(page)
    rows = await make_client(script).list_reference("suppliers", "C1")
    assert len(rows) == 205
    assert rows[0]["Code"] == "1-0"
    assert [_page(r) for r in script.requests] == [1, 2, 3, 4]


async def test_reference_pages_refuse_a_route_without_pages() -> None:
    """Custom fields are not paged: asking for their pages is a configuration error."""
    with pytest.raises(ConfigError, match=r"customfields\.list"):
        await make_client(Script(ok())).list_reference("customfields", "C1")


@pytest.mark.parametrize(("sizes", "requests"), [((20, 20, 3), 3), ((20, 20, 0), 3), ((0,), 1)])
async def test_transaction_pages_stop_at_a_short_or_empty_page(
    sizes: tuple[int, ...], requests: int,
) -> None:
    """Transactions come 20 a page; a page under 20 is the last."""
    def page(request: httpx.Request) -> httpx.Response:
        n = _page(request)
        count = sizes[n - 1] if n <= len(sizes) else 0
        return ok({"Transactions": [{"Id": f"{n}-{i}"} for i in range(count)],
                   "PageNumber": n, "Count": count, "PageSize": 20})

    script = Script(page)
    pages = [p async for p in make_client(script).transaction_pages("C1")]
    assert [len(p) for p in pages] == [s for s in sizes if s]
    assert len(script.requests) == requests


async def test_null_segments_in_transaction_paths() -> None:
    """Absent filters and user ids are sent as NULL path segments."""
    script = Script(ok({"Transactions": []}), ok({"Transaction": {"Id": "x"}}))
    client = make_client(script, tenant="T")
    assert [p async for p in client.transaction_pages("C1", transaction_type="INV")] == []
    assert await client.transaction("x") == {"Id": "x"}
    assert [r.url.raw_path for r in script.requests] == [
        b"/api/transactions/T/1/C1/NULL/APPR/INV", b"/api/transaction/T/x/NULL"]
    script2 = Script(ok({"Transactions": []}))
    _ = [p async for p in make_client(script2, tenant="T").transaction_pages(
        "C1", status=None, user_id="u1")]
    assert script2.requests[0].url.raw_path == b"/api/transactions/T/1/C1/u1/NULL/NULL"


async def test_refresh_sends_chunks_in_order_with_tokens() -> None:
    """250 records go as 100/100/50; each chunk carries the previous token; on_chunk sees it."""
    tokens = iter(["t1", "t2", "t3"])
    script = Script(lambda r: ok({"ContinuationToken": next(tokens)}))
    seen: list[tuple[int, int, str]] = []

    async def journal(index: int, total: int, token: str) -> None:
        seen.append((index, total, token))

    records = [{"Code": f"S{i:03}", "Name": "n"} for i in range(250)]
    last = await make_client(script).refresh_reference("suppliers", "C1", records,
                                                       on_chunk=journal)
    bodies = script.bodies()
    assert last == "t3"
    assert seen == [(1, 3, "t1"), (2, 3, "t2"), (3, 3, "t3")]
    assert [len(b["Suppliers"]) for b in bodies] == [100, 100, 50]
    assert [b["ContinuationToken"] for b in bodies] == ["", "t1", "t2"]
    assert [r["Code"] for b in bodies for r in b["Suppliers"]] == [r["Code"] for r in records]


async def test_refresh_resumes_with_a_token_and_sends_empty_sets() -> None:
    """A given token appends; an empty record list is one empty chunk starting a new set."""
    script = Script(ok({"ContinuationToken": "n1"}))
    client = make_client(script)
    await client.refresh_reference("taxcodes", "C1", [{"Code": "A"}], token="resume-me")
    await client.refresh_reference("taxcodes", "C1", [])
    assert script.bodies() == [{"TaxCodes": [{"Code": "A"}], "ContinuationToken": "resume-me"},
                               {"TaxCodes": [], "ContinuationToken": ""}]


async def test_refresh_stops_when_a_token_is_missing_mid_set() -> None:
    """Without a token after chunk 1 of 2 the set cannot be continued: an error, no resend."""
    script = Script(ok({}))
    seen: list[tuple[int, int, str]] = []

    async def journal(index: int, total: int, token: str) -> None:
        seen.append((index, total, token))

    with pytest.raises(ApiError, match="chunk 1 of 2"):
        await make_client(script).refresh_reference(
            "suppliers", "C1", [{"Code": str(i)} for i in range(150)], on_chunk=journal)
    assert len(script.requests) == 1
    assert seen == [(1, 2, "")]


async def test_chunk_limits() -> None:
    """A chunk over 100 records and a chunk size outside 1..100 are refused before sending."""
    client = make_client(Script(ok()))
    with pytest.raises(ValueError, match="at most 100"):
        await client.post_reference("suppliers", "C1", [{"Code": str(i)} for i in range(101)])
    with pytest.raises(ValueError, match="chunk_size"):
        await client.refresh_reference("suppliers", "C1", [], chunk_size=0)


async def test_tenant_companies_and_custom_field_calls() -> None:
    """Tenant unwraps, and the custom-field calls send their payload names."""
    script = Script(ok({"Id": "T", "Name": "Tenant"}), ok({"Companies": [{"Id": "C1"}]}),
                    ok({"CustomFields": [{"Id": "cf", "Name": "Project"}]}),
                    ok({"CustomField": {"Id": "cf", "Name": "Job"}}), ok(),
                    ok({"ContinuationToken": "v1"}))
    client = make_client(script)
    assert await client.tenant() == {"Id": "T", "Name": "Tenant"}
    assert await client.companies() == [{"Id": "C1"}]
    assert await client.create_custom_fields("C1", [{"Name": "Project", "Type": "List"}]) == [
        {"Id": "cf", "Name": "Project"}]
    assert await client.edit_custom_field("C1", "cf", {"Name": "Job"}) == {"Id": "cf",
                                                                           "Name": "Job"}
    await client.delete_custom_field("C1", "cf")
    assert await client.post_custom_field_values("C1", "cf", [{"Code": "P", "Name": "p"}],
                                                 token="v0") == "v1"
    assert script.routes() == ["tenant", "companies", "customfields.create", "customfield.edit",
                               "customfield.delete", "customfield.values"]
    bodies = script.bodies()
    assert bodies[2] == {"CustomFields": [{"Name": "Project", "Type": "List"}]}
    assert bodies[5] == {"CustomFieldListItems": [{"Code": "P", "Name": "p"}],
                         "ContinuationToken": "v0"}


async def test_transaction_edits_send_partial_bodies() -> None:
    """Create, approve, deny and record a journal send the contract's partial bodies."""
    script = Script(lambda r: ok({"Transaction": {"Id": "tx"}}))
    client = make_client(script)
    await client.create_transaction("C1", {"Type": "INV", "Title": "Paper"})
    await client.approve("tx")
    await client.deny("tx")
    await client.record_journal("tx", "J-42")
    assert script.routes() == ["transaction.create", *["transaction.edit"] * 3]
    assert script.bodies() == [{"Type": "INV", "Title": "Paper"}, {"Status": "APPR"},
                               {"Status": "DEN"}, {"JournalNumber": "J-42"}]


@pytest.mark.parametrize(("url", "allow"), [
    ("http://example.com", False), ("ftp://example.com", False), ("https://", False),
    ("https://user:pw@example.com", False), ("https://example.com/?k=v", False)])
def test_bad_base_urls_are_refused(url: str, allow: bool) -> None:
    """Plain http to a remote host, other schemes and URLs with credentials are refused."""
    with pytest.raises(ConfigError, match=r"icompleat\.base_url") as caught:
        IcompleatClient(base_url=url, tenant_id="T", api_key=Secret("k-1234"),
                        allow_insecure_http=allow)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(("url", "allow"), [
    ("http://127.0.0.1:8080", False), ("http://localhost:1", False), ("http://[::1]:2", False),
    ("http://erp-gateway.internal", True), ("https://api-eu1.compleat.online", False)])
async def test_allowed_base_urls(url: str, allow: bool) -> None:
    """Loopback http, explicitly allowed http and https are accepted."""
    client = IcompleatClient(base_url=url, tenant_id="T", api_key=Secret("k-1234"),
                             allow_insecure_http=allow)
    await client.aclose()


def test_empty_tenant_or_key_is_a_config_error() -> None:
    """A client without a tenant id or with an empty key fails naming the setting."""
    with pytest.raises(ConfigError, match=r"icompleat\.tenant_id"):
        IcompleatClient(base_url="https://h", tenant_id=" ", api_key=Secret("k-1234"))
    with pytest.raises(ConfigError, match=r"icompleat\.api_key"):
        IcompleatClient(base_url="https://h", tenant_id="T", api_key=Secret("", origin="env X"))


async def test_from_config_uses_limits_routes_and_key(tmp_path: Path) -> None:
    """from_config reads the key file, the limits and the route overrides."""
    key_file = tmp_path / "key"
    key_file.write_text("file-key-5678\n")
    settings = parse_settings({"icompleat": {
        "base_url": "https://icompleat.test", "tenant_id": "T9", "api_key_file": str(key_file),
        "requests_per_minute": 7, "max_concurrency": 2, "max_attempts": 3,
        "routes": {"companies": {"path": "/v1/companies/{tenantId}"}}}})
    script = Script(ok({"Companies": []}))
    client = IcompleatClient.from_config(Config(settings), transport=httpx.MockTransport(script))
    await client.companies()
    await client.aclose()
    assert client.limits == ClientLimits(7, 2, 30.0, 3, 1.0, 60.0)
    assert script.requests[0].url.path == "/v1/companies/T9"
    assert script.requests[0].headers["x-api-compleat-key"] == "file-key-5678"


def test_from_config_without_a_key_says_where_to_put_one(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """No key anywhere: ConfigError listing the places a key may come from."""
    monkeypatch.delenv("ICSYNC_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = Config(parse_settings({"icompleat": {"tenant_id": "T"}}))
    with pytest.raises(ConfigError, match="ICSYNC_API_KEY"):
        IcompleatClient.from_config(config)
