"""icsync's state database (SQLite or PostgreSQL): see :mod:`sync.state.store`."""

from sync.state.rows import (
    Fence,
    LeaseRow,
    LedgerRow,
    OperationRow,
    QuarantineEntry,
    QuarantineRow,
    RefreshRow,
    RunRow,
)
from sync.state.store import StateStore

__all__ = [
    "Fence", "LeaseRow", "LedgerRow", "OperationRow", "QuarantineEntry", "QuarantineRow",
    "RefreshRow", "RunRow", "StateStore",
]
