"""Every client method against the real sandbox over loopback HTTP, clean and with faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.icompleat.client import ClientLimits, IcompleatClient
from connectors.icompleat.limiter import Limiter
from connectors.icompleat.sandbox import SandboxServer
from sync.foundation import errors
from sync.foundation.secrets import Secret
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

LOOP = ClientLimits(requests_per_minute=0, max_concurrency=4, timeout_seconds=5,
                    max_attempts=4, backoff_seconds=0.01, max_backoff_seconds=2)
ORIGIN = "sandbox fixture key"
KIND_APIS = ("suppliers", "accountcodes", "taxcodes", "currencycodes", "deliverysites")


def client_for(sandbox: SandboxServer, limits: ClientLimits = LOOP,
               key: str = CANARY_KEY) -> IcompleatClient:
    """A client on the sandbox with a limiter of its own (no pause leaks between tests)."""
    return IcompleatClient(base_url=sandbox.url, tenant_id=TENANT_ID,
                           api_key=Secret(key, origin=ORIGIN), limits=limits,
                           limiter=Limiter(limits.requests_per_minute, limits.max_concurrency))


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[IcompleatClient]:
    """The project's client on the fixture sandbox."""
    async with client_for(sandbox) as c:
        yield c


async def logged(sandbox: SandboxServer, route: str, expected: int) -> int:
    """The sandbox's request count for ``route`` once it reaches ``expected`` (or 2 s pass).

    The sandbox logs a dropped or hung request only after the client has seen it end.
    """
    for _ in range(200):
        if sandbox.state.log.count(route) >= expected:
            break
        await asyncio.sleep(0.01)
    return sandbox.state.log.count(route)


def valid_records(api: str, n: int) -> list[dict[str, Any]]:
    """``n`` records the sandbox accepts for ``api`` (one base currency for currencies)."""
    if api == "currencycodes":
        return [{"Code": f"{chr(65 + i // 100)}{i % 100:02}", "Name": f"Currency {i}",
                 "Rate": 1 if i == 0 else 1.5, "IsBase": i == 0} for i in range(n)]
    extra = {"Rate": 20} if api == "taxcodes" else {}
    return [{"Code": f"K{i:04}", "Name": f"Record {i}", **extra} for i in range(n)]


async def test_tenant_and_companies(client: IcompleatClient) -> None:
    """The tenant comes back unwrapped and the fixture company is listed."""
    tenant = await client.tenant()
    assert tenant["Id"] == TENANT_ID
    assert "MetaData" not in tenant
    assert [c["Id"] for c in await client.companies()] == [COMPANY_ID]


@pytest.mark.parametrize("api", KIND_APIS)
async def test_reference_kind_round_trip(client: IcompleatClient, sandbox: SandboxServer,
                                         api: str) -> None:
    """Refresh in two chunks, list all pages, edit one, delete one: the sandbox agrees."""
    records = valid_records(api, 150)
    chunks: list[tuple[int, int, str]] = []

    async def journal(index: int, total: int, token: str) -> None:
        chunks.append((index, total, token))

    token = await client.refresh_reference(api, COMPANY_ID, records, on_chunk=journal)
    assert [c[:2] for c in chunks] == [(1, 2), (2, 2)]
    assert token
    listed = await client.list_reference(api, COMPANY_ID)
    assert sorted(r["Code"] for r in listed) == sorted(r["Code"] for r in records)
    assert await logged(sandbox, f"{api}.list", 3) == 3  # two full-or-partial pages + empty
    edited = {**records[1], "Name": "Renamed"}
    assert (await client.edit_reference(api, COMPANY_ID, edited["Code"], edited))["Name"] == (
        "Renamed")
    await client.delete_reference(api, COMPANY_ID, records[2]["Code"])
    remote = {r["Code"]: r for r in sandbox.state.records(TENANT_ID, COMPANY_ID, api)}
    assert len(remote) == 149
    assert remote[edited["Code"]]["Name"] == "Renamed"


async def test_append_with_a_token_and_a_bad_token(client: IcompleatClient,
                                                   sandbox: SandboxServer) -> None:
    """A token appends to the set; an unknown token is BadContinuationToken."""
    token = await client.post_reference("suppliers", COMPANY_ID, valid_records("suppliers", 2))
    more = [{"Code": "Z0001", "Name": "Appended"}]
    await client.post_reference("suppliers", COMPANY_ID, more, token)
    assert len(sandbox.state.records(TENANT_ID, COMPANY_ID, "suppliers")) == 3
    with pytest.raises(errors.BadContinuationToken):
        await client.post_reference("suppliers", COMPANY_ID, more, "no-such-token")


