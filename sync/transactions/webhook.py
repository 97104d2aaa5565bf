"""The receiver of iCompleat's push of approved transactions.

``POST /webhooks/icompleat/{orders|invoices|credit-notes|receipts}`` with the shared secret in
a header (``[webhook] header``, ``x-compleat-secret-token`` by default, its value optionally
after ``[webhook] token_prefix`` such as ``Bearer ``). The token is checked before the
body is read: compared in constant time, as bytes, against EVERY accepted token (several during a
rotation) without stopping at the first match; a missing, repeated, empty, oversized, non-ASCII or
wrong token gets 401. A body that is too big, sent slower than ``[service]
body_timeout_seconds`` (408), not JSON, not a transaction with an ``Id`` in GUID form
(``8-4-4-4-12`` hex digits, checked before any call), or holding a number past the bounds of
:mod:`sync.foundation.numbers` gets a 4xx. ANY input the receiver cannot accept gets a 4xx: an
unexpected failure while handling a push is logged with its traceback and answered 400 (never a
5xx, which iCompleat would retry forever); only a dependency that is down answers 503. The token
is never logged. Bodies are parsed off the event loop.

The body is the transaction detail, bare or wrapped as ``{"Transaction": {...}}``, and only a
hint: with ``refetch = true`` (the default) the transaction is read again from
the API by id, must be approved and belong to a configured company (found by ``Company.Id``), and
is posted through the same ledger as the poller (:mod:`sync.transactions.poster`). The answer is
``200 {"JournalNumber": "..."}``, the same number however often or concurrently it is pushed.
Errors answer ``{"error": "..."}``: 404 unknown transaction or company, 409 not postable,
422 refused by the ERP (quarantined), 503 a dependency is down (iCompleat keeps it for a retry).

Receipts (pushed too, by the help centre's list): no sink posts them yet, so a receipt is
answered 200 with a log line naming it and its order and counted by ``on_receipt``; never a 404,
which iCompleat would put in its posting-failures tray.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.icompleat.models import STATUS_APPROVED, TYPE_NAMES, Transaction, text
from connectors.icompleat.models import parse_transaction as parse_tx
from connectors.icompleat.routes import JOURNAL_NUMBER
from sync.foundation.config import CompanyConfig
from sync.foundation.errors import ApiError, AuthRejected, IcsyncError, UnknownTransaction
from sync.foundation.logs import get_logger
from sync.foundation.numbers import loads
from sync.runtime.context import Runtime
from sync.transactions.poster import post_one
from sync.transactions.rules import QUARANTINED

log = get_logger("icsync.webhook")

TOKEN_MAX_BYTES = 512
PATH = "/webhooks/icompleat/{endpoint}"
ENDPOINT_TYPES = {name: code for code, name in TYPE_NAMES.items()}  # "orders" -> "ORD"
RECEIPTS = "receipts"
WRAPPERS = ("Transaction", "Receipt")  # the wrapped forms of a push
_NO_PREFIX = b"\x00"  # stands for a header value without the configured prefix: never matches
GUID = re.compile(r"\{?[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}?")
BODY_TIMEOUT_SECONDS = 30.0


def token_problem(presented: Sequence[bytes], accepted: Sequence[bytes]) -> str | None:
    """Why the token header values ``presented`` are refused, or None when one is accepted.

    Every accepted token is compared, whatever the earlier comparisons gave, in constant time;
    both sides are hashed first so that neither a token's length nor its prefix shows in timing.
    """
    value = presented[0] if len(presented) == 1 else b""
    digest = hashlib.sha256(value).digest()
    matched = False
    for candidate in accepted:
        matched |= hmac.compare_digest(digest, hashlib.sha256(candidate).digest())
    if not presented:
        return "missing"
    if len(presented) > 1:
        return "repeated"
    if not value:
        return "empty"
    if len(value) > TOKEN_MAX_BYTES:
        return "oversized"
    if not value.isascii():
        return "not ascii"
    return None if matched and accepted else "wrong"


def header_values(request: Request, name: str) -> list[bytes]:
    """Every raw value of header ``name`` (case-insensitive), as bytes."""
    wanted = name.lower().encode("latin-1")
    return [value for key, value in request.scope["headers"] if key.lower() == wanted]


async def read_body(request: Request, limit: int,
                    seconds: float = BODY_TIMEOUT_SECONDS) -> bytes:
    """The body, refused with 400 when its declared or actual size passes ``limit`` bytes and
    with 408 when it has not all arrived within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            return await _read_body(request, limit)
    except TimeoutError:
        raise HTTPException(408, f"the body did not arrive within {seconds:g} s ([service] "
                                 f"body_timeout_seconds)") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(400, f"body too large or Content-Length invalid (limit {limit} "
                                 f"bytes, [webhook] max_body_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(400, f"body larger than {limit} bytes ([webhook] max_body_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def strip_prefix(values: Sequence[bytes], prefix: str) -> list[bytes]:
    """Header values with ``prefix`` (matched ignoring case) removed; one without it never
    matches a token."""
    if not prefix:
        return list(values)
    wanted = prefix.encode("latin-1").lower()
    return [v[len(wanted):] if v[:len(wanted)].lower() == wanted else _NO_PREFIX for v in values]


def unwrap(data: dict[str, Any]) -> dict[str, Any]:
    """The pushed object, bare or wrapped (``{"Transaction": {...}}``, names in any case)."""
    if "Id" in data or len(data) != 1:
        return data
    (key, inner), = data.items()
    if str(key).casefold() in {w.casefold() for w in WRAPPERS} and isinstance(inner, dict):
        return inner
    return data


RECEIPT_ID_MAX = 100  # a receipt's Id is only logged (never sent in a URL); its shape is not public


def parse_push(body: bytes, *, guid_id: bool = True) -> dict[str, Any]:
    """The pushed object, unwrapped; 400 when it is not a JSON object with an ``Id``: a GUID
    (a transaction's, used in the refetch URL), or with ``guid_id=False`` (a receipt, only
    logged) printable text of at most RECEIPT_ID_MAX characters."""
    try:
        data = loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(400, "body is not JSON in UTF-8: iCompleat pushes the transaction "
                                 "detail as a JSON object") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "body must be a JSON object: the transaction detail")
    data = unwrap(data)
    tx_id = data.get("Id")
    if text(tx_id) is None:
        raise HTTPException(400, "the pushed transaction has no Id")
    if not guid_id:
        if not isinstance(tx_id, str) or len(tx_id) > RECEIPT_ID_MAX or not tx_id.isprintable():
            raise HTTPException(400, f"the pushed receipt's Id must be printable text of at most "
                                     f"{RECEIPT_ID_MAX} characters")
        return data
    if not isinstance(tx_id, str) or len(tx_id) > 38 or GUID.fullmatch(tx_id) is None:
        raise HTTPException(400, "the pushed transaction's Id is not a GUID "
                                 "(such as 0b7e6f5c-1d2e-4f3a-9b8c-7d6e5f4a3b2c)")
    return data


def find_company(companies: Sequence[CompanyConfig], company_id: str | None) -> CompanyConfig:
    """The configured company with iCompleat id ``company_id`` (GUIDs ignore case)."""
    for company in companies:
        if company_id and company.company_id.casefold() == company_id.casefold():
            return company
    raise HTTPException(404, f"no configured company has Company.Id {company_id!r}: add it to "
                             f"[[companies]] (company_id) or correct the endpoint in iCompleat")


def check_postable(tx: Transaction, company: CompanyConfig) -> None:
    """409 unless ``tx`` is approved and of a type ``company`` posts."""
    if tx.status != STATUS_APPROVED:
        raise HTTPException(409, f"transaction {tx.id} is {tx.status or 'without a status'}, "
                                 f"not {STATUS_APPROVED}: only approved transactions are posted")
    if tx.type is not None and tx.type not in company.transaction_types:
        raise HTTPException(409, f"company {company.name!r} does not post {tx.type} "
                                 f"transactions (transaction_types = "
                                 f"{company.transaction_types})")


class WebhookReceiver:
    """The endpoint behind :data:`PATH`, bound to one runtime."""

    def __init__(self, rt: Runtime, on_receipt: Callable[[str], None] | None = None) -> None:
        settings = rt.config.settings.webhook
        self.rt, self.header, self.prefix = rt, settings.header, settings.token_prefix
        self.on_receipt = on_receipt
        self.refetch, self.limit = settings.refetch, settings.max_body_bytes
        self.body_timeout = rt.config.settings.service.body_timeout_seconds
        self.accepted = [t.reveal().encode("utf-8") for t in rt.config.webhook_tokens]
        if not self.accepted:
            log.warning("webhook_without_tokens", header=self.header,
                        hint="every push gets 401 until [webhook] tokens or tokens_file is set")

    async def receive(self, request: Request) -> Response:
        """Authenticate, read, re-read from iCompleat, post; answer the journal number."""
        if request.path_params.get("endpoint") == RECEIPTS:
            return await self.receipt(request)
        try:
            tx_type = self._endpoint(request)
            self._authenticate(request)
            body = await read_body(request, self.limit, self.body_timeout)
            push = await asyncio.to_thread(parse_push, body)
            company, tx = await self._transaction(push)
            journal = await self._post(company, tx)
        except HTTPException as exc:
            return JSONResponse({"error": exc.detail}, exc.status_code)
        except Exception as exc:  # input this receiver cannot take: 4xx, never a 5xx
            log.exception("webhook_input_refused", path=request.url.path,
                          error_type=type(exc).__name__)
            return JSONResponse({"error": f"the push could not be accepted "
                                          f"({type(exc).__name__}); see the icsync log"}, 400)
        log.info("webhook_posted", endpoint=tx_type, transaction_id=tx.id,
                 company=company.name, journal_number=journal)
        return JSONResponse({JOURNAL_NUMBER: journal})

    async def receipt(self, request: Request) -> Response:
        """A pushed receipt: authenticated and read, then answered 200 with a log line (no sink
        takes receipts), so it never lands in iCompleat's posting-failures tray."""
        try:
            self._authenticate(request)
            push = parse_push(await read_body(request, self.limit), guid_id=False)
        except HTTPException as exc:
            return JSONResponse({"error": exc.detail}, exc.status_code)
        order = receipt_order(push)
        log.warning("webhook_receipt_not_posted", receipt_id=str(push["Id"]), order=order,
                    hint="the configured sink does not take receipts; record it in the ERP")
        if self.on_receipt is not None:
            self.on_receipt("not_posted")
        return JSONResponse({"Received": True, "Posted": False,
                             "Message": f"receipt {push['Id']} received; the ERP sink does not "
                                        "take receipts"})

    def _endpoint(self, request: Request) -> str:
        endpoint = str(request.path_params.get("endpoint", ""))
        if endpoint not in ENDPOINT_TYPES:
            raise HTTPException(404, f"no webhook endpoint {endpoint!r}; use one of "
                                     f"{sorted(ENDPOINT_TYPES)}")
        return ENDPOINT_TYPES[endpoint]

    def _authenticate(self, request: Request) -> None:
        presented = strip_prefix(header_values(request, self.header), self.prefix)
        problem = token_problem(presented, self.accepted)
        if problem is not None:
            client = request.client.host if request.client else None
            log.warning("webhook_token_refused", problem=problem, client=client,
                        path=request.url.path)
            raise HTTPException(401, f"webhook token refused ({problem}): send the secret token "
                                     f"configured for this endpoint in header {self.header}")

    async def _transaction(self, push: dict[str, Any]) -> tuple[CompanyConfig, Transaction]:
        source = await self._refetched(str(push["Id"])) if self.refetch else push
        try:
            tx = parse_tx(source)
        except ValueError:
            raise HTTPException(503, f"iCompleat answered for transaction {push['Id']} without "
                                     f"an Id; retry the posting later") from None
        company = find_company(self.rt.config.settings.companies, tx.company_id)
        check_postable(tx, company)
        return company, tx

    async def _refetched(self, tx_id: str) -> dict[str, Any]:
        try:
            return await self.rt.client.transaction(tx_id)
        except UnknownTransaction:
            raise HTTPException(404, f"iCompleat has no transaction {tx_id!r}") from None
        except AuthRejected as exc:
            log.error("webhook_refetch_refused", transaction_id=tx_id, error=str(exc))
            raise HTTPException(503, "iCompleat refused this receiver's API key; the push is "
                                     "kept in iCompleat for a retry") from None
        except ApiError as exc:
            raise HTTPException(503, f"could not read transaction {tx_id} back from iCompleat "
                                     f"({exc}); retry the posting later") from None

    async def _post(self, company: CompanyConfig, tx: Transaction) -> str:
        try:
            outcome = await post_one(self.rt, company, tx, write_back=False, retry_now=True)
        except IcsyncError as exc:
            log.error("webhook_post_failed", transaction_id=tx.id, error=str(exc))
            raise HTTPException(503, f"transaction {tx.id} could not be posted now ({exc}); "
                                     f"retry the posting later") from None
        if outcome.status == QUARANTINED:
            raise HTTPException(422, outcome.detail or f"transaction {tx.id} is quarantined")
        if outcome.failed or not outcome.journal_number:
            raise HTTPException(503, outcome.detail or f"transaction {tx.id} is not posted yet; "
                                                       f"retry the posting later")
        return outcome.journal_number


def receipt_order(push: dict[str, Any]) -> str | None:
    """The order a pushed receipt belongs to, where its body names one (shape not public)."""
    refs = push.get("References")
    for value in (push.get("PurchaseOrder"), push.get("OrderId"),
                  refs.get("PurchaseOrder") if isinstance(refs, dict) else None):
        found = text(value)
        if found is not None:
            return found[:RECEIPT_ID_MAX]
    return None


def create_webhook_routes(rt: Runtime, on_receipt: Callable[[str], None] | None = None
                          ) -> list[BaseRoute]:
    """The webhook routes for the daemon's HTTP server (POST only)."""
    receiver = WebhookReceiver(rt, on_receipt)
    return [Route(PATH, receiver.receive, methods=["POST"], name="icompleat_webhook")]
