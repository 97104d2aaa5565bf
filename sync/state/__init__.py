"""icsync's state database (SQLite or PostgreSQL): models, Alembic migrations and the stores.

See :mod:`sync.state.store`. Imports the foundation only.
"""

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
