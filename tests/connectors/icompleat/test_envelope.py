"""The envelope: Part A sample bodies parse; answers map to the exception tree."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from connectors.icompleat import envelope
from connectors.icompleat.models import parse_transaction
from connectors.icompleat.routes import ROUTES
from sync.foundation import errors
from tests.connectors.icompleat.support import META

SUPPLIERS = ROUTES["suppliers.list"]
SUPPLIER_POST = ROUTES["suppliers.post"]
SUPPLIER_EDIT = ROUTES["suppliers.edit"]

SUPPLIERS_BODY = {
    "Suppliers": [
        {"Code": "S001", "Name": "Acme Ltd", "AddressLine1": "1 High St", "AddressLine2": None,
         "TownOrCity": "Leeds", "Country": "United Kingdom", "IsoCode": "GB",
         "PaymentDueDays": 30, "PaymentTermsType": "NetDays",
         "AnalysisDefaults": [{"FieldCode": "AccountCode", "Value": "5000"}]},
        {"Code": "S002", "Name": "Omitted Fields Co"},
    ],
    **META,
}
TENANT_BODY = {"Id": "9f1c2b7e-0000-4000-8000-000000000001", "Name": "Demo tenant", **META}
TRANSACTIONS_BODY = {
    "Transactions": [{
        "Id": "tx-1", "Company": {"Id": "C1", "Name": "Demo"}, "Owner": {"Id": "u", "Name": "U"},
        "Type": "INV", "References": {"Identifier": "INV-1", "PurchaseOrder": None,
                                      "Supplier": "S001"},
        "Dates": {"Created": "2024-01-02T10:00:00Z", "Invoice": "2024-01-01",
                  "Delivery": "string"},
        "Title": "Paper", "SupplierName": "Acme Ltd",
        "Net": {"Base": {"Display": "£40.00", "Value": 40}, "Local": {"Value": 40}},
        "Vat": {"Base": {"Display": "£8.00", "Value": 8}},
        "Gross": {"Base": {"Display": "£48.00", "Value": 48}, "Local": None},
        "Status": "APPR", "LastUpdatedGuid": "g1", "MatchingStatusDetail": {"MatchStatus": 0},
    }],
    "PageNumber": 1, "Count": 1, "PageSize": 20, **META,
}
CUSTOM_FIELD_BODY = {"CustomField": {"Id": "cf1", "Name": "Project", "Active": True,
                                     "Type": "List", "Mandatory": False,
                                     "Values": [{"Code": "P1", "Name": "Alpha"}]}, **META}


def test_reference_page_keeps_records_as_sent() -> None:
    """A Suppliers page parses; null and omitted fields and PascalCase names are kept as sent."""
    rows = envelope.records(SUPPLIERS, SUPPLIERS_BODY, "page 1")
    assert [r["Code"] for r in rows] == ["S001", "S002"]
    assert rows[0]["AddressLine2"] is None
    assert "AddressLine2" not in rows[1]
    assert rows[0]["AnalysisDefaults"][0]["FieldCode"] == "AccountCode"


def test_tenant_is_unwrapped_without_metadata() -> None:
    """The tenant's fields sit beside MetaData; MetaData is dropped."""
    assert envelope.without_metadata(ROUTES["tenant"], TENANT_BODY, "t") == {
        "Id": "9f1c2b7e-0000-4000-8000-000000000001", "Name": "Demo tenant"}


def test_transactions_page_parses_into_models() -> None:
    """A Transactions page with money objects and a non-date date parses leniently."""
    rows = envelope.records(ROUTES["transactions.list"], TRANSACTIONS_BODY, "p1")
    tx = parse_transaction(rows[0])
    assert tx.id == "tx-1"
    assert tx.status == "APPR"
    assert tx.delivery_date is None
    assert tx.net.base == Decimal(40)
    assert tx.gross.base == Decimal(48)


def test_custom_field_detail_and_missing_payloads() -> None:
    """Detail unwraps CustomField; a null or absent list payload is an empty list."""
    detail = envelope.record(ROUTES["customfield.detail"], CUSTOM_FIELD_BODY, "cf1")
    assert detail["Values"] == [{"Code": "P1", "Name": "Alpha"}]
    assert envelope.records(SUPPLIERS, {"Suppliers": None, **META}, "p") == []
    assert envelope.records(SUPPLIERS, dict(META), "p") == []


def test_payload_name_matches_case_insensitively() -> None:
    """A payload spelt in another case is still found."""
    assert envelope.records(SUPPLIERS, {"suppliers": [{"Code": "A"}]}, "p") == [{"Code": "A"}]


def test_record_without_wrapper_is_the_object_itself() -> None:
    """An edit answer that is not wrapped in its singular payload is taken as the record."""
    assert envelope.record(SUPPLIER_EDIT, {"Code": "A", "Name": "B", **META}, "A") == {
        "Code": "A", "Name": "B"}


