"""iCompleat's answers read as data: the envelope, its payloads, and failures as
sync.foundation.errors.

Every success body is a JSON object with one named payload beside ``MetaData`` (the tenant object
is not wrapped); values may be omitted or null. Failures are mapped here, in one place, to the
exception tree of :mod:`sync.foundation.errors`: 401 -> AuthRejected, 429 or a body saying
``"statusCode": 429`` -> Throttled, 400 -> the BadRequest subclass of its ErrorCode, 5xx ->
ServerError on a read and OutcomeUnknown on a write, no answer -> TransportError or, for a write
that may have reached the server, OutcomeUnknown. Pure functions: no IO, no clock but an argument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors.icompleat.routes import (
    CONTINUATION_TOKEN,
    ERROR_CODE,
    ERROR_MESSAGE,
    METADATA,
    Route,
)
from sync.foundation import numbers
from sync.foundation.errors import (
    BAD_REQUEST_BY_CODE,
    ApiError,
    AuthRejected,
    BadRequest,
    OutcomeUnknown,
    ServerError,
    Throttled,
    TransportError,
    Unsupported,
)
from sync.foundation.secrets import REDACTOR

# Failures that happen before a byte of the request reached the server: safe to repeat a write.
NOT_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout,
                                         httpx.PoolTimeout)

_ADVICE: dict[int, str] = {
    2: "check the company id against iCompleat's API page",
    3: "check the user id",
    10: "the transaction does not exist; check its id",
    11: "the record is not in iCompleat; read the list again and re-plan",
    12: "correct the field the message names in the source record",
    20: "the continuation token is unknown or expired; send the complete set again",
    21: "the custom field does not exist; read the custom fields again",
}
_TRY_AGAIN_IN = re.compile(r"try again in (\d+(?:\.\d+)?) seconds?", re.I)


def field(body: Any, name: str | None) -> Any:
    """``body[name]`` matching the name exactly, else case-insensitively; None when absent."""
    if name is None or not isinstance(body, Mapping):
        return None
    if name in body:
        return body[name]
    folded = name.casefold()
    return next((v for k, v in body.items() if str(k).casefold() == folded), None)


def malformed(route: Route, subject: str, detail: str) -> ApiError:
    """The error for a 2xx body that is not what ``route`` promises (a write: outcome unknown)."""
    if route.is_write:
        return OutcomeUnknown(f"{route.name} ({subject}): the write was answered but {detail}; "
                              "read the record back to see whether it was applied",
                              route=route.name, status=200)
    return ServerError(f"{route.name} ({subject}): {detail}; the service answered with a body "
                       "outside the contract", route=route.name, status=200)


def decode(content: bytes) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON body (an empty body is None), ``(False, None)`` otherwise."""
    if not content.strip():
        return True, None
    try:
        return True, numbers.loads(content)
    except (ValueError, RecursionError):
        return False, None


def throttled_in_body(body: Any) -> bool:
    """True when a body says ``"statusCode": 429`` (API-management throttling in a 200 or 500)."""
    value = field(body, "statusCode")
    return value is not None and str(value).strip() == "429"


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta seconds or HTTP date); None if unusable."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now or datetime.now(UTC))
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _retry_hint(headers: Mapping[str, str], body: Any) -> float | None:
    hint = retry_after(headers.get("retry-after"))
    if hint is None:
        found = _TRY_AGAIN_IN.search(str(field(body, "message") or ""))
        hint = float(found.group(1)) if found else None
    return hint


def answer_error(
    route: Route, status: int, headers: Mapping[str, str], body: Any, *, origin: str,
    subject: str,
) -> ApiError | None:
    """The error an answer stands for, or None for a success; ``origin`` names the key's source."""
    if status == 401:
        return AuthRejected(
            f"{route.name} ({subject}): iCompleat refused the security key from {origin} or the "
            f"tenant id (HTTP 401). Check the tenant id and the key on iCompleat's API page; if "
            f"the key was regenerated, put the new one in {origin}. Not retried.",
            route=route.name, status=status)
    if status == 429 or throttled_in_body(body):
        return _throttled(route, status, headers, body, subject)
    if 200 <= status < 300:
        return None
    if status == 400:
        return bad_request(route, body, subject)
    if status >= 500:
        return _server_failure(route, status, subject)
    if status in (404, 405):
        return Unsupported(f"{route.name} ({subject}): HTTP {status}: this iCompleat tenant has "
                           f"no such call ({route.method} {route.path}); icsync falls back where "
                           "it can; otherwise check base_url and any [icompleat.routes."
                           f"\"{route.name}\"] override", route=route.name, status=status)
    return ApiError(f"{route.name} ({subject}): HTTP {status} is not part of the contract; "
                    f"check base_url and any [icompleat.routes.\"{route.name}\"] override",
                    route=route.name, status=status)


