"""The iCompleat contract as data: one table of routes read by the client and the sandbox.

Each :class:`Route` names an operation, its HTTP method, its path template (every parameter is a
path segment, V1 style), the payload names of its request and response bodies, its page size and
which segments may be ``NULL``. Nothing else in the code spells a path or a payload name.

A user overrides any entry from configuration (``[icompleat.routes."suppliers.list"]`` with
``path = "..."`` and so on) through :func:`build_routes`, without touching code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote

from sync.foundation.entities import KINDS_LIST, WRITE_CHUNK_SIZE
from sync.foundation.errors import ConfigError

NULL = "NULL"
REFERENCE_PAGE_SIZE = 100
TRANSACTION_PAGE_SIZE = 20

DOCUMENTED, SEEN, ASSUMED = "documented", "seen", "assumed"

_SEGMENT = re.compile(r"\{([A-Za-z]+)\}")


@dataclass(frozen=True)
class Route:
    """One operation of the iCompleat API."""

    name: str
    method: str
    path: str
    response_payload: str | None = None
    request_payload: str | None = None
    page_size: int | None = None
    nullable: frozenset[str] = field(default_factory=frozenset)
    # Where the route comes from: "documented" (iCompleat's reference pages), "seen" (a public
    # client used it against the real service) or "assumed" (Part B: our guess); ``note`` says
    # what exactly is assumed. ``icsync check --live`` and the README report both.
    basis: str = ASSUMED
    note: str = ""

    @property
    def params(self) -> tuple[str, ...]:
        """The path parameters in template order."""
        return tuple(_SEGMENT.findall(self.path))

    @property
    def is_write(self) -> bool:
        """True for calls that change remote data."""
        return self.method != "GET"

    def render(self, **params: str | int | None) -> str:
        """The path with each parameter encoded as exactly one segment; None becomes ``NULL``.

        ValueError for a value that cannot be one segment (empty, or text with a lone surrogate).
        """
        missing = [p for p in self.params if p not in params and p not in self.nullable]
        if missing:
            raise ValueError(f"route {self.name}: missing path parameters {missing}")

        def segment(match: re.Match[str]) -> str:
            value = params.get(match.group(1))
            return NULL if value is None else encode_segment(str(value), match.group(1))

        return _SEGMENT.sub(segment, self.path)

    def pattern(self) -> re.Pattern[str]:
        """A regex matching a RAW (still percent-encoded) request path for this route."""
        parts = _SEGMENT.split(self.path.lstrip("/"))
        # split() alternates literal text and parameter names: escape the one, capture the other.
        body = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)"
                       for i, p in enumerate(parts))
        return re.compile("^/+" + body + "/?$")

    def match(self, raw_path: str) -> dict[str, str | None] | None:
        """Parameters of ``raw_path`` if it is this route (``NULL``/``null`` -> None), else None."""
        found = self.pattern().match(raw_path)
        if found is None:
            return None
        return {k: _segment_value(v) for k, v in found.groupdict().items()}


def encode_segment(value: str, name: str = "segment") -> str:
    """``value`` percent-encoded as ONE path segment that decodes back to exactly ``value``.

    ``quote`` leaves ``.`` alone, and a segment that is only dots (``.``, ``..``) is removed or
    climbs a level when an HTTP client normalises the path; those dots are sent as ``%2E``.
    """
    if not value:
        raise ValueError(f"{name} is empty: it cannot be a path segment")
    try:
        encoded = quote(value, safe="", errors="strict")
    except UnicodeEncodeError:
        raise ValueError(f"{name} holds a character that is not valid Unicode (a lone "
                         f"surrogate): it cannot be sent") from None
    return encoded.replace(".", "%2E") if not encoded.strip(".") else encoded


def _segment_value(raw: str) -> str | None:
    value = unquote(raw)
    return None if value.casefold() == NULL.casefold() else value


# The reference kinds that share the paged list / refresh / edit / delete shape, from the kinds
# registry: (route prefix = API plural, API singular, list payload, singular payload).
REFERENCE_APIS: tuple[tuple[str, str, str, str], ...] = tuple(
    (k.api, k.api_singular, k.payload, k.singular_payload)
    for k in KINDS_LIST if k.shape == "records")


# Lists whose documented shape carries a user and a transaction segment after the page number
# (Part A: the tax-code reference page; both currency-code lists carry the user). Both are sent
# NULL unless ``[icompleat] user_id`` is configured; the transaction segment is always NULL.
USER_SCOPED_LISTS = frozenset({"taxcodes", "currencycodes"})
_LIST_USER_SEGMENTS = "/{userId}/{transactionId}"
_LIST_USER_NULLABLE = frozenset({"userId", "transactionId"})


def _reference_routes(plural: str, singular: str, many: str, one: str) -> list[Route]:
    company = "/{tenantId}/{companyId}"
    scoped = plural in USER_SCOPED_LISTS
    return [
        Route(f"{plural}.list", "GET",
              f"/api/{plural}{company}/{{pageNumber}}" + (_LIST_USER_SEGMENTS if scoped else ""),
              response_payload=many, page_size=REFERENCE_PAGE_SIZE,
              nullable=_LIST_USER_NULLABLE if scoped else frozenset(),
              **_LIST_BASIS.get(plural, {"note": "path by analogy with the suppliers list"})),
        Route(f"{plural}.post", "POST", f"/api/{plural}{company}",
              request_payload=many, page_size=WRITE_CHUNK_SIZE,
              note="refresh/append semantics documented; path and payload name assumed"),
        Route(f"{plural}.edit", "PUT", f"/api/{singular}{company}/{{code}}",
              request_payload=None, response_payload=one,
              note="an Edit call is listed; path and body not public (404/405: refresh instead)"),
        Route(f"{plural}.delete", "DELETE", f"/api/{singular}{company}/{{code}}",
              note="a Delete call is listed; path not public (404/405: refresh instead)"),
    ]


_LIST_BASIS: dict[str, dict[str, str]] = {
    "suppliers": {"basis": SEEN, "note": "the public client's path"},
    "taxcodes": {"basis": DOCUMENTED, "note": "reference page; user and transaction NULL"},
    "currencycodes": {"basis": DOCUMENTED,
                      "note": "reference page; NULL for an unset user is assumed"},
}


_TX_LIST_NULLABLE = frozenset({"companyId", "userId", "status", "transactionType"})

DEFAULT_ROUTES: tuple[Route, ...] = (
    Route("tenant", "GET", "/api/tenant/{tenantId}",
          note="a tenant reference page exists; this path is assumed"),
    Route("companies", "GET", "/api/companies/{tenantId}", response_payload="Companies",
          note="no public list of companies; path and payload assumed"),
    Route("users", "GET", "/api/users/{tenantId}/{companyId}", response_payload="Users",
          nullable=frozenset({"companyId"}), basis=SEEN,
          note="the public client's first call; NULL company documented"),
    *(r for api in REFERENCE_APIS for r in _reference_routes(*api)),
    Route("customfields.list", "GET", "/api/customfields/{tenantId}/{companyId}",
          response_payload="CustomFields", basis=SEEN, note="the public client's path"),
    Route("customfields.create", "POST", "/api/customfields/{tenantId}/{companyId}",
          request_payload="CustomFields", response_payload="CustomFields",
          note="creating fields is not public; path and body assumed"),
    Route("customfield.detail", "GET", "/api/customfield/{tenantId}/{companyId}/{customFieldId}",
          response_payload="CustomField", basis=SEEN, note="the public client's path"),
    Route("customfield.edit", "PUT", "/api/customfield/{tenantId}/{companyId}/{customFieldId}",
          response_payload="CustomField", note="an Edit call is listed; path and body assumed"),
    Route("customfield.delete", "DELETE",
          "/api/customfield/{tenantId}/{companyId}/{customFieldId}",
          note="a Delete call is listed; path assumed"),
    Route("customfield.values", "POST", "/api/customfield/{tenantId}/{companyId}/{customFieldId}",
          request_payload="CustomFieldListItems", page_size=WRITE_CHUNK_SIZE, basis=SEEN,
          note="the public client's chunked replace/append"),
    # ASSUMED (Part B): the list is in creation order, oldest first, so a page once full stays
    # the same and new approvals land at the tail; the poll's tail cursor relies on it, and its
    # nightly full sweep catches anything that ordering would hide.
    Route("transactions.list", "GET",
          "/api/transactions/{tenantId}/{pageNumber}/{companyId}/{userId}/{status}"
          "/{transactionType}",
          response_payload="Transactions", page_size=TRANSACTION_PAGE_SIZE,
          nullable=_TX_LIST_NULLABLE, basis=SEEN,
          note="the public client's path; NULL company documented; creation order assumed"),
    Route("transaction.detail", "GET", "/api/transaction/{tenantId}/{transactionId}/{userId}",
          response_payload="Transaction", nullable=frozenset({"userId"}), basis=SEEN,
          note="the public client's path"),
    Route("transaction.create", "POST", "/api/transaction/{tenantId}/{companyId}",
          response_payload="Transaction", note="a create call exists; path and body assumed"),
    Route("transaction.edit", "PUT", "/api/transaction/{tenantId}/{transactionId}",
          response_payload="Transaction",
          note="no public call writes a journal number; 404/405: the webhook answer carries it"),
)

# Header names of the contract (overridable like routes, through RouteTable.headers).
DEFAULT_HEADERS: Mapping[str, str] = {
    "version": "x-api-version",
    "key": "x-api-compleat-key",
    "webhook_token": "x-compleat-secret-token",
}
API_VERSION = "1"

# Field names of the envelope around every body (Part A and B of the contract).
METADATA = "MetaData"
CONTINUATION_TOKEN = "ContinuationToken"  # noqa: S105 (a field name, not a secret)
ERROR_CODE = "ErrorCode"
ERROR_MESSAGE = "Message"
# Transaction fields a partial edit sets: approve / deny (Status) and record a posting.
TRANSACTION_STATUS = "Status"
JOURNAL_NUMBER = "JournalNumber"

_OVERRIDABLE = {"method", "path", "response_payload", "request_payload", "page_size", "nullable"}


class RouteTable(Mapping[str, Route]):
    """The routes by name, plus the header names; immutable once built."""

    def __init__(self, routes: Mapping[str, Route], headers: Mapping[str, str]) -> None:
        self._routes = dict(routes)
        self.headers: Mapping[str, str] = dict(headers)

    def __getitem__(self, name: str) -> Route:
        return self._routes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def resolve(self, method: str, raw_path: str) -> tuple[Route, dict[str, str | None]] | None:
        """The route serving ``method raw_path`` and its parameters, or None.

        When several templates match (``/api/customfield/t/c/x`` is both detail and values by
        method), the method decides. Paths may start with ``//`` as the real client sent them.
        """
        for route in self._routes.values():
            if route.method == method.upper():
                params = route.match(raw_path)
                if params is not None:
                    return route, params
        return None


def _check_placeholders(default: Route, path: str, name: str) -> None:
    """An overriding path may only use the placeholders the operation fills in."""
    unknown = sorted(set(_SEGMENT.findall(path)) - set(default.params))
    if unknown or "{" in _SEGMENT.sub("", path) or "}" in _SEGMENT.sub("", path):
        raise ConfigError(f"path {path!r} has placeholders this operation does not fill "
                          f"({unknown or 'unbalanced braces'}); known: {list(default.params)}",
                          key=f"icompleat.routes.{name}.path")


def build_routes(
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    header_overrides: Mapping[str, str] | None = None,
) -> RouteTable:
    """The default table with the user's overrides applied; an unknown name or key is an error."""
    routes = {r.name: r for r in DEFAULT_ROUTES}
    for name, changes in (overrides or {}).items():
        if name not in routes:
            raise ConfigError(f"unknown route {name!r}; known: {sorted(routes)}",
                              key=f"icompleat.routes.{name}")
        bad = set(changes) - _OVERRIDABLE
        if bad:
            raise ConfigError(f"cannot override {sorted(bad)}; allowed: {sorted(_OVERRIDABLE)}",
                              key=f"icompleat.routes.{name}")
        values = dict(changes)
        if "path" in values:
            _check_placeholders(routes[name], str(values["path"]), name)
        if "nullable" in values:
            values["nullable"] = frozenset(values["nullable"])
        routes[name] = replace(routes[name], **values)
    headers = dict(DEFAULT_HEADERS)
    for key, value in (header_overrides or {}).items():
        if key not in headers:
            raise ConfigError(f"unknown header {key!r}; known: {sorted(headers)}",
                              key=f"icompleat.headers.{key}")
        headers[key] = value
    return RouteTable(routes, headers)


ROUTES = build_routes()
