"""The five paged reference kinds: list, refresh / append with tokens, edit one, delete one.

A POST with an empty (or absent) ``ContinuationToken`` starts a NEW set that replaces the live
set at once with its first chunk; a POST with a token appends to that set. A chunk is applied
whole or not at all: one invalid record refuses the chunk with ErrorCode 12 naming the record and
the field. A chunk shorter than the chunk size completes a set, which is when "exactly one base
currency" is enforced.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.icompleat.routes import REFERENCE_PAGE_SIZE
from connectors.icompleat.sandbox.core import StateCore
from connectors.icompleat.sandbox.faults import ListChange
from connectors.icompleat.sandbox.store import RecordSet
from connectors.icompleat.sandbox.validate import (
    CURRENCY_API,
    check_base_currency,
    clean_record,
    describe,
)
from connectors.icompleat.sandbox.wire import UNKNOWN_RECORD, Record, invalid, reject
from sync.foundation.entities import KINDS_LIST, WRITE_CHUNK_SIZE, Kind


def kind_for(api: str) -> Kind:
    """The registry kind whose route prefix is ``api`` (``suppliers``, ``taxcodes``...)."""
    for kind in KINDS_LIST:
        if kind.api == api:
            return kind
    raise KeyError(f"no reference kind with route prefix {api!r}")


def check_chunk(items: Any, payload: str) -> list[Any]:
    """The list of one POST body; ErrorCode 12 when it is not a list of at most 100."""
    if not isinstance(items, list):
        raise invalid("", payload, "must be a list of records")
    if len(items) > WRITE_CHUNK_SIZE:
        raise invalid("", payload, f"carries {len(items)} records; send at most "
                                   f"{WRITE_CHUNK_SIZE} a call and continue with the token")
    return items


def check_token(token: Any) -> str | None:
    """The ContinuationToken of a body: None (start a new set) or the token text."""
    if token is None or token == "":
        return None
    if not isinstance(token, str):
        raise invalid("", "ContinuationToken", "must be text (empty to start a new set)")
    return token


class ReferenceOps(StateCore):
    """Operations on the paged reference kinds."""

    def ref_set(self, tenant_id: str, company_id: str | None, api: str) -> RecordSet:
        """One company's list of one kind (ErrorCode 2 for an unknown company)."""
        return self.company(tenant_id, company_id).refs[api]

    def list_page(self, tenant_id: str, company_id: str | None, api: str, page: int,
                  size: int = REFERENCE_PAGE_SIZE) -> list[Record]:
        """Page ``page`` (from 1) of the list, in code order; empty past the end."""
        with self._lock:
            return self.ref_set(tenant_id, company_id, api).page(page, size)

    def post_set(self, tenant_id: str, company_id: str | None, api: str, items: Any,
                 token: Any) -> str:
        """Refresh (no token) or append (token); the token for the next chunk."""
        kind = kind_for(api)
        chunk = check_chunk(items, kind.payload)
        records = [clean_record(kind, raw, describe(kind.payload, i, raw))
                   for i, raw in enumerate(chunk)]
        complete = len(chunk) < WRITE_CHUNK_SIZE
        with self._lock:
            target = self.ref_set(tenant_id, company_id, api)
            text = check_token(token)
            if text is None:
                self._check_bases(api, records, complete=complete, where=kind.payload)
                target.replace(records)
                return self.tokens.issue(target, self.now(), self.token_ttl)
            self.tokens.extend(text, target, self.now(), self.token_ttl)
            self._check_bases(api, [*target, *records], complete=complete, where=kind.payload)
            target.merge(records)
            return text

    @staticmethod
    def _check_bases(api: str, records: Iterable[Record], *, complete: bool, where: str) -> None:
        if api == CURRENCY_API:
            by_code = {r["Code"]: r for r in records}
            check_base_currency(by_code.values(), complete=complete, where=where)

    def edit_record(self, tenant_id: str, company_id: str | None, api: str, code: str,
                    body: Any) -> Record:
        """Replace the record ``code`` with ``body`` (the whole record); the stored record."""
        kind = kind_for(api)
        where = f"{kind.singular_payload} (Code {code!r})"
        if isinstance(body, dict) and body.get("Code", code) != code:
            raise invalid(where, "Code", f"is {body['Code']!r} but the path says {code!r}; to "
                                         "change a code, delete the record and create a new one")
        record = clean_record(kind, {**body, "Code": code} if isinstance(body, dict) else body,
                              where)
        with self._lock:
            target = self.ref_set(tenant_id, company_id, api)
            old = self._existing(target, kind, code)
            others = [r for r in target if r["Code"] != code]
            self._check_bases(api, [*others, record], complete=bool(old.get("IsBase")),
                              where=where)
            target.merge([record])
            return record

    @staticmethod
    def _existing(target: RecordSet, kind: Kind, code: str) -> Record:
        old = target.get(code)
        if old is None:
            raise reject(UNKNOWN_RECORD, f"no {kind.singular_payload} with Code {code!r}; list "
                                         f"the {kind.payload} to see the codes that exist")
        return old

    def delete_record(self, tenant_id: str, company_id: str | None, api: str, code: str) -> None:
        """Delete the record ``code`` (ErrorCode 11 when there is none)."""
        kind = kind_for(api)
        with self._lock:
            target = self.ref_set(tenant_id, company_id, api)
            old = self._existing(target, kind, code)
            if api == CURRENCY_API and old.get("IsBase"):
                raise invalid(f"{kind.singular_payload} (Code {code!r})", "IsBase",
                              "is true: the base currency cannot be deleted; refresh the "
                              "currencies with another base first")
            target.remove(code)

    def change_list(self, tenant_id: str, company_id: str | None, api: str,
                    change: ListChange) -> None:
        """Apply a 'list changed while paged' switch: insert and remove records at once."""
        kind = kind_for(api)
        inserts = [clean_record(kind, r, describe("change_insert", i, r))
                   for i, r in enumerate(change.insert)]
        with self._lock:
            target = self.ref_set(tenant_id, company_id, api)
            for code in change.remove:
                target.remove(code)
            target.merge(inserts)
