"""Rows held back from a plan: rejected by validation, or refused by iCompleat and unchanged.

A held key is never created, edited or deleted (see :func:`sync.reference.rules.diff.diff`'s
``hold``). Rows
the validation rejects are quarantined with origin ``validation`` on every run and released as
soon as they pass. Rows iCompleat refused (origin ``remote``) stay held while their source
digest is the one refused and their status is ``open``; a changed source row, or an operator's
``retry``, releases them: they are sent again, and quarantined again if refused again.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sync.reference.apply import KindRun
from sync.reference.rules.findings import Rejection
from sync.state.rows import QuarantineEntry


def validation_entry(rejection: Rejection) -> QuarantineEntry:
    """The quarantine row of a rejection (a row without a key is named by its row number)."""
    key = rejection.key or f"row {rejection.row}"
    return QuarantineEntry(key=key, reason=rejection.reason, message=rejection.message,
                           field=rejection.field, origin="validation",
                           source_digest=rejection.source_digest)


async def record_rejections(run: KindRun, rejected: Sequence[Rejection]) -> None:
    """Quarantine this read's rejected rows; release those that pass now."""
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    entries = {e.key: e for e in map(validation_entry, rejected)}
    if entries:
        await run.db(store.quarantine, company, kind, list(entries.values()), fence=run.fence)
    stale = [q.key for q in await run.db(store.quarantined, company, kind)
             if q.origin == "validation" and q.key not in entries]
    if stale:
        await run.db(store.clear_quarantine, company, kind, stale, origin="validation",
                     fence=run.fence)


async def remote_holds(run: KindRun, frame: pd.DataFrame, *, release: bool) -> set[str]:
    """Keys iCompleat refused whose source row is unchanged and still ``open``; the other
    refused rows are released (their quarantine cleared) when ``release`` is true."""
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    refused = [q for q in await run.db(store.quarantined, company, kind, None)
               if q.origin == "remote"]
    digests = frame["_digest"] if len(frame) else pd.Series(dtype=object)
    held = {q.key for q in refused if q.status == "open" and q.key in digests.index
            and digests[q.key] == q.source_digest}
    released = [q.key for q in refused if q.key not in held]
    if released and release:
        await run.db(store.clear_quarantine, company, kind, released, origin="remote",
                     fence=run.fence)
    return held
