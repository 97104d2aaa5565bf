"""The one exception tree of icsync.

Every error the product raises is an :class:`IcsyncError`. Foreign errors (httpx, SQLAlchemy,
pandas, OS) are translated at the boundary that meets them, keeping ``from exc``. Messages say what
happened, to which record, and what to do; they never carry a secret's value.

::

    IcsyncError                       exit 1 unless a subclass says otherwise
    ├── ConfigError                   exit 2  bad configuration or usage (names the key)
    ├── GuardBlocked                  exit 3  a safety rule refused deletes/refreshes
    ├── SourceError                           an ERP source could not be read (never "empty")
    ├── SinkError                             the ERP sink failed (transport, database)
    │   └── SinkRejected                      the ERP refused this transaction (quarantine it)
    ├── AlertNotSent                          an alert channel refused or did not answer
    ├── StateError                            the state database failed
    │   ├── StateCorrupt                      integrity check failed: refuse to run
    │   └── LeaseLost                         fencing check failed: stop writing at once
    └── ApiError                              iCompleat answered badly or not at all
        ├── AuthRejected              exit 5  HTTP 401: final, never retried
        ├── Throttled                         HTTP 429 or a body with "statusCode": 429
        ├── ServerError                       HTTP 5xx on a read (retryable)
        ├── TransportError                    no answer on a read (retryable)
        ├── OutcomeUnknown                    a WRITE may or may not have been applied:
        │                                     settle it with a read, never retry blindly
        ├── Unsupported                       HTTP 404 or 405: the tenant has no such call
        └── BadRequest                        HTTP 400 with ErrorCode and Message
            ├── UnknownCompany                ErrorCode 2
            ├── BadUser                       ErrorCode 3
            ├── UnknownTransaction            ErrorCode 10
            ├── UnknownRecord                 ErrorCode 11
            ├── ValidationFailed              ErrorCode 12 (``field`` names the field if known)
            ├── BadContinuationToken          ErrorCode 20
            └── CustomFieldNotFound           ErrorCode 21
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes shared by every icsync command."""

    OK = 0
    FAILED = 1
    CONFIG = 2
    BLOCKED = 3
    PARTIAL = 4
    AUTH = 5


class IcsyncError(Exception):
    """Base of every icsync error; ``exit_code`` is what the CLI exits with."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(IcsyncError):
    """The configuration or the command line is wrong; ``key`` names the offending setting."""

    exit_code = ExitCode.CONFIG

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class GuardBlocked(IcsyncError):
    """A safety rule refused a destructive change; the message says how to override."""

    exit_code = ExitCode.BLOCKED

    def __init__(self, message: str, *, company: str, kind: str, rule: str) -> None:
        super().__init__(message)
        self.company = company
        self.kind = kind
        self.rule = rule


class SourceError(IcsyncError):
    """An ERP source could not be read completely. Never treat this as an empty source."""


class SinkError(IcsyncError):
    """The ERP sink failed for a reason that is not about the transaction itself."""


class SinkRejected(SinkError):
    """The ERP refused this transaction (unknown supplier, closed period...): quarantine it."""

    def __init__(self, message: str, *, transaction_id: str, reason: str = "rejected") -> None:
        super().__init__(message)
        self.transaction_id = transaction_id
        self.reason = reason


class AlertNotSent(IcsyncError):
    """An alert channel refused the message or did not answer; the alert is retried later."""


class StateError(IcsyncError):
    """The state database failed."""


class StateCorrupt(StateError):
    """The state database failed its integrity check; restore it or move it aside."""


class LeaseLost(StateError):
    """This process no longer holds the lease it writes under; it must stop writing."""


class ApiError(IcsyncError):
    """iCompleat answered with an error or did not answer."""

    def __init__(self, message: str, *, route: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.route = route
        self.status = status


class AuthRejected(ApiError):
    """HTTP 401: the security key or tenant was refused. Final: never retried."""

    exit_code = ExitCode.AUTH


class Throttled(ApiError):
    """iCompleat asked us to slow down; ``retry_after`` is in seconds when it said so."""

    def __init__(
        self, message: str, *, route: str = "", status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, route=route, status=status)
        self.retry_after = retry_after


class ServerError(ApiError):
    """HTTP 5xx on a call that is safe to repeat."""


class TransportError(ApiError):
    """No usable answer (connect error, timeout, reset) on a call that is safe to repeat."""


class OutcomeUnknown(ApiError):
    """A write may or may not have been applied (timeout, reset, 5xx): settle it by a read."""


class Unsupported(ApiError):
    """HTTP 404 or 405: the service has no such operation (nothing was applied)."""


class BadRequest(ApiError):
    """HTTP 400 with iCompleat's numeric ``error_code`` and ``message``."""

    def __init__(
        self, message: str, *, route: str = "", status: int | None = 400,
        error_code: int | None = None, api_message: str = "",
    ) -> None:
        super().__init__(message, route=route, status=status)
        self.error_code = error_code
        self.api_message = api_message


class UnknownCompany(BadRequest):
    """ErrorCode 2: the company id is not known to this tenant."""


class BadUser(BadRequest):
    """ErrorCode 3: the user id is not valid."""


class UnknownTransaction(BadRequest):
    """ErrorCode 10: no transaction with that id."""


class UnknownRecord(BadRequest):
    """ErrorCode 11: no record with that code."""


class ValidationFailed(BadRequest):
    """ErrorCode 12: a record failed validation; ``field`` names the field when known."""

    @property
    def field(self) -> str | None:
        """The field iCompleat's message names, if it names one."""
        return field_from_message(self.api_message)


class BadContinuationToken(BadRequest):
    """ErrorCode 20: the continuation token is unknown or expired; start the set again."""


class CustomFieldNotFound(BadRequest):
    """ErrorCode 21: no custom field with that id."""


BAD_REQUEST_BY_CODE: dict[int, type[BadRequest]] = {
    2: UnknownCompany,
    3: BadUser,
    10: UnknownTransaction,
    11: UnknownRecord,
    12: ValidationFailed,
    20: BadContinuationToken,
    21: CustomFieldNotFound,
}

_FIELD_IN_MESSAGE = re.compile(r"(?:field|property)\s+'?\"?([A-Za-z][A-Za-z0-9_.\[\]]*)", re.I)


def field_from_message(message: str) -> str | None:
    """Return the field named in an iCompleat validation message, or None."""
    match = _FIELD_IN_MESSAGE.search(message or "")
    return match.group(1) if match else None


def exit_code_for(exc: BaseException) -> ExitCode:
    """The process exit code that reports ``exc``."""
    return exc.exit_code if isinstance(exc, IcsyncError) else ExitCode.FAILED
