"""The webhook's pure checks: token, body, company and postability."""

import hashlib

import pytest
from starlette.exceptions import HTTPException

from connectors.icompleat.models import Transaction, parse_transaction
from sync.foundation.config import CompanyConfig
from sync.transactions.webhook import (
    ENDPOINT_TYPES,
    TOKEN_MAX_BYTES,
    check_postable,
    find_company,
    parse_push,
    token_problem,
)

ACCEPTED = [b"old-token-123", b"new-token-456"]
COMPANY = CompanyConfig(name="acme", company_id="AAAA-bbbb", sink="erp",
                        transaction_types=["INV", "CRD"])


@pytest.mark.parametrize(("presented", "problem"), [
    ([], "missing"),
    ([b""], "empty"),
    ([b"x" * (TOKEN_MAX_BYTES + 1)], "oversized"),
    (["new-token-45€".encode()], "not ascii"),
    ([b"new-token-457"], "wrong"),
    ([b" new-token-456"], "wrong"),
    ([b"new-token-456\x00"], "wrong"),
    ([b"new-token-4566"], "wrong"),
    ([b"new-token-456", b"new-token-456"], "repeated"),
    ([b"NEW-TOKEN-456"], "wrong"),
])
def test_token_refusals(presented: list[bytes], problem: str) -> None:
    """Each kind of bad token header is refused and named (never echoed)."""
    assert token_problem(presented, ACCEPTED) == problem


def test_every_accepted_token_passes() -> None:
    """Both the old and the new token pass during a rotation."""
    assert token_problem([b"old-token-123"], ACCEPTED) is None
    assert token_problem([b"new-token-456"], ACCEPTED) is None


def test_no_configured_token_refuses_everything() -> None:
    """Without configured tokens nothing is accepted, not even an empty-looking match."""
    assert token_problem([b"anything"], []) == "wrong"


def test_token_is_compared_against_every_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison never stops at the first match: each accepted token is compared."""
    calls: list[bytes] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return a == b

    monkeypatch.setattr("sync.transactions.webhook.hmac.compare_digest", spy)
    assert token_problem([b"old-token-123"], ACCEPTED) is None
    assert calls == [hashlib.sha256(token).digest() for token in ACCEPTED]


@pytest.mark.parametrize("body", [
    b"", b"not json", b"\xff\xfe{}", b"[1, 2]", b'"Id"', b"{}", b'{"Id": null}', b'{"Id": "  "}',
    b'{"Id": {"x": 1}}', b"[" * 100_000, b'{"Id": "a"', b'{"Id": "t-1"}', b'{"Id": ".."}',
    b'{"Id": "\\ud800"}', b'{"Id": "' + b"a" * 100_000 + b'"}',
    b'{"Id": "0b7e6f5c-1d2e-4f3a-9b8c-7d6e5f4a3b2c/.."}',
])
def test_bad_bodies_are_400(body: bytes) -> None:
    """Malformed, empty, deep or Id-less bodies are a 400, never an exception escaping."""
    with pytest.raises(HTTPException) as caught:
        parse_push(body)
    assert caught.value.status_code == 400


def test_good_body_parses() -> None:
    """A transaction object with a GUID Id is accepted as the hint."""
    guid = "0b7e6f5c-1d2e-4f3a-9b8c-7d6e5f4a3b2c"
    assert parse_push(b'{"Id": "%s", "Status": "APPR"}' % guid.encode())["Id"] == guid


def test_company_found_ignoring_case_else_404() -> None:
    """Company.Id GUIDs compare case-insensitively; an unknown one is a 404 naming it."""
    assert find_company([COMPANY], "aaaa-BBBB") is COMPANY
    with pytest.raises(HTTPException) as caught:
        find_company([COMPANY], "zzzz")
    assert caught.value.status_code == 404
    assert "zzzz" in str(caught.value.detail)


def _tx(status: str, tx_type: str) -> Transaction:
    return parse_transaction({"Id": "t-9", "Status": status, "Type": tx_type,
                              "Company": {"Id": "AAAA-bbbb"}})


def test_only_approved_transactions_of_configured_types_are_postable() -> None:
    """PEND is refused with 409, so is a type the company does not post; APPR INV passes."""
    check_postable(_tx("APPR", "INV"), COMPANY)
    for status, tx_type in (("PEND", "INV"), ("APPR", "ORD")):
        with pytest.raises(HTTPException) as caught:
            check_postable(_tx(status, tx_type), COMPANY)
        assert caught.value.status_code == 409


def test_endpoints_map_to_types() -> None:
    """The three endpoint names are the three transaction types."""
    assert ENDPOINT_TYPES == {"orders": "ORD", "invoices": "INV", "credit-notes": "CRD"}
