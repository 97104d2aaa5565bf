"""The interfaces between the engine and the outside world, with their contracts.

Sources and sinks are blocking (database drivers, pandas readers); the engine calls them off the
event loop with ``asyncio.to_thread``. Each Protocol has an in-memory implementation in
``connectors.memory`` for tests and the demo, and one contract suite in ``tests/connectors`` that
every implementation passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pandas is imported by the sources that make frames, not by every command
    import pandas as pd

    from connectors.icompleat.models import Transaction


class ConfiguredCompany(Protocol):
    """What :meth:`CompanyRef.of` takes from a ``[[companies]]`` entry."""

    @property
    def name(self) -> str: ...
    @property
    def company_id(self) -> str: ...
    @property
    def params(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class CompanyRef:
    """Which company a read or a posting is for: the configured name and iCompleat's id, plus
    the company's own query parameters (``[companies.params]``: how the ERP numbers it)."""

    name: str
    company_id: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def of(cls, company: ConfiguredCompany) -> CompanyRef:
        """The reference of a configured company (``[[companies]]``: its name, company_id
        and params)."""
        return cls(company.name, company.company_id, company.params)


@dataclass(frozen=True)
class SourceRead:
    """What a source returned for one kind.

    ``frame`` has the source's OWN column names (mapping happens in normalisation), every value
    as read. ``complete`` is False when the source knows it returned only part of the rows (a
    paged export that stopped early); the guard then refuses deletes and refreshes.
    """

    frame: pd.DataFrame
    complete: bool = True
    detail: str = ""


@runtime_checkable
class Source(Protocol):
    """An ERP's reference data, read one kind for one company at a time.

    Contract:
    - ``read`` returns every row the ERP holds for that kind and company, or raises
      :class:`sync.foundation.errors.SourceError`: a failed read is NEVER an empty frame.
    - A kind with no configuration in this source raises
      :class:`sync.foundation.errors.ConfigError`.
    - Parameters (the company) are bound, never formatted into a query.
    - ``kinds()`` names the kinds this source is configured for.
    """

    name: str

    def kinds(self) -> tuple[str, ...]:
        """The kinds this source can read."""
        ...

    def read(self, kind: str, company: CompanyRef) -> SourceRead:
        """All rows of ``kind`` for ``company``; SourceError when that is not possible."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@dataclass(frozen=True)
class Posting:
    """An ERP entry for one iCompleat transaction; ``created`` is False when it already existed."""

    transaction_id: str
    journal_number: str
    created: bool


@runtime_checkable
class TransactionSink(Protocol):
    """Where approved transactions become ERP entries, exactly once.

    Contract:
    - ``find`` returns the posting already made for an iCompleat transaction id, or None.
    - ``post`` is find-or-create keyed on the iCompleat id: called twice (or concurrently, or after
      a crash between the ERP commit and the caller's bookkeeping) it makes ONE entry and returns
      the same journal number every time (``created`` True only for the call that made it).
    - The ERP refusing the document raises :class:`sync.foundation.errors.SinkRejected`; any
      other failure raises :class:`sync.foundation.errors.SinkError`, and then no entry was made
      or ``find`` sees it.
    """

    name: str

    def find(self, transaction_id: str) -> Posting | None:
        """The existing posting for ``transaction_id``, or None."""
        ...

    def post(self, transaction: Transaction, company: CompanyRef) -> Posting:
        """Post ``transaction`` unless already posted; the posting either way."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


def source_columns(frame: pd.DataFrame) -> Mapping[str, str]:
    """Map each casefolded column name of ``frame`` to the name as the source spelled it."""
    return {str(c).casefold(): str(c) for c in frame.columns}
