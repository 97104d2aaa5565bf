"""The request core of the iCompleat client: one session per tenant and key.

:class:`ApiSession` renders a route of the :class:`RouteTable`, sends it through the shared
:class:`Limiter` (request budget, concurrency cap, Retry-After pause) with the two contract headers,
maps the answer with :mod:`connectors.icompleat.envelope`, reports it to ``on_call`` and counts it
in :class:`CallStats`. Reads, and throttled calls of any kind (a 429 was not applied), are retried
with bounded, jittered exponential backoff that never starts before Retry-After; a 401 is final; a
write that may have reached the server without a clean answer raises OutcomeUnknown at once. The
security key goes into one header and nowhere else (not the URL, a log line, a repr or an error).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

import httpx

from connectors.icompleat import envelope
from connectors.icompleat.limiter import LIMITERS, MONOTONIC, Clock, Limiter
from connectors.icompleat.routes import API_VERSION, ROUTES, Route, RouteTable, build_routes
from sync.foundation.config import Config, is_loopback_url
from sync.foundation.errors import (
    ApiError,
    ConfigError,
    OutcomeUnknown,
    ServerError,
    Throttled,
    TransportError,
    ValidationFailed,
)
from sync.foundation.logs import get_logger
from sync.foundation.secrets import REDACTOR, Secret

T = TypeVar("T")
Outcome = Literal["ok", "error", "throttled", "unknown", "transport"]
Extract = Callable[[Route, Any, str], T]

_RETRYABLE = (Throttled, ServerError, TransportError)
LARGE_BODY_BYTES = 256 * 1024
log = get_logger(__name__)


@dataclass(frozen=True)
class ClientLimits:
    """Request budget (0 = none), concurrency, per-attempt deadline and retry policy."""

    requests_per_minute: int = 50
    max_concurrency: int = 4
    timeout_seconds: float = 30
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60


@dataclass(frozen=True)
class CallRecord:
    """One HTTP request: its route, status (None when no answer), duration and outcome."""

    route: str
    method: str
    status: int | None
    seconds: float
    attempt: int
    outcome: str  # "ok" | "error" | "throttled" | "unknown" | "transport"


@dataclass
class CallStats:
    """Requests made by one client: reads and writes sent, retries, throttled answers."""

    reads: int = 0
    writes: int = 0
    retries: int = 0
    throttled: int = 0
    by_route: Counter[tuple[str, int | None]] = field(default_factory=Counter)

    def count(self, call: CallRecord) -> None:
        """Add one request."""
        if call.method == "GET":
            self.reads += 1
        else:
            self.writes += 1
        self.throttled += call.outcome == "throttled"
        self.by_route[(call.route, call.status)] += 1

    def answers(self) -> tuple[int, int]:
        """(requests that got an HTTP answer, requests that got none: refused, timed out)."""
        answered = sum(n for (_, status), n in self.by_route.items() if status is not None)
        return answered, sum(self.by_route.values()) - answered

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-ready counts; ``by_route`` maps route -> status (or "none") -> requests."""
        by_route: dict[str, dict[str, int]] = {}
        for (route, status), n in sorted(self.by_route.items(), key=str):
            by_route.setdefault(route, {})[str(status).lower()] = n
        return {"reads": self.reads, "writes": self.writes, "retries": self.retries,
                "throttled": self.throttled, "by_route": by_route}


