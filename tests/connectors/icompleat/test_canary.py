"""A canary key driven through every kind of call and failure never leaks anywhere."""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Awaitable

import httpx
import pytest
import structlog

from sync.foundation import errors, logs
from tests.connectors.icompleat.support import ORIGIN, Script, make_client, ok, unique_key


async def test_canary_key_never_reaches_logs_errors_reprs_or_urls(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    """Success, 400, 401, 429, 5xx and transport failures leave no trace of the key."""
    canary = unique_key()
    script = Script(
        ok({"Companies": []}), ok(status=429, headers={"Retry-After": "1"}), ok({"Suppliers": []}),
        httpx.Response(400, json={"ErrorCode": 12, "Message": "field 'Name' bad"}),
        httpx.Response(500), httpx.ReadTimeout("slow"), httpx.ConnectError("refused"),
        ok({"ContinuationToken": "t"}), httpx.Response(401))
    stream = io.StringIO()
    logs.configure(fmt="json", level="debug", stream=stream)
    caplog.set_level(logging.DEBUG)
    client = make_client(script, key=canary)
    texts: list[str] = [repr(client), str(client)]
    try:
        with structlog.testing.capture_logs() as raw_events:
            await client.companies()
            await client.list_reference("suppliers", "C1")
            failing: list[Awaitable[object]] = [
                client.edit_reference("suppliers", "C1", "A", {"Code": "A"}),
                client.approve("tx"), client.record_journal("tx", "J1")]
            for call in failing:
                with pytest.raises(errors.ApiError) as caught:
                    await call
                texts += [str(caught.value), repr(caught.value),
                          "".join(traceback.format_exception(caught.value))]
            assert await client.post_reference("suppliers", "C1", []) == "t"
            with pytest.raises(errors.AuthRejected) as auth:
                await client.tenant()
            texts += [str(auth.value), "".join(traceback.format_exception(auth.value))]
        texts += [repr(client.limiter.snapshot()), repr(client.stats), repr(client.limits)]
    finally:
        structlog.reset_defaults()
        await client.aclose()
    captured = capsys.readouterr()
    texts += [stream.getvalue(), caplog.text, captured.out, captured.err, repr(raw_events)]
    texts += [str(r.url) for r in script.requests]
    assert all(r.headers["x-api-compleat-key"] == canary for r in script.requests)
    assert raw_events, "the client logged nothing: the canary check would prove nothing"
    assert ORIGIN in str(auth.value)
    assert [t for t in texts if canary in t] == []
