"""Every error path of the client over httpx.MockTransport: what is retried, what is final."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from connectors.icompleat.client import CallRecord, IcompleatClient
from sync.foundation import errors
from tests.connectors.icompleat.support import (
    FAST,
    ORIGIN,
    FakeClock,
    Script,
    fresh_tenant,
    make_client,
    ok,
)

WRITE_CALLS = {
    "post_reference": lambda c: c.post_reference("suppliers", "C1", [{"Code": "A"}]),
    "edit_reference": lambda c: c.edit_reference("taxcodes", "C1", "T1", {"Code": "T1"}),
    "delete_reference": lambda c: c.delete_reference("accountcodes", "C1", "4000"),
    "approve": lambda c: c.approve("tx-1"),
    "record_journal": lambda c: c.record_journal("tx-1", "J-1"),
    "post_custom_field_values": lambda c: c.post_custom_field_values("C1", "cf", []),
}
NO_ANSWER = {
    "read timeout": httpx.ReadTimeout("slow"),
    "reset": httpx.ReadError("connection reset by peer"),
    "closed": httpx.RemoteProtocolError("Server disconnected without sending a response."),
}


async def test_401_is_final_and_names_the_origin_not_the_key() -> None:
    """A 401 raises AuthRejected at once (one request), naming the key's origin only."""
    script = Script(httpx.Response(401))
    client = make_client(script, key="canary-401-key-value")
    with pytest.raises(errors.AuthRejected) as caught:
        await client.tenant()
    assert len(script.requests) == 1
    assert ORIGIN in str(caught.value)
    assert "canary-401-key-value" not in str(caught.value)
    assert caught.value.exit_code == errors.ExitCode.AUTH


async def test_429_waits_for_retry_after_before_the_next_request() -> None:
    """After a 429 with Retry-After 7, no request is sent before 7 s have passed."""
    clock = FakeClock()
    script = Script(ok(status=429, headers={"Retry-After": "7"}), ok({"Companies": [{"Id": "C"}]}),
                    clock=clock)
    client = make_client(script, clock=clock)
    assert await client.companies() == [{"Id": "C"}]
    assert len(script.times) == 2
    assert script.times[1] - script.times[0] >= 7
    assert client.stats.throttled == 1
    assert client.stats.retries == 1


async def test_retry_after_pauses_every_client_of_the_same_credentials() -> None:
    """A 429 seen by one client holds back another client sharing the key and tenant."""
    clock, tenant = FakeClock(), fresh_tenant()
    script = Script(ok(status=429, headers={"Retry-After": "12"}), ok({"Companies": []}),
                    clock=clock)
    first = make_client(script, clock=clock, key="shared-key-1", tenant=tenant,
                        limits=replace(FAST, max_attempts=1))
    second = make_client(script, clock=clock, key="shared-key-1", tenant=tenant)
    assert first.limiter is second.limiter
    with pytest.raises(errors.Throttled):
        await first.companies()
    await second.companies()
    assert script.times[1] - script.times[0] >= 12


@pytest.mark.parametrize("status", [200, 500])
async def test_body_only_429_is_throttled_and_retried_even_for_a_write(status: int) -> None:
    """A 200 or 500 whose body says statusCode 429 is throttling: the write is retried."""
    clock = FakeClock()
    body = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 2 seconds."}
    script = Script(httpx.Response(status, json=body), ok({"ContinuationToken": "tok"}),
                    clock=clock)
    client = make_client(script, clock=clock)
    assert await client.post_reference("suppliers", "C1", [{"Code": "A"}]) == "tok"
    assert len(script.requests) == 2
    assert script.times[1] - script.times[0] >= 2


async def test_throttling_past_max_backoff_gives_up_without_sending_again() -> None:
    """A Retry-After longer than max_backoff ends the call, and later calls are not sent."""
    clock = FakeClock()
    script = Script(ok(status=429, headers={"Retry-After": "600"}), clock=clock)
    client = make_client(script, clock=clock)
    with pytest.raises(errors.Throttled) as first:
        await client.companies()
    assert first.value.retry_after == 600
    with pytest.raises(errors.Throttled, match="not sent"):
        await client.tenant()
    assert len(script.requests) == 1


async def test_throttled_to_the_end_raises_throttled_after_max_attempts() -> None:
    """Throttling that never stops ends after max_attempts requests."""
    script = Script(ok(status=429))
    client = make_client(script)
    with pytest.raises(errors.Throttled):
        await client.companies()
    assert len(script.requests) == FAST.max_attempts


async def test_5xx_on_read_is_retried_with_bounded_jittered_backoff() -> None:
    """A read failing with 503 is tried max_attempts times, backing off, then ServerError."""
    clock = FakeClock()
    script = Script(httpx.Response(503, text="<html>down</html>"), clock=clock)
    client = make_client(script, clock=clock)
    with pytest.raises(errors.ServerError) as caught:
        await client.list_reference("suppliers", "C1")
    assert len(script.requests) == FAST.max_attempts
    assert caught.value.status == 503
    bases = [FAST.backoff_seconds * 2 ** i for i in range(FAST.max_attempts - 1)]
    assert all(b / 2 <= s <= b for s, b in zip(clock.sleeps, bases, strict=True))


async def test_5xx_then_success_on_read_returns_the_data() -> None:
    """One 500 on a page read is retried and the data comes back."""
    script = Script(httpx.Response(500), ok({"Suppliers": []}))
    client = make_client(script)
    assert await client.list_reference("suppliers", "C1") == []
    assert client.stats.retries == 1