def check_base_url(base_url: str, *, allow_insecure_http: bool) -> str:
    """``base_url`` without a trailing slash; ConfigError for anything but https (or loopback)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("must be an http(s) URL such as https://api-eu1.compleat.online",
                          key="icompleat.base_url")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("must not carry credentials, a query or a fragment",
                          key="icompleat.base_url")
    if parts.scheme == "http" and not (allow_insecure_http or is_loopback_url(base_url)):
        raise ConfigError("http:// is refused for a non-loopback host (the key would travel in "
                          "clear); use https or set icompleat.allow_insecure_http = true",
                          key="icompleat.base_url")
    return base_url.rstrip("/")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars out of a pandas frame
        return value.item()
    raise TypeError(f"a {type(value).__name__} value")


def encode(route: Route, body: Any, subject: str) -> bytes:
    """The JSON bytes of a request body; ApiError naming the route when a value cannot be sent."""
    try:
        return json.dumps(body, default=_json_default, allow_nan=False,
                          ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise ApiError(f"{route.name} ({subject}): the body cannot be sent as JSON ({exc}); "
                       "fix the value in the source record", route=route.name) from exc


def _outcome(exc: ApiError) -> Outcome:
    if isinstance(exc, Throttled):
        return "throttled"
    if isinstance(exc, OutcomeUnknown):
        return "unknown"
    return "transport" if isinstance(exc, TransportError) else "error"


def _subject(params: Mapping[str, object]) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in params.items() if v is not None) or "tenant"


class ApiSession:
    """One tenant of the iCompleat V1 API: key, limits, routes, transport; ``_call`` sends."""

    def __init__(
        self, *, base_url: str, tenant_id: str, api_key: Secret, routes: RouteTable = ROUTES,
        limits: ClientLimits = ClientLimits(), transport: httpx.AsyncBaseTransport | None = None,
        allow_insecure_http: bool = False, on_call: Callable[[CallRecord], None] | None = None,
        clock: Clock | None = None, limiter: Limiter | None = None, user_id: str | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if not tenant_id.strip():
            raise ConfigError("is empty; copy the Tenant ID from iCompleat's API page",
                              key="icompleat.tenant_id")
        if not api_key:
            raise ConfigError(f"the security key from {api_key.origin} is empty",
                              key="icompleat.api_key")
        REDACTOR.add(api_key.reveal())
        self.tenant_id, self.routes, self.limits = tenant_id, routes, limits
        self.user_id = user_id  # sent in the user segment of the lists that carry one
        self.stats = CallStats()
        self._key, self._on_call = api_key, on_call
        self._clock = clock or MONOTONIC
        self._limiter = limiter or LIMITERS.get(
            self.base_url, tenant_id, api_key, requests_per_minute=limits.requests_per_minute,
            max_concurrency=limits.max_concurrency, clock=self._clock)
        timeout = httpx.Timeout(limits.timeout_seconds, connect=limits.timeout_seconds / 2,
                                pool=limits.timeout_seconds / 2)
        # A loopback sandbox is never reached through a proxy from the environment.
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport,
                                       timeout=timeout, follow_redirects=False,
                                       trust_env=not is_loopback_url(self.base_url))

    @classmethod
    def from_config(
        cls, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> Self:
        """A client for the ``[icompleat]`` table of ``config`` (key, limits, route overrides)."""
        ic = config.settings.icompleat
        limits = ClientLimits(ic.requests_per_minute, ic.max_concurrency, ic.timeout_seconds,
                              ic.max_attempts, ic.backoff_seconds, ic.max_backoff_seconds)
        return cls(base_url=ic.base_url, tenant_id=ic.tenant_id, api_key=config.require_api_key(),
                   routes=build_routes(ic.routes, ic.headers), limits=limits,
                   transport=transport, allow_insecure_http=ic.allow_insecure_http,
                   on_call=on_call, user_id=ic.user_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, tenant_id={self.tenant_id!r})"

    @property
    def limiter(self) -> Limiter:
        """The limiter this client shares with every client of the same credentials."""
        return self._limiter

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- the request core -------------------------------------------------------------------

    def _user(self, route: Route) -> dict[str, str | None]:
        """The user segment of ``route`` (the configured user id, or NULL), if it has one."""
        return {"userId": self.user_id} if "userId" in route.params else {}

    def _route(self, name: str, *, param: str | None = None) -> Route:
        route = self.routes.get(name)
        if route is None or (param is not None and param not in route.params):
            raise ConfigError(f"no usable route {name!r} in the routes table",
                              key=f"icompleat.routes.{name}")
        return route

    async def _call(self, name: str, extract: Extract[T], body: Any = None,
                    **params: str | int | None) -> T:
        """One operation: render, send, retry what may be retried, extract the payload."""
        route = self._route(name)
        subject = _subject(params)
        try:
            path = route.render(tenantId=self.tenant_id, **params)
        except ValueError as exc:  # never sent: nothing to settle, the record is refused
            raise ValidationFailed(f"{route.name} {subject}: {exc}", route=route.name,
                                   status=None, api_message=str(exc)) from None
        content = None if body is None else encode(route, body, subject)
        for attempt in range(1, self.limits.max_attempts):
            try:
                return await self._attempt(route, path, content, attempt, subject, extract)
            except _RETRYABLE as exc:
                await self._backoff(exc, attempt)
        return await self._attempt(route, path, content, self.limits.max_attempts, subject,
                                   extract)

    async def _backoff(self, exc: ApiError, attempt: int) -> None:
        """Sleep before the next attempt, or re-raise ``exc`` when waiting is not allowed."""
        hint = exc.retry_after if isinstance(exc, Throttled) else None
        if hint is not None and hint > self.limits.max_backoff_seconds:
            raise exc
        base = min(self.limits.max_backoff_seconds,
                   self.limits.backoff_seconds * 2 ** (attempt - 1))
        delay = max(base * random.uniform(0.5, 1.0), hint or 0.0)
        self.stats.retries += 1
        log.info("icompleat.retry", route=exc.route, status=exc.status, attempt=attempt,
                 delay=round(delay, 3), error=type(exc).__name__)
        await self._clock.sleep(delay)

    async def _attempt(self, route: Route, path: str, content: bytes | None, attempt: int,
                       subject: str, extract: Extract[T]) -> T:
        self._refuse_long_pause(route, subject)
        async with self._limiter.slot():
            started = self._clock.now()
            try:
                async with asyncio.timeout(self.limits.timeout_seconds):
                    response = await self._http.request(
                        route.method, path, content=content, headers=self._headers(route))
            except (httpx.TransportError, TimeoutError) as exc:
                error = envelope.transport_failure(route, exc, subject)
                self._report(route, None, started, attempt, _outcome(error))
                raise error from exc
        # A large body is parsed off the event loop: /healthz and the other jobs go on meanwhile.
        decoded = (await asyncio.to_thread(envelope.decode, response.content)
                   if len(response.content) > LARGE_BODY_BYTES else None)
        return self._answer(route, response, started, attempt, subject, extract, decoded)

    def _answer(self, route: Route, response: httpx.Response, started: float, attempt: int,
                subject: str, extract: Extract[T],
                decoded: tuple[bool, Any] | None = None) -> T:
        try:
            ok, body = decoded or envelope.decode(response.content)
            error = envelope.answer_error(route, response.status_code, response.headers, body,
                                          origin=self._key.origin, subject=subject)
            if error is not None:
                raise error
            if not ok:
                raise envelope.malformed(route, subject, "the body is not JSON")
            result = extract(route, body, subject)
        except ApiError as exc:
            self._report(route, response.status_code, started, attempt, _outcome(exc))
            if isinstance(exc, Throttled) and exc.retry_after is not None:
                self._limiter.pause(exc.retry_after)
            raise
        self._report(route, response.status_code, started, attempt, "ok")
        return result

    def _refuse_long_pause(self, route: Route, subject: str) -> None:
        wait = self._limiter.paused_for()
        if wait > self.limits.max_backoff_seconds:
            raise Throttled(f"{route.name} ({subject}): iCompleat asked every caller to wait "
                            f"{wait:.0f} s more, past icompleat.max_backoff_seconds; not sent, "
                            "run again later", route=route.name, status=None, retry_after=wait)

    def _headers(self, route: Route) -> dict[str, str]:
        names = self.routes.headers
        headers = {names["version"]: API_VERSION, names["key"]: self._key.reveal(),
                   "Accept": "application/json"}
        if route.is_write:
            headers["Content-Type"] = "application/json"
        return headers

    def _report(self, route: Route, status: int | None, started: float, attempt: int,
                outcome: Outcome) -> None:
        call = CallRecord(route.name, route.method, status,
                          round(self._clock.now() - started, 6), attempt, outcome)
        self.stats.count(call)
        log.debug("icompleat.call", route=call.route, status=status, seconds=call.seconds,
                  attempt=attempt, outcome=outcome)
        if self._on_call is not None:
            try:
                self._on_call(call)
            except Exception as exc:  # a metrics hook must not fail the call it reports
                log.warning("icompleat.on_call_failed", route=call.route,
                            error=type(exc).__name__)

