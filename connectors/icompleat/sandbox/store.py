"""Record sets keyed by ``Code`` and the continuation tokens that extend them.

A :class:`RecordSet` is one company's list of one kind (or one custom field's values). Its
``generation`` counts the refreshes that replaced it: a token is bound to the generation it was
issued for, so a newer refresh invalidates every older token at once. Lists read in ``Code``
order (ordinal), which is what makes "a record inserted while paging" shift later pages.
Not thread-safe by itself: the state's lock guards every call.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from connectors.icompleat.sandbox.persist import Store
from connectors.icompleat.sandbox.wire import BAD_TOKEN, Record, reject

GENERATIONS = "generations"
TOKENS = "tokens"


class RecordSet:
    """Records by code, in code order, written through to ``store`` under ``scope``."""

    def __init__(self, scope: str, store: Store) -> None:
        self.scope = scope
        self._store = store
        self._records: dict[str, Record] = dict(store.items(scope))
        self.generation = int(store.get(GENERATIONS, scope) or 0)
        self._order: list[str] | None = None

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, code: object) -> bool:
        return code in self._records

    def __iter__(self) -> Iterator[Record]:
        """Copies of the records in code order."""
        return (dict(self._records[c]) for c in self._codes())

    def _codes(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self._records)
        return self._order

    def get(self, code: str) -> Record | None:
        """A copy of the record with ``code``, or None."""
        found = self._records.get(code)
        return dict(found) if found is not None else None

    def page(self, number: int, size: int) -> list[Record]:
        """Page ``number`` (from 1) of ``size`` records; empty past the end."""
        codes = self._codes()[(number - 1) * size: number * size]
        return [dict(self._records[c]) for c in codes]

    def merge(self, records: Iterable[Record]) -> None:
        """Add or replace each record by code (within one call, the last one wins)."""
        batch = {r["Code"]: dict(r) for r in records}
        self._records.update(batch)
        self._order = None
        self._store.put_many(self.scope, batch.items())

    def replace(self, records: Iterable[Record]) -> int:
        """Make ``records`` the whole set, starting a new generation; the new generation."""
        self._records.clear()
        self._store.clear(self.scope)
        self.generation += 1
        self._store.put(GENERATIONS, self.scope, self.generation)
        self.merge(records)
        return self.generation

    def remove(self, code: str) -> bool:
        """Delete the record with ``code``; False when there was none."""
        if self._records.pop(code, None) is None:
            return False
        self._order = None
        self._store.delete(self.scope, code)
        return True

    def drop(self) -> None:
        """Forget the set and its generation (the owner was deleted)."""
        self._records.clear()
        self._order = None
        self._store.clear(self.scope)
        self._store.delete(GENERATIONS, self.scope)


@dataclass(frozen=True)
class TokenEntry:
    """What a continuation token extends, and until when (epoch seconds)."""

    scope: str
    generation: int
    expires: float


class Tokens:
    """Continuation tokens; each use pushes its expiry ``ttl`` seconds further (sliding)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._entries = {k: TokenEntry(**v) for k, v in store.items(TOKENS)}

    def issue(self, target: RecordSet, now: float, ttl: float) -> str:
        """A new token appending to ``target``'s current generation."""
        self.purge(now)
        token = secrets.token_urlsafe(18)
        self._save(token, TokenEntry(target.scope, target.generation, now + ttl))
        return token

    def extend(self, token: str, target: RecordSet, now: float, ttl: float) -> None:
        """Check ``token`` appends to ``target`` now (ErrorCode 20 otherwise) and slide it."""
        entry = self._entries.get(token)
        if entry is None:
            raise reject(BAD_TOKEN, "ContinuationToken is unknown; start the set again with "
                                    "an empty ContinuationToken")
        if entry.expires <= now:
            raise reject(BAD_TOKEN, "ContinuationToken has expired; start the set again with "
                                    "an empty ContinuationToken")
        if entry.scope != target.scope:
            raise reject(BAD_TOKEN, "ContinuationToken belongs to another list; use the token "
                                    "this list returned")
        if entry.generation != target.generation:
            raise reject(BAD_TOKEN, "ContinuationToken belongs to a set replaced by a newer "
                                    "refresh; start the set again with an empty token")
        self._save(token, TokenEntry(entry.scope, entry.generation, now + ttl))

    def _save(self, token: str, entry: TokenEntry) -> None:
        self._entries[token] = entry
        self._store.put(TOKENS, token, {"scope": entry.scope, "generation": entry.generation,
                                        "expires": entry.expires})

    def purge(self, now: float) -> None:
        """Forget expired tokens (they answer 'unknown' from then on, still ErrorCode 20)."""
        for token in [t for t, e in self._entries.items() if e.expires <= now]:
            del self._entries[token]
            self._store.delete(TOKENS, token)

    def clear(self) -> None:
        """Forget every token."""
        self._entries.clear()
        self._store.clear(TOKENS)