@pytest.mark.parametrize("call", sorted(WRITE_CALLS))
async def test_write_5xx_is_outcome_unknown_after_one_request(call: str) -> None:
    """A write answered 500 may have been applied: OutcomeUnknown, never resent."""
    script = Script(httpx.Response(500))
    client = make_client(script)
    with pytest.raises(errors.OutcomeUnknown, match="Read the record back"):
        await WRITE_CALLS[call](client)
    assert len(script.requests) == 1


@pytest.mark.parametrize("failure", sorted(NO_ANSWER))
async def test_write_without_answer_is_outcome_unknown_after_one_request(failure: str) -> None:
    """A write that timed out or lost its connection is OutcomeUnknown, sent once."""
    script = Script(NO_ANSWER[failure])
    client = make_client(script)
    with pytest.raises(errors.OutcomeUnknown) as caught:
        await client.post_reference("suppliers", "C1", [{"Code": "A"}])
    assert len(script.requests) == 1
    assert caught.value.__cause__ is NO_ANSWER[failure]


async def test_write_past_the_deadline_is_outcome_unknown() -> None:
    """A write whose answer never comes ends at timeout_seconds as OutcomeUnknown."""
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return ok()

    script = Script(hang)
    client = make_client(script, limits=replace(FAST, timeout_seconds=0.05))
    with pytest.raises(errors.OutcomeUnknown, match="timeout"):
        await client.edit_transaction("tx-1", {"Title": "x"})
    assert len(script.requests) == 1


async def test_connect_error_on_write_is_retried_because_nothing_was_sent() -> None:
    """ConnectError and ConnectTimeout never reached the server: the write is sent again."""
    script = Script(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"),
                    ok({"ContinuationToken": "t1"}))
    client = make_client(script)
    assert await client.post_reference("suppliers", "C1", [{"Code": "A"}]) == "t1"
    assert len(script.requests) == 3


async def test_transport_failure_on_read_is_retried_then_transport_error() -> None:
    """A read that keeps timing out ends as TransportError after max_attempts."""
    script = Script(httpx.ReadTimeout("slow"))
    client = make_client(script)
    with pytest.raises(errors.TransportError) as caught:
        await client.transaction("tx-1")
    assert len(script.requests) == FAST.max_attempts
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize(("code", "cls"), [(2, errors.UnknownCompany),
                                           (11, errors.UnknownRecord),
                                           (12, errors.ValidationFailed),
                                           (20, errors.BadContinuationToken)])
async def test_400_maps_to_its_class_and_is_not_retried(code: int, cls: type) -> None:
    """A 400 raises the class of its ErrorCode after one request, naming the record."""
    script = Script(httpx.Response(400, json={"ErrorCode": code, "Message": "field 'Name' bad"}))
    client = make_client(script)
    with pytest.raises(cls) as caught:
        await client.edit_reference("suppliers", "C1", "S-9", {"Code": "S-9"})
    assert len(script.requests) == 1
    assert "'S-9'" in str(caught.value)


async def test_unexpected_status_is_final() -> None:
    """A 404 (a wrong route override, say) is not retried and points at the routes."""
    script = Script(httpx.Response(404))
    client = make_client(script)
    with pytest.raises(errors.ApiError, match=r"icompleat\.routes"):
        await client.custom_fields("C1")
    assert len(script.requests) == 1


async def test_garbage_body_is_retried_on_read_and_unknown_on_write() -> None:
    """A 200 that is not JSON is a server fault on a read and unknown outcome on a write."""
    script = Script(httpx.Response(200, text="<html/>"), ok({"CustomFields": [{"Id": "1"}]}))
    assert await make_client(script).custom_fields("C1") == [{"Id": "1"}]
    write = Script(httpx.Response(200, text="<html/>"))
    with pytest.raises(errors.OutcomeUnknown):
        await make_client(write).create_custom_fields("C1", [{"Name": "P"}])
    assert len(write.requests) == 1


async def test_every_request_is_reported_and_counted() -> None:
    """on_call sees each attempt with its outcome; stats count them per route and status."""
    seen: list[CallRecord] = []
    script = Script(ok(status=429), httpx.Response(500), ok({"Companies": []}))
    client = make_client(script, on_call=seen.append)
    await client.companies()
    assert [(c.outcome, c.status, c.attempt) for c in seen] == [
        ("throttled", 429, 1), ("error", 500, 2), ("ok", 200, 3)]
    snap = client.stats.snapshot()
    assert snap["reads"] == 3
    assert snap["retries"] == 2
    assert snap["throttled"] == 1
    assert snap["by_route"] == {"companies": {"200": 1, "429": 1, "500": 1}}


async def test_a_failing_on_call_hook_does_not_fail_the_call() -> None:
    """An exception in the metrics hook is logged, not raised."""
    def broken(call: CallRecord) -> None:
        raise RuntimeError("hook")

    client = make_client(Script(ok({"Companies": []})), on_call=broken)
    assert await client.companies() == []


async def test_a_value_that_is_not_json_is_refused_before_sending() -> None:
    """A record holding a non-JSON value fails naming the route, with nothing sent."""
    script = Script(ok())
    client: IcompleatClient = make_client(script)
    with pytest.raises(errors.ApiError, match=r"suppliers\.edit"):
        await client.edit_reference("suppliers", "C1", "A", {"Code": "A", "Rate": float("nan")})
    assert script.requests == []
