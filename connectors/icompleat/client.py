"""The iCompleat API client: one typed method per operation of the contract.

Built on :class:`connectors.icompleat.session.ApiSession`, which owns the transport, the limits,
retries and error mapping; every path, payload and header name comes from the routes table.
Callers get plain dicts with iCompleat's PascalCase names as sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from connectors.icompleat import envelope
from connectors.icompleat.models import STATUS_APPROVED
from connectors.icompleat.routes import JOURNAL_NUMBER, TRANSACTION_STATUS
from connectors.icompleat.session import (
    ApiSession,
    CallRecord,
    CallStats,
    ClientLimits,
    check_base_url,
)
from sync.foundation.entities import WRITE_CHUNK_SIZE
from sync.foundation.errors import ApiError

__all__ = ["CallRecord", "CallStats", "ClientLimits", "IcompleatClient", "check_base_url"]

STATUS_DENIED = "DEN"
MAX_PAGES = 10_000  # 1M reference records: far past any tenant, short of a server ignoring pages


def _chunks(items: Sequence[Mapping[str, Any]], size: int) -> list[Sequence[Mapping[str, Any]]]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [items[:0]]


class IcompleatClient(ApiSession):
    """The iCompleat V1 API of one tenant: tenant, companies, reference data, transactions."""

    # -- tenant and companies ---------------------------------------------------------------

    async def tenant(self) -> dict[str, Any]:
        """The tenant object, unwrapped, without ``MetaData``."""
        return await self._call("tenant", envelope.without_metadata)

    async def companies(self) -> list[dict[str, Any]]:
        """The tenant's companies (``Id``, ``Name``)."""
        return await self._call("companies", envelope.records)

    # -- the paged reference kinds ----------------------------------------------------------

    async def reference_pages(self, api: str, company_id: str
                              ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of ``api`` ("suppliers", ...) from page 1, stopping at the first empty page."""
        name = self._route(f"{api}.list", param="pageNumber").name
        for page in range(1, MAX_PAGES + 1):
            items = await self._call(name, envelope.records, companyId=company_id,
                                     pageNumber=page)
            if not items:
                return
            yield items
        raise ApiError(f"{name} (companyId {company_id!r}): no empty page after {MAX_PAGES} "
                       "pages; the service may be ignoring the page number", route=name)

    async def list_reference(self, api: str, company_id: str) -> list[dict[str, Any]]:
        """Every record of ``api`` for the company, all pages."""
        return [r async for page in self.reference_pages(api, company_id) for r in page]

    async def post_reference(self, api: str, company_id: str,
                             records: Sequence[Mapping[str, Any]], token: str = "") -> str:
        """Send ONE chunk; ``token`` "" starts a new complete set. Returns the next token."""
        route = self._route(f"{api}.post")
        limit = route.page_size or WRITE_CHUNK_SIZE
        if len(records) > limit:
            raise ValueError(f"{route.name}: a chunk holds at most {limit} records, "
                             f"got {len(records)}")
        return await self._call(route.name, envelope.continuation_token,
                                envelope.chunk_body(route, records, token), companyId=company_id)

    async def refresh_reference(
        self, api: str, company_id: str, records: Sequence[Mapping[str, Any]], *,
        chunk_size: int = WRITE_CHUNK_SIZE,
        on_chunk: Callable[[int, int, str], Awaitable[None]] | None = None, token: str = "",
    ) -> str:
        """Send ``records`` as chunks in order, each carrying the previous chunk's token.

        ``token`` "" replaces the live set with the first chunk; a token appends (resume a set).
        ``on_chunk(index, total, next_token)`` runs after each acknowledged chunk, ``index``
        counting from 1 (``index == total``: the set is complete). Returns the last token.
        """
        if not 0 < chunk_size <= (self._route(f"{api}.post").page_size or WRITE_CHUNK_SIZE):
            raise ValueError(f"chunk_size must be 1..{WRITE_CHUNK_SIZE}, got {chunk_size}")
        chunks = _chunks(records, chunk_size)
        for index, chunk in enumerate(chunks, start=1):
            token = await self.post_reference(api, company_id, chunk, token)
            if on_chunk is not None:
                await on_chunk(index, len(chunks), token)
            if not token and index < len(chunks):
                raise ApiError(f"{api}.post (companyId {company_id!r}): no ContinuationToken "
                               f"after chunk {index} of {len(chunks)}; the live set is partial. "
                               "Send the complete set again.", route=f"{api}.post")
        return token

    async def edit_reference(self, api: str, company_id: str, code: str,
                             record: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the record ``code`` with ``record`` (the whole record); the stored record."""
        return await self._call(f"{api}.edit", envelope.record, dict(record),
                                companyId=company_id, code=code)

    async def delete_reference(self, api: str, company_id: str, code: str) -> None:
        """Delete the record ``code``."""
        await self._call(f"{api}.delete", envelope.nothing, companyId=company_id, code=code)

    # -- custom fields ----------------------------------------------------------------------

    async def custom_fields(self, company_id: str) -> list[dict[str, Any]]:
        """The active custom fields (``Id``, ``Name``)."""
        return await self._call("customfields.list", envelope.records, companyId=company_id)

    async def custom_field(self, company_id: str, field_id: str) -> dict[str, Any]:
        """One custom field with its ``Values``."""
        return await self._call("customfield.detail", envelope.record, companyId=company_id,
                                customFieldId=field_id)

    async def create_custom_fields(self, company_id: str, fields: Sequence[Mapping[str, Any]]
                                   ) -> list[dict[str, Any]]:
        """Create fields (``Name``, ``Type``, ``Mandatory``); the created fields with ids."""
        route = self._route("customfields.create")
        return await self._call(route.name, envelope.records, envelope.list_body(route, fields),
                                companyId=company_id)

    async def edit_custom_field(self, company_id: str, field_id: str,
                                body: Mapping[str, Any]) -> dict[str, Any]:
        """Change a field's definition; the stored field."""
        return await self._call("customfield.edit", envelope.record, dict(body),
                                companyId=company_id, customFieldId=field_id)

    async def delete_custom_field(self, company_id: str, field_id: str) -> None:
        """Delete a custom field."""
        await self._call("customfield.delete", envelope.nothing, companyId=company_id,
                         customFieldId=field_id)

    async def post_custom_field_values(self, company_id: str, field_id: str,
                                       values: Sequence[Mapping[str, Any]], token: str = "") -> str:
        """Send ONE chunk of list values (``Code``, ``Name``); "" replaces the set. Next token."""
        route = self._route("customfield.values")
        return await self._call(route.name, envelope.continuation_token,
                                envelope.chunk_body(route, values, token),
                                companyId=company_id, customFieldId=field_id)

    # -- transactions -----------------------------------------------------------------------

    async def transaction_pages(
        self, company_id: str, *, status: str | None = STATUS_APPROVED,
        transaction_type: str | None = None, user_id: str | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of transactions (None filters are sent as NULL); stops at a short page."""
        route = self._route("transactions.list", param="pageNumber")
        size = route.page_size or 1
        for page in range(1, MAX_PAGES + 1):
            items = await self._call(route.name, envelope.records, pageNumber=page,
                                     companyId=company_id, userId=user_id, status=status,
                                     transactionType=transaction_type)
            if items:
                yield items
            if len(items) < size:
                return
        raise ApiError(f"{route.name} (companyId {company_id!r}): no short page after "
                       f"{MAX_PAGES} pages", route=route.name)

    async def transaction(self, transaction_id: str, *, user_id: str | None = None
                          ) -> dict[str, Any]:
        """One transaction in detail (lines, analysis, posting)."""
        return await self._call("transaction.detail", envelope.record,
                                transactionId=transaction_id, userId=user_id)

    async def create_transaction(self, company_id: str, body: Mapping[str, Any]
                                 ) -> dict[str, Any]:
        """Create a transaction (detail shape without ``Id``); the stored transaction."""
        return await self._call("transaction.create", envelope.record, dict(body),
                                companyId=company_id)

    async def edit_transaction(self, transaction_id: str, body: Mapping[str, Any]
                               ) -> dict[str, Any]:
        """Apply a partial edit; the stored transaction."""
        return await self._call("transaction.edit", envelope.record, dict(body),
                                transactionId=transaction_id)

    async def approve(self, transaction_id: str) -> dict[str, Any]:
        """Approve the transaction."""
        return await self.edit_transaction(transaction_id, {TRANSACTION_STATUS: STATUS_APPROVED})

    async def deny(self, transaction_id: str) -> dict[str, Any]:
        """Deny the transaction."""
        return await self.edit_transaction(transaction_id, {TRANSACTION_STATUS: STATUS_DENIED})

    async def record_journal(self, transaction_id: str, journal_number: str) -> dict[str, Any]:
        """Record the ERP's journal number against the transaction (idempotent for one number)."""
        return await self.edit_transaction(transaction_id, {JOURNAL_NUMBER: journal_number})
