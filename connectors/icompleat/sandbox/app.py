"""The sandbox as an ASGI application: the API of the routes table plus the admin API.

Requests are matched with ``RouteTable.resolve`` on the RAW path (``scope["raw_path"]``), so a
``%2F`` inside a code stays in its segment, and ``NULL``/``null`` and ``//api/...`` are accepted
as the real service accepts them. For each API request, in order: match (404), credentials (401
for an unknown tenant or a missing or wrong key), ``x-api-version`` (400, ErrorCode 1), the fault
switches (latency, hang, throttling, error), the handler (400 with ErrorCode and Message), then
commit-then-fail and the 'list changed while paged' switch. Paths under ``/_sandbox/`` go to the
admin API. No header value (so no key) is ever logged. Every answer to a request that matched a
route carries ``x-sandbox-segments``: the path parameters as decoded (ASCII JSON), which shows
that a code such as ``..`` arrived as one segment of the route it was sent to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.icompleat.routes import API_VERSION, ROUTES, Route, RouteTable
from connectors.icompleat.sandbox.api import Call, handle, reference_list_api
from connectors.icompleat.sandbox.contract import bind_keys, vocabulary
from connectors.icompleat.sandbox.faults import DROP, Decision
from connectors.icompleat.sandbox.state import SandboxState
from connectors.icompleat.sandbox.webhooks import Pusher
from connectors.icompleat.sandbox.wire import (
    BAD_REQUEST,
    THROTTLE_MESSAGE_FIELD,
    THROTTLE_STATUS_FIELD,
    UNAUTHORISED_MESSAGE,
    VALIDATION_FAILED,
    Record,
    envelope,
    error_body,
    reject,
)
from sync.foundation.errors import BadRequest

ADMIN_PREFIX = "/_sandbox/"
MAX_BODY_BYTES = 16 * 1024 * 1024
HANG_POLL_SECONDS = 0.05


# Every API answer carries the path parameters as the sandbox decoded them.
SEGMENTS_HEADER = "x-sandbox-segments"
NO_ANSWER = 0  # a Reply status: close the connection without an answer
SERVER_ERROR: Record = {"Message": "An error has occurred."}


@dataclass(frozen=True)
class Reply:
    """What the API answers to one request (status NO_ANSWER: drop the connection)."""

    status: int
    body: Record | None = None
    headers: dict[str, str] | None = None
    fault: str = ""


def echo_segments(params: Mapping[str, str | None]) -> str:
    """The decoded path parameters as ASCII JSON: the proof that each arrived as one segment."""
    return json.dumps(params, ensure_ascii=True, sort_keys=True)


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


async def drop_connection(send: Send) -> None:
    """Reset the client's connection without an answer (RST where the server allows it).

    uvicorn's ``send`` is a method of its request cycle, which holds the transport; aborting it
    is what a crashed or unreachable server looks like to the client.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # another server: start an answer and never finish it
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100")]})
        return
    if not transport.is_closing():  # else the client is gone already
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    for _ in range(10):  # let connection_lost mark the cycle disconnected
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)


