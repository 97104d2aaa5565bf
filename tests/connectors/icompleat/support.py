"""Test doubles for the client: a fake clock, a scripted MockTransport and a tiny fake API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from connectors.icompleat.client import ClientLimits, IcompleatClient
from connectors.icompleat.routes import ROUTES
from sync.foundation.secrets import Secret

BASE_URL = "https://icompleat.test"
ORIGIN = "file /etc/icsync/icompleat.key"
FAST = ClientLimits(requests_per_minute=0, max_concurrency=4, timeout_seconds=5,
                    max_attempts=4, backoff_seconds=1.0, max_backoff_seconds=30)
META = {"MetaData": {"RequestUrl": "https://x/api", "Version": 1,
                     "DateCreated": "2018-08-08T11:43:01.5753381Z"}}

Answer = httpx.Response | Exception | Callable[[httpx.Request], Any]


class FakeClock:
    """Monotonic time that only moves when someone sleeps; concurrent sleeps overlap."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        target = self.t + max(0.0, seconds)
        await asyncio.sleep(0)
        self.t = max(self.t, target)


class Script:
    """A MockTransport handler giving scripted answers in order (the last one repeats)."""

    def __init__(self, *answers: Answer, clock: FakeClock | None = None) -> None:
        self.answers = list(answers)
        self.clock = clock
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(self.clock.now() if self.clock else 0.0)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            answer = answer(request)
            if asyncio.iscoroutine(answer):
                answer = await answer
        return answer

    def bodies(self) -> list[Any]:
        """The JSON body of every request (None when empty)."""
        return [json.loads(r.content) if r.content else None for r in self.requests]

    def routes(self) -> list[str]:
        """The route name of every request, resolved through the routes table."""
        names = []
        for r in self.requests:
            found = ROUTES.resolve(r.method, r.url.raw_path.decode())
            names.append(found[0].name if found else f"?{r.method} {r.url.path}")
        return names


def ok(payload: dict[str, Any] | None = None, status: int = 200,
       headers: dict[str, str] | None = None) -> httpx.Response:
    """A JSON answer wrapped with MetaData."""
    return httpx.Response(status, json={**(payload or {}), **META}, headers=headers)


def fresh_tenant() -> str:
    """A tenant id no other test uses, so its shared limiter starts empty."""
    return f"T-{uuid.uuid4().hex[:8]}"


def unique_key() -> str:
    return f"canary-{uuid.uuid4().hex}"


def make_client(
    handler: Callable[[httpx.Request], Any], *, clock: FakeClock | None = None,
    limits: ClientLimits = FAST, key: str | None = None, tenant: str | None = None,
    **kwargs: Any,
) -> IcompleatClient:
    """A client over a MockTransport with a fresh tenant (so a fresh shared limiter)."""
    return IcompleatClient(
        base_url=BASE_URL, tenant_id=tenant or fresh_tenant(),
        api_key=Secret(key or unique_key(), origin=ORIGIN), limits=limits,
        transport=httpx.MockTransport(handler), clock=clock or FakeClock(), **kwargs)