def test_malformed_payload_is_server_error_on_read_and_unknown_on_write() -> None:
    """A body outside the contract is retryable on a read and settles by read on a write."""
    with pytest.raises(errors.ServerError, match="Suppliers is not a list"):
        envelope.records(SUPPLIERS, {"Suppliers": {"Code": "A"}}, "p")
    with pytest.raises(errors.OutcomeUnknown, match="not a JSON object"):
        envelope.record(SUPPLIER_EDIT, ["x"], "A")
    with pytest.raises(errors.OutcomeUnknown, match="not a string"):
        envelope.continuation_token(SUPPLIER_POST, {"ContinuationToken": 5}, "chunk")


def test_continuation_token_and_chunk_body() -> None:
    """A chunk carries the route's payload name and the token; the answer's token is read."""
    body = envelope.chunk_body(SUPPLIER_POST, [{"Code": "A"}], "")
    assert body == {"Suppliers": [{"Code": "A"}], "ContinuationToken": ""}
    assert envelope.continuation_token(SUPPLIER_POST, {"ContinuationToken": "t2"}, "c") == "t2"
    assert envelope.continuation_token(SUPPLIER_POST, {"ContinuationToken": None}, "c") == ""


def test_decode_tells_json_from_garbage() -> None:
    """Empty is None, JSON decodes, HTML is flagged as not JSON."""
    assert envelope.decode(b"") == (True, None)
    assert envelope.decode(b'{"a": 1}') == (True, {"a": 1})
    assert envelope.decode(b"<html>oops</html>") == (False, None)


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
    ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0), ("soon", None), ("", None), (None, None),
    ("nan", None),
])
def test_retry_after_seconds_and_http_date(value: str | None, expected: float | None) -> None:
    """Retry-After is read as delta seconds or as an HTTP date relative to now."""
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert envelope.retry_after(value, now) == expected


def _error(route_name: str, status: int, body: object = None, **headers: str
           ) -> errors.ApiError | None:
    return envelope.answer_error(ROUTES[route_name], status, httpx.Headers(headers), body,
                                 origin="file /k", subject="companyId 'C'")


def test_status_mapping() -> None:
    """401, 429, 5xx and foreign statuses map to their classes, read and write apart."""
    assert _error("suppliers.list", 200, {}) is None
    assert isinstance(_error("suppliers.list", 401), errors.AuthRejected)
    assert isinstance(_error("suppliers.list", 503), errors.ServerError)
    assert isinstance(_error("suppliers.post", 503), errors.OutcomeUnknown)
    other = _error("suppliers.list", 404)
    assert type(other) is errors.ApiError
    assert "routes" in str(other)


def test_auth_message_names_origin_and_what_to_do() -> None:
    """The 401 message names where the key came from and what to do about it."""
    error = _error("tenant", 401)
    assert error is not None
    assert "file /k" in str(error)
    assert "regenerated" in str(error)


@pytest.mark.parametrize("status", [429, 200, 500])
def test_throttle_in_status_or_body(status: int) -> None:
    """HTTP 429, and a 200 or 500 whose body says statusCode 429, are Throttled."""
    body = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 3 seconds."}
    error = _error("suppliers.post", status, body if status != 429 else None, **{
        "Retry-After": "4"} if status == 429 else {})
    assert isinstance(error, errors.Throttled)
    assert error.retry_after == (4.0 if status == 429 else 3.0)


@pytest.mark.parametrize(("code", "cls"), [
    *sorted(errors.BAD_REQUEST_BY_CODE.items()), (99, errors.BadRequest),
    (None, errors.BadRequest)])
def test_bad_request_codes_map_to_classes(code: int | None, cls: type[errors.BadRequest]
                                          ) -> None:
    """Each documented ErrorCode maps to its class; others to BadRequest, with the message."""
    body = {"ErrorCode": code, "Message": "field 'Name' is too long", **META}
    error = _error("suppliers.edit", 400, body)
    assert type(error) is cls
    assert isinstance(error, errors.BadRequest)
    assert error.error_code == code
    assert error.api_message == "field 'Name' is too long"
    assert "companyId 'C'" in str(error)


def test_validation_failed_names_the_field() -> None:
    """ErrorCode 12 exposes the field its message names."""
    error = _error("suppliers.edit", 400, {"ErrorCode": "12", "Message": "field 'IsoCode' bad"})
    assert isinstance(error, errors.ValidationFailed)
    assert error.field == "IsoCode"


def test_transport_failures_split_on_whether_a_write_was_sent() -> None:
    """A connect failure never sent the write; a read timeout may have applied it."""
    post, get = ROUTES["suppliers.post"], ROUTES["suppliers.list"]
    connect = httpx.ConnectError("refused")
    timeout = httpx.ReadTimeout("slow")
    assert type(envelope.transport_failure(post, connect, "s")) is errors.TransportError
    assert type(envelope.transport_failure(post, timeout, "s")) is errors.OutcomeUnknown
    assert type(envelope.transport_failure(get, timeout, "s")) is errors.TransportError
    assert type(envelope.transport_failure(post, TimeoutError(), "s")) is errors.OutcomeUnknown