class SandboxApp:
    """The ASGI callable uvicorn serves."""

    def __init__(self, state: SandboxState, pusher: Pusher, admin: ASGIApp,
                 routes: RouteTable = ROUTES) -> None:
        self.state = state
        self.pusher = pusher
        self.admin = admin
        self.routes = routes
        self.names = vocabulary(routes.values())
        self.stopping = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
            if raw.startswith(ADMIN_PREFIX) or raw == ADMIN_PREFIX.rstrip("/"):
                await self.admin(scope, receive, send)
            else:
                await self._api(scope, receive, send, raw)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pusher.bind(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pusher.bind(None)
                await self.pusher.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _api(self, scope: Scope, receive: Receive, send: Send, raw: str) -> None:
        arrived = self.state.now()
        request = Request(scope, receive)
        found = self.routes.resolve(request.method, raw)
        reply = await self._serve(request, *found) if found else self._not_found(request, raw)
        # Logged BEFORE the answer leaves: whoever has an answer finds its request in the log.
        self.state.log.add(self.state.now(), request.method, raw,
                           found[0].name if found else "?", reply.status, reply.fault, arrived)
        if reply.status == NO_ANSWER:
            await drop_connection(send)
        elif reply.fault == "throttle":
            # The API-management front writes `"statusCode": 429` with a space after the colon,
            # and the real client matched exactly that text.
            await Response(json.dumps(reply.body), reply.status, reply.headers,
                           media_type="application/json")(scope, receive, send)
        else:
            headers = {**(reply.headers or {}),
                       **({SEGMENTS_HEADER: echo_segments(found[1])} if found else {})}
            response = JSONResponse(reply.body, status_code=reply.status, headers=headers)
            await response(scope, receive, send)

    def _not_found(self, request: Request, raw: str) -> Reply:
        other = any(self.routes.resolve(m, raw) for m in ("GET", "POST", "PUT", "DELETE"))
        return Reply(405 if other else 404, {"Message": f"no API operation {request.method} "
                                                        f"{raw}"})

    @staticmethod
    def _url(request: Request) -> str:
        """The request URL with the path as sent (a ``%2F`` in a code stays encoded)."""
        raw = request.scope.get("raw_path") or request.url.path.encode()
        return str(request.base_url).rstrip("/") + raw.decode("latin-1")

    async def _serve(self, request: Request, route: Route,
                     params: dict[str, str | None]) -> Reply:
        for rotation in self.state.faults.arrive():
            self.state.rotate_key(rotation.tenant_id, rotation.new_key)
        tenant = self.state.tenant(params.get("tenantId"))
        presented = request.headers.get(self.routes.headers["key"])
        if tenant is None or not self.state.key_matches(tenant, presented):
            return Reply(401, {"Message": UNAUTHORISED_MESSAGE})
        if (request.headers.get(self.routes.headers["version"]) or "").strip() != API_VERSION:
            return self._bad_request(request, reject(
                BAD_REQUEST, f"header {self.routes.headers['version']} must be {API_VERSION}"))
        decision = self.state.faults.decide(route.name)
        early = await self._before(request, route, decision)
        if early is not None:
            return early
        return await self._handle(request, route, params, tenant.id, decision)

    async def _before(self, request: Request, route: Route, decision: Decision) -> Reply | None:
        """The faults that strike before the request is applied; None to go on."""
        if decision.latency > 0:
            await asyncio.sleep(decision.latency)
        if decision.hang:
            await self._hang(request, route)
            return Reply(NO_ANSWER, fault="hang")
        if decision.throttle:
            return self._throttle(decision)
        if decision.error_status == DROP:
            return Reply(NO_ANSWER, fault="drop")
        if decision.error_status is not None:
            return Reply(decision.error_status, SERVER_ERROR, fault="error")
        return None

    async def _hang(self, request: Request, route: Route) -> None:
        """Wait while the hang is armed, the client is connected and the server runs."""
        gone = asyncio.ensure_future(self._disconnected(request))
        try:
            while self.state.faults.still_hangs(route.name) and not self.stopping:
                finished, _ = await asyncio.wait({gone}, timeout=HANG_POLL_SECONDS)
                if finished:
                    break
        finally:
            gone.cancel()

    @staticmethod
    async def _disconnected(request: Request) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    @staticmethod
    def _throttle(decision: Decision) -> Reply:
        wait = decision.retry_after
        text = "Rate limit is exceeded." + (
            f" Try again in {math.ceil(wait)} seconds." if wait is not None else "")
        body = {THROTTLE_STATUS_FIELD: 429, THROTTLE_MESSAGE_FIELD: text}
        if decision.throttle_body_status is not None:
            return Reply(decision.throttle_body_status, body, fault="throttle")
        headers = {"Retry-After": _retry_after(wait)} if wait is not None else None
        return Reply(429, body, headers, fault="throttle")

    def _bad_request(self, request: Request, exc: BadRequest) -> Reply:
        return Reply(400, error_body(exc.error_code or BAD_REQUEST, exc.api_message,
                                     self._url(request), self.state.now()))

    async def _body(self, request: Request, route: Route) -> Any:
        if not route.is_write or route.method == "DELETE":
            return None
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise reject(VALIDATION_FAILED, f"field body is {len(raw)} bytes; send at most "
                                            f"{MAX_BODY_BYTES} bytes a call")
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise reject(VALIDATION_FAILED, "field body is not valid JSON; send a JSON "
                                            "object") from None
        return body if self.state.contract.strict_keys else bind_keys(body, self.names)

    async def _handle(self, request: Request, route: Route, params: dict[str, str | None],
                      tenant_id: str, decision: Decision) -> Reply:
        try:
            call = Call(route, params, await self._body(request, route), tenant_id)
            refused = self.state.contract.refusal(route, call.body)
            if refused is not None:
                return Reply(refused, {"Message": f"no API operation {request.method} "
                                                  f"{request.url.path}"}, fault="unsupported")
            payload = handle(self.state, call)
        except BadRequest as exc:
            return self._bad_request(request, exc)
        except ClientDisconnect:  # the client died before its body arrived: nothing applied
            return Reply(NO_ANSWER, fault="client-gone")
        if decision.commit_then_fail == "drop":
            return Reply(NO_ANSWER, fault="commit-then-drop")
        if decision.commit_then_fail == "500":
            return Reply(500, SERVER_ERROR, fault="commit-then-500")
        self._change_list(route, call)
        return Reply(200, envelope(payload, self._url(request), self.state.now()))

    def _change_list(self, route: Route, call: Call) -> None:
        api = reference_list_api(route)
        change = self.state.faults.take_list_change(route.name, call.page()) if api else None
        if api and change is not None:
            self.state.change_list(call.tenant_id, call.company, api, change)