def _throttled(
    route: Route, status: int, headers: Mapping[str, str], body: Any, subject: str,
) -> Throttled:
    wait = _retry_hint(headers, body)
    after = f"retry after {wait:g} s" if wait is not None else "no Retry-After given"
    return Throttled(f"{route.name} ({subject}): iCompleat is throttling (HTTP {status}, "
                     f"{after}); lower icompleat.requests_per_minute if this persists",
                     route=route.name, status=status, retry_after=wait)


def _server_failure(route: Route, status: int, subject: str) -> ApiError:
    if route.is_write:
        return OutcomeUnknown(f"{route.name} ({subject}): HTTP {status} after the write was "
                              "sent; it may or may not have been applied. Read the record back "
                              "to settle it before any retry.", route=route.name, status=status)
    return ServerError(f"{route.name} ({subject}): iCompleat failed with HTTP {status}",
                       route=route.name, status=status)


def bad_request(route: Route, body: Any, subject: str) -> BadRequest:
    """HTTP 400 as the BadRequest subclass of its ErrorCode, with iCompleat's message."""
    code = _as_int(field(body, ERROR_CODE))
    api_message = REDACTOR(str(field(body, ERROR_MESSAGE) or ""))
    cls = BAD_REQUEST_BY_CODE.get(code, BadRequest) if code is not None else BadRequest
    advice = _ADVICE.get(code or 0, "check the request against the iCompleat contract")
    return cls(f"{route.name} ({subject}): iCompleat refused it (HTTP 400, ErrorCode {code}): "
               f"{api_message or 'no message'}; {advice}", route=route.name,
               error_code=code, api_message=api_message)


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def transport_failure(route: Route, exc: BaseException, subject: str) -> ApiError:
    """No answer: TransportError when nothing was applied for sure, else OutcomeUnknown."""
    what = _describe(exc)
    if route.is_write and not isinstance(exc, NOT_SENT):
        return OutcomeUnknown(f"{route.name} ({subject}): {what} after the write was sent; it "
                              "may or may not have been applied. Read the record back to "
                              "settle it before any retry.", route=route.name)
    sent = " (the request was not sent)" if route.is_write else ""
    return TransportError(f"{route.name} ({subject}): {what}{sent}; check base_url and the "
                          "network", route=route.name)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return "could not connect in time"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "no answer within the timeout"
    return f"the connection failed ({type(exc).__name__})"


def without_metadata(route: Route, body: Any, subject: str) -> dict[str, Any]:
    """An unwrapped object (the tenant) with ``MetaData`` removed."""
    if not isinstance(body, Mapping):
        raise malformed(route, subject, "the body is not a JSON object")
    return {str(k): v for k, v in body.items() if str(k).casefold() != METADATA.casefold()}


def records(route: Route, body: Any, subject: str) -> list[dict[str, Any]]:
    """The list payload of ``route`` (absent or null -> []); every item must be an object."""
    value = field(body, route.response_payload)
    if value is None:
        if not isinstance(body, Mapping):
            raise malformed(route, subject, "the body is not a JSON object")
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise malformed(route, subject, f"{route.response_payload} is not a list of objects")
    return [dict(v) for v in value]


def record(route: Route, body: Any, subject: str) -> dict[str, Any]:
    """The object payload of ``route``; a body without it is taken as the object itself."""
    value = field(body, route.response_payload)
    if value is None:
        return without_metadata(route, body, subject)
    if not isinstance(value, Mapping):
        raise malformed(route, subject, f"{route.response_payload} is not an object")
    return dict(value)


def continuation_token(route: Route, body: Any, subject: str) -> str:
    """The ``ContinuationToken`` of a refresh/append answer ("" when absent or null)."""
    value = field(body, CONTINUATION_TOKEN)
    if value is not None and not isinstance(value, str):
        raise malformed(route, subject, f"{CONTINUATION_TOKEN} is not a string")
    if value is None and not isinstance(body, Mapping):
        raise malformed(route, subject, "the body is not a JSON object")
    return value or ""


def nothing(route: Route, body: Any, subject: str) -> None:
    """For calls whose answer carries nothing the caller needs (delete)."""
    return None


def list_body(route: Route, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"<request payload>": [...]}``; the payload name comes from the route."""
    if route.request_payload is None:
        raise ValueError(f"route {route.name} has no request payload name")
    return {route.request_payload: [dict(i) for i in items]}


def chunk_body(route: Route, items: Sequence[Mapping[str, Any]], token: str) -> dict[str, Any]:
    """A refresh/append chunk: the list payload plus the ``ContinuationToken`` ("" = new set)."""
    return {**list_body(route, items), CONTINUATION_TOKEN: token}
