"""What the sandbox puts on the wire: the envelope, error bodies, times and 400 errors.

Payload names come from the routes table and the envelope's field names from
``connectors.icompleat.routes``; the few names below are the sandbox's own (the throttling body of
the Azure API Management front, the tenant object) or fields of a transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from connectors.icompleat.routes import ERROR_CODE, ERROR_MESSAGE, METADATA
from sync.foundation.errors import BAD_REQUEST_BY_CODE, BadRequest

Record = dict[str, Any]

# ErrorCodes of Part B, by meaning.
UNKNOWN_COMPANY = 2
BAD_USER = 3
UNKNOWN_TRANSACTION = 10
UNKNOWN_RECORD = 11
VALIDATION_FAILED = 12
BAD_TOKEN = 20
NO_CUSTOM_FIELD = 21
# The sandbox's own code for a request the contract has no code for (a wrong x-api-version).
BAD_REQUEST = 1

THROTTLE_STATUS_FIELD = "statusCode"
THROTTLE_MESSAGE_FIELD = "message"
UNAUTHORISED_MESSAGE = "Authorization has been denied for this request."


def iso_now(now: float) -> str:
    """``now`` (epoch seconds) as iCompleat writes times: 7 fraction digits and ``Z``."""
    stamp = datetime.fromtimestamp(now, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def new_id() -> str:
    """A fresh GUID string, as iCompleat identifies companies, fields and transactions."""
    return str(uuid.uuid4())


def metadata(url: str, now: float) -> Record:
    """The ``MetaData`` block every success and error body carries."""
    return {"RequestUrl": url, "Version": 1, "DateCreated": iso_now(now)}


def envelope(body: Record, url: str, now: float) -> Record:
    """``body`` (the payload fields) plus ``MetaData``."""
    return {**body, METADATA: metadata(url, now)}


def error_body(code: int, message: str, url: str, now: float) -> Record:
    """The HTTP 400 body of Part B."""
    return {ERROR_CODE: code, ERROR_MESSAGE: message, METADATA: metadata(url, now)}


def reject(code: int, message: str) -> BadRequest:
    """The project's BadRequest for ErrorCode ``code``; the app renders it as an HTTP 400."""
    cls = BAD_REQUEST_BY_CODE.get(code, BadRequest)
    return cls(f"error {code}: {message}", error_code=code, api_message=message)


def unknown_company(company_id: str) -> BadRequest:
    """ErrorCode 2 for ``company_id``."""
    return reject(UNKNOWN_COMPANY, f"company {company_id!r} is not known to this tenant; "
                                   "use an id from the companies list")


def invalid(where: str, field: str, problem: str) -> BadRequest:
    """ErrorCode 12 naming the record (``where``) and the field, for field_from_message."""
    prefix = f"{where}: " if where else ""
    return reject(VALIDATION_FAILED, f"{prefix}field {field} {problem}")