async def test_record_errors_name_the_code_and_field(client: IcompleatClient) -> None:
    """An unknown code is UnknownRecord; an overlong Name is ValidationFailed naming Name."""
    with pytest.raises(errors.UnknownRecord, match="NOPE"):
        await client.edit_reference("suppliers", COMPANY_ID, "NOPE", {"Code": "NOPE",
                                                                      "Name": "x"})
    await client.post_reference("suppliers", COMPANY_ID, [{"Code": "S1", "Name": "ok"}])
    with pytest.raises(errors.ValidationFailed) as caught:
        await client.edit_reference("suppliers", COMPANY_ID, "S1", {"Code": "S1",
                                                                    "Name": "x" * 101})
    assert caught.value.field == "Name"
    with pytest.raises(errors.UnknownCompany):
        await client.list_reference("suppliers", "00000000-0000-0000-0000-00000000dead")


async def test_custom_field_lifecycle(client: IcompleatClient) -> None:
    """Create, list, set values in chunks, read them back, edit and delete a custom field."""
    created = await client.create_custom_fields(
        COMPANY_ID, [{"Name": "Project", "Type": "List", "Mandatory": False}])
    field_id = created[0]["Id"]
    assert [f["Name"] for f in await client.custom_fields(COMPANY_ID)] == ["Project"]
    values = [{"Code": f"P{i:03}", "Name": f"Project {i}"} for i in range(150)]
    token = await client.post_custom_field_values(COMPANY_ID, field_id, values[:100])
    await client.post_custom_field_values(COMPANY_ID, field_id, values[100:], token)
    detail = await client.custom_field(COMPANY_ID, field_id)
    assert sorted(v["Code"] for v in detail["Values"]) == [v["Code"] for v in values]
    assert (await client.edit_custom_field(COMPANY_ID, field_id, {"Name": "Job"}))["Name"] == (
        "Job")
    await client.delete_custom_field(COMPANY_ID, field_id)
    with pytest.raises(errors.CustomFieldNotFound):
        await client.custom_field(COMPANY_ID, field_id)


async def test_transaction_lifecycle(client: IcompleatClient) -> None:
    """Create, approve, find among approved, record a journal (idempotent), deny another."""
    tx = await client.create_transaction(COMPANY_ID, {"Type": "INV", "Title": "Paper"})
    other = await client.create_transaction(COMPANY_ID, {"Type": "ORD", "Title": "Pens"})
    assert tx["Status"] == "SAV"
    assert (await client.approve(tx["Id"]))["Status"] == "APPR"
    assert (await client.deny(other["Id"]))["Status"] == "DEN"
    approved = [t async for page in client.transaction_pages(COMPANY_ID) for t in page]
    assert [t["Id"] for t in approved] == [tx["Id"]]
    invoices = [t async for page in client.transaction_pages(
        COMPANY_ID, status=None, transaction_type="ORD") for t in page]
    assert [t["Id"] for t in invoices] == [other["Id"]]
    posted = await client.record_journal(tx["Id"], "J-1")
    assert posted["Posting"]["JournalNumber"] == "J-1"
    assert (await client.record_journal(tx["Id"], "J-1"))["Posting"]["JournalNumber"] == "J-1"
    with pytest.raises(errors.ValidationFailed):
        await client.record_journal(tx["Id"], "J-2")
    assert (await client.transaction(tx["Id"]))["Posting"]["JournalNumber"] == "J-1"
    with pytest.raises(errors.UnknownTransaction):
        await client.transaction("no-such-transaction")


async def test_transaction_paging_stops_at_the_short_page(client: IcompleatClient,
                                                         sandbox: SandboxServer) -> None:
    """45 approved transactions come as 20, 20 and 5 in three requests."""
    for i in range(45):
        tx = sandbox.state.create_transaction(TENANT_ID, COMPANY_ID,
                                              {"Type": "INV", "Title": f"T{i}"})
        sandbox.state.approve(TENANT_ID, tx["Id"])
    pages = [page async for page in client.transaction_pages(COMPANY_ID, transaction_type="INV")]
    assert [len(p) for p in pages] == [20, 20, 5]
    assert await logged(sandbox, "transactions.list", 3) == 3


async def test_wrong_and_rotated_keys_are_final(sandbox: SandboxServer) -> None:
    """A wrong key, and a key rotated mid-run, are AuthRejected after one request each."""
    async with client_for(sandbox, key="not-the-right-key") as wrong:
        with pytest.raises(errors.AuthRejected, match=ORIGIN):
            await wrong.companies()
    async with client_for(sandbox) as client:
        await client.companies()
        sandbox.state.rotate_key(TENANT_ID, "rotated-key-value")
        with pytest.raises(errors.AuthRejected):
            await client.tenant()
    assert await logged(sandbox, "tenant", 1) == 1


async def test_throttling_with_retry_after_is_waited_out(client: IcompleatClient,
                                                         sandbox: SandboxServer) -> None:
    """A 429 with Retry-After 0.3 s is retried no sooner than that, and succeeds."""
    sandbox.state.faults.set("companies", throttle_rate=1.0, retry_after=0.3, times=1)
    started = time.monotonic()
    assert [c["Id"] for c in await client.companies()] == [COMPANY_ID]
    assert time.monotonic() - started >= 0.3
    assert await logged(sandbox, "companies", 2) == 2
    entries = sandbox.state.log.entries("companies")
    assert [e.status for e in entries] == [429, 200]
    assert client.stats.throttled == 1


