"""Refresh: send a kind's complete set in chunks chained by continuation tokens.

The first chunk (no token) replaces iCompleat's live list at once, so until the last chunk lands
a PARTIAL set is live. A refresh marker is therefore open from before the first chunk until the
remote copy holds the new set; each acknowledged chunk moves it on (in the same step that closes
the chunk's operation), so the next start finishes an interrupted refresh first: from the stored
token when the set is unchanged and the token still valid, else from the start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from sync.foundation import clock
from sync.foundation.crashpoints import crash_point
from sync.foundation.entities import chunked
from sync.foundation.errors import ApiError, AuthRejected, BadContinuationToken, OutcomeUnknown
from sync.reference.apply import (
    TOKEN_TTL,
    Ack,
    ApplyOutcome,
    KindRun,
    Records,
    chunk_size,
    keys_digest,
    send_rows,
)
from sync.state.rows import RefreshRow


def resume_point(marker: RefreshRow | None, set_hash: str, total: int) -> tuple[int, str]:
    """(chunks already sent, token) to continue an open refresh of the SAME set with a token
    still inside its lifetime; (0, "") means start the complete set again."""
    if marker is None or marker.plan_hash != set_hash or marker.total_chunks != total:
        return 0, ""
    if marker.chunks_sent == 0 or not marker.last_token or marker.token_expires_at is None:
        return 0, ""
    if clock.as_utc(marker.token_expires_at) <= clock.utcnow() + timedelta(minutes=1):
        return 0, ""
    return marker.chunks_sent, marker.last_token


async def apply_refresh(run: KindRun, keys: Sequence[str], records: Records,
                        digests: Mapping[str, str], marker: RefreshRow | None,
                        *, restarted: bool = False) -> ApplyOutcome:
    """Send the complete set (``keys`` in order) in chunks chained by continuation tokens.

    A refresh marker is open from before the first chunk until the remote copy holds the new
    set, so a run that dies half way is finished by the next one (resumed from the stored token
    when the set is unchanged and the token still valid, else sent again from the start).
    """
    store, name, kind = run.rt.store, run.company.name, run.kind.name
    # An empty set is still one call: it empties the remote list.
    chunks = chunked(keys, chunk_size(run)) or [[]]
    set_hash = keys_digest(keys, digests)
    start, token = resume_point(marker, set_hash, len(chunks))
    if start == 0:
        await run.db(store.begin_refresh, name, kind, total_chunks=len(chunks),
                     plan_hash=set_hash, fence=run.fence)
    for index in range(start, len(chunks)):
        try:
            token = await send_rows(run, chunks[index], records, digests, token, op="refresh",
                                    ack=_advance(run, chunks[index], index))
        except BadContinuationToken:
            if restarted:
                raise
            return await apply_refresh(run, keys, records, digests, None, restarted=True)
        except OutcomeUnknown:
            return ApplyOutcome(completed=False)
        except AuthRejected:
            raise
        except ApiError as exc:
            run.not_applied(exc, count=0)
            return ApplyOutcome(stopped=True, completed=False)
        marker = await run.db(_marker, run)
        if marker is not None and marker.chunks_sent <= index:  # its last rows were refused
            await run.db(store.advance_refresh, name, kind, chunks_sent=index + 1, token=token,
                         token_expires_at=clock.utcnow() + TOKEN_TTL, fence=run.fence)
        crash_point("mid_refresh")
    await finish_refresh(run, keys, records, digests, token)
    return ApplyOutcome()


def _advance(run: KindRun, chunk: list[str], index: int) -> Ack:
    """The ack of a refresh chunk: move the marker on once the chunk's last rows landed."""
    def ack(acked: list[str], token: str) -> None:
        if not chunk or acked[-1:] == chunk[-1:]:
            run.rt.store.advance_refresh(run.company.name, run.kind.name, chunks_sent=index + 1,
                                         token=token, token_expires_at=clock.utcnow() + TOKEN_TTL,
                                         fence=run.fence)
    return ack


def _marker(run: KindRun) -> RefreshRow | None:
    rows = run.rt.store.open_refreshes(run.company.name)
    return next((r for r in rows if r.kind == run.kind.name), None)


async def finish_refresh(run: KindRun, keys: Sequence[str], records: Records,
                         digests: Mapping[str, str], token: str) -> None:
    """The new set is live: make it the remote copy, keep its token for appends, close the
    marker."""
    store, name, kind = run.rt.store, run.company.name, run.kind.name
    rows = [(k, records[k], digests[k]) for k in keys if k not in run.rejected_keys]
    if token or not keys:  # "" after a non-empty set: every row was refused, nothing landed
        await run.db(store.replace_remote, name, kind, rows, fence=run.fence)
    if token:
        await run.db(store.set_append_token, name, kind, token, clock.utcnow() + TOKEN_TTL,
                     fence=run.fence)
    await run.db(store.end_refresh, name, kind, fence=run.fence)