@pytest.mark.parametrize("status", [200, 500])
async def test_throttling_in_the_body_is_retried(client: IcompleatClient,
                                                 sandbox: SandboxServer, status: int) -> None:
    """A 200 or 500 carrying statusCode 429 is throttling: even a write is sent again."""
    sandbox.state.faults.set("suppliers.post", throttle_rate=1.0, throttle_body_status=status,
                             times=1)
    assert await client.post_reference("suppliers", COMPANY_ID, [{"Code": "A", "Name": "a"}])
    assert await logged(sandbox, "suppliers.post", 2) == 2
    assert client.stats.throttled == 1


async def test_server_errors_on_reads_are_retried(client: IcompleatClient,
                                                  sandbox: SandboxServer) -> None:
    """Two 503s and a dropped connection on a read are retried until the page comes."""
    sandbox.state.faults.set("suppliers.list", error_rate=1.0, error_status=503, times=2)
    assert await client.list_reference("suppliers", COMPANY_ID) == []
    sandbox.state.faults.set("tenant", error_rate=1.0, error_status=0, times=1)
    assert (await client.tenant())["Id"] == TENANT_ID
    assert client.stats.retries == 3


@pytest.mark.parametrize("mode", ["500", "drop"])
async def test_commit_then_fail_on_a_write_is_outcome_unknown(
    client: IcompleatClient, sandbox: SandboxServer, mode: str,
) -> None:
    """The write was applied but the answer lost: OutcomeUnknown, one request, a read settles."""
    await client.post_reference("taxcodes", COMPANY_ID, [{"Code": "V", "Name": "Vat",
                                                          "Rate": 20}])
    sandbox.state.faults.set("taxcodes.edit", commit_then_fail=mode)
    with pytest.raises(errors.OutcomeUnknown):
        await client.edit_reference("taxcodes", COMPANY_ID, "V", {"Code": "V", "Name": "VAT",
                                                                  "Rate": 20})
    assert await logged(sandbox, "taxcodes.edit", 1) == 1
    assert (await client.list_reference("taxcodes", COMPANY_ID))[0]["Name"] == "VAT"


async def test_a_hung_write_ends_at_the_deadline_as_outcome_unknown(
    sandbox: SandboxServer,
) -> None:
    """A write that never gets an answer ends after timeout_seconds, sent once."""
    sandbox.state.faults.set("transaction.create", hang=True)
    limits = ClientLimits(0, 4, timeout_seconds=0.3, max_attempts=3, backoff_seconds=0.01)
    async with client_for(sandbox, limits) as client:
        started = time.monotonic()
        with pytest.raises(errors.OutcomeUnknown):
            await client.create_transaction(COMPANY_ID, {"Type": "INV"})
        assert time.monotonic() - started < 3
    sandbox.state.faults.clear()
    assert await logged(sandbox, "transaction.create", 1) == 1
    assert sandbox.state.all_transactions(TENANT_ID) == []


async def test_a_slow_read_times_out_and_is_retried(sandbox: SandboxServer) -> None:
    """A read slower than the deadline is a TransportError after max_attempts tries."""
    sandbox.state.faults.set("companies", latency=1.0)
    limits = ClientLimits(0, 4, timeout_seconds=0.2, max_attempts=2, backoff_seconds=0.01)
    async with client_for(sandbox, limits) as client:
        with pytest.raises(errors.TransportError):
            await client.companies()
        assert client.stats.reads == 2


async def test_concurrent_calls_through_the_shared_limit(sandbox: SandboxServer) -> None:
    """Many concurrent reads under a concurrency cap all complete over real HTTP."""
    limits = ClientLimits(0, 2, timeout_seconds=5, max_attempts=2)
    async with client_for(sandbox, limits) as client:
        results = await asyncio.wait_for(
            asyncio.gather(*(client.companies() for _ in range(10))), timeout=20)
    assert all(r == results[0] for r in results)
    assert await logged(sandbox, "companies", 10) == 10
    assert sandbox.state.log.count("companies", 200) == 10


async def test_the_fixture_key_never_leaks_over_loopback(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Calls and failures over real HTTP leave the key in no log, error or repr."""
    caplog.set_level("DEBUG")
    texts: list[str] = []
    sandbox.state.faults.set("suppliers.post", commit_then_fail="drop")
    async with client_for(sandbox) as client:
        texts.append(repr(client))
        await client.companies()
        with pytest.raises(errors.OutcomeUnknown) as unknown:
            await client.post_reference("suppliers", COMPANY_ID, [{"Code": "A", "Name": "a"}])
        sandbox.state.rotate_key(TENANT_ID, "rotated-key-value")
        with pytest.raises(errors.AuthRejected) as auth:
            await client.tenant()
    for exc in (unknown.value, auth.value):
        texts += [str(exc), repr(exc), repr(exc.__cause__)]
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    assert [t for t in texts if CANARY_KEY in t] == []
