"""Fault switches per route, key rotation at request N, and the request log.

A :class:`Fault` is set for a route name of the routes table or for ``"*"`` (every route); a
route's own fault wins over ``"*"``. For each request the board draws one :class:`Decision` from
the fault (rates use the board's seeded random generator, so a run can be replayed). ``after``
lets the first N matching requests through untouched and ``times`` stops the fault after it has
fired N times, which is how "fail at chunk 2 of the refresh" is written.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from connectors.icompleat.sandbox.wire import Record

ANY_ROUTE = "*"
DROP = 0  # error_status 0: close the connection without an answer
CommitFail = Literal["500", "drop"]


@dataclass
class Fault:
    """One route's switches; every field off by default. Times are in seconds."""

    error_rate: float = 0.0          # answer error_status before doing anything
    error_status: int = 500          # 0 = drop the connection instead
    commit_then_fail: CommitFail | None = None  # apply the write, then answer 500 or drop
    commit_rate: float = 1.0
    latency: float = 0.0             # wait before answering
    hang: bool = False               # never answer (until the fault is cleared or the client goes)
    throttle_rate: float = 0.0       # answer 429 ...
    retry_after: float | None = None  # ... with this Retry-After, or none
    throttle_body_status: int | None = None  # ... or this status with {"statusCode": 429}
    change_after_page: int | None = None  # after serving this page of a list, change the list
    change_insert: list[Record] = field(default_factory=list)
    change_remove: list[str] = field(default_factory=list)
    after: int = 0                   # let this many matching requests through first
    times: int | None = None         # fire at most this many times, then switch off

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """A fault from the admin API's JSON; ValueError naming an unknown switch."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault switches {unknown}; known: {sorted(known)}")
        fault = cls(**data)
        if fault.commit_then_fail not in (None, "500", "drop"):
            raise ValueError("commit_then_fail must be '500', 'drop' or null")
        return fault

    def to_json(self) -> dict[str, Any]:
        """The fault as the admin API shows it."""
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """What to do to one request."""

    latency: float = 0.0
    hang: bool = False
    throttle: bool = False
    retry_after: float | None = None
    throttle_body_status: int | None = None
    error_status: int | None = None
    commit_then_fail: CommitFail | None = None

    @property
    def fired(self) -> bool:
        """True when the request is treated differently from a clean one."""
        return self != Decision()


@dataclass
class _Armed:
    fault: Fault
    seen: int = 0
    fired: int = 0


@dataclass(frozen=True)
class Rotation:
    """Replace ``tenant_id``'s key with ``new_key`` when API request ``at_request`` arrives."""

    tenant_id: str
    at_request: int
    new_key: str = field(repr=False)


@dataclass(frozen=True)
class ListChange:
    """A one-shot change to a list, applied right after a page of it was served."""

    insert: list[Record]
    remove: list[str]


class FaultBoard:
    """The switches of one sandbox; safe to set from any thread."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, _Armed] = {}
        self._rotations: list[Rotation] = []
        self._random = random.Random(seed)
        self._requests = 0

    def set(self, route: str, fault: Fault | None = None, **switches: Any) -> Fault:
        """Arm ``fault`` (or one built from ``switches``) for ``route`` or ``"*"``."""
        armed = fault if fault is not None else Fault.from_json(switches)
        with self._lock:
            self._armed[route] = _Armed(armed)
        return armed

    def clear(self, route: str | None = None) -> None:
        """Disarm ``route``'s fault, or every fault, rotation and the request count."""
        with self._lock:
            if route is None:
                self._armed.clear()
                self._rotations.clear()
                self._requests = 0
            else:
                self._armed.pop(route, None)

    def seed(self, value: int) -> None:
        """Reseed the random draws, to replay a run."""
        with self._lock:
            self._random.seed(value)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every armed fault by route, with how often it was seen and fired."""
        with self._lock:
            return {route: {**a.fault.to_json(), "seen": a.seen, "fired": a.fired}
                    for route, a in self._armed.items()}

    def rotate_key_at(self, tenant_id: str, at_request: int, new_key: str) -> None:
        """From API request number ``at_request`` (counted from 1) on, only ``new_key`` works."""
        with self._lock:
            self._rotations.append(Rotation(tenant_id, at_request, new_key))

    def arrive(self) -> list[Rotation]:
        """Count one API request; the rotations that take effect with it (each once)."""
        with self._lock:
            self._requests += 1
            due = [r for r in self._rotations if r.at_request <= self._requests]
            self._rotations = [r for r in self._rotations if r not in due]
        return due

    @property
    def requests(self) -> int:
        """API requests counted since the faults were last cleared."""
        return self._requests

    def still_hangs(self, route: str) -> bool:
        """True while a hang is armed for ``route`` (its own fault, or ``"*"``)."""
        with self._lock:
            armed = self._armed.get(route) or self._armed.get(ANY_ROUTE)
            return armed is not None and armed.fault.hang

    def decide(self, route: str) -> Decision:
        """Draw what happens to one request of ``route``."""
        with self._lock:
            armed = self._armed.get(route) or self._armed.get(ANY_ROUTE)
            if armed is None:
                return Decision()
            armed.seen += 1
            if armed.seen <= armed.fault.after:
                return Decision()
            if armed.fault.times is not None and armed.fired >= armed.fault.times:
                return Decision()
            decision = self._draw(armed.fault)
            armed.fired += decision.fired
            return decision

    def _draw(self, f: Fault) -> Decision:
        roll = self._random.random
        throttle = f.throttle_rate > 0 and roll() < f.throttle_rate
        error = f.error_rate > 0 and roll() < f.error_rate
        commit = f.commit_then_fail is not None and roll() < f.commit_rate
        return Decision(
            latency=f.latency, hang=f.hang, throttle=throttle, retry_after=f.retry_after,
            throttle_body_status=f.throttle_body_status if throttle else None,
            error_status=f.error_status if error else None,
            commit_then_fail=f.commit_then_fail if commit else None)

    def take_list_change(self, route: str, page: int) -> ListChange | None:
        """The change armed for ``route`` after ``page``, once; the switch then goes off."""
        with self._lock:
            armed = self._armed.get(route)
            if armed is None or armed.fault.change_after_page != page:
                return None
            fault = armed.fault
            change = ListChange(list(fault.change_insert), list(fault.change_remove))
            fault.change_after_page, fault.change_insert, fault.change_remove = None, [], []
            return change


@dataclass(frozen=True)
class LogEntry:
    """One request as the sandbox saw it (no headers, so no key)."""

    seq: int
    at: float
    method: str
    path: str
    route: str
    status: int
    fault: str = ""
    arrived: float | None = None  # when the request reached the sandbox (a gateway counts this)


class RequestLog:
    """Every request, with counts per route and status (status 0: no answer was given)."""

    def __init__(self, keep: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LogEntry] = deque(maxlen=keep)
        self._counts: Counter[tuple[str, int]] = Counter()
        self._seq = 0

    def add(self, at: float, method: str, path: str, route: str, status: int,
            fault: str = "", arrived: float | None = None) -> LogEntry:
        """Record one request (``at``: when it was answered; ``arrived``: when it came in)."""
        with self._lock:
            self._seq += 1
            entry = LogEntry(self._seq, at, method, path, route, status, fault, arrived)
            self._entries.append(entry)
            self._counts[(route, status)] += 1
        return entry

    def entries(self, route: str | None = None) -> list[LogEntry]:
        """The kept entries, oldest first, optionally of one route."""
        with self._lock:
            return [e for e in self._entries if route is None or e.route == route]

    def counts(self) -> dict[str, dict[int, int]]:
        """``{route: {status: count}}`` over every request since the last clear."""
        with self._lock:
            result: dict[str, dict[int, int]] = {}
            for (route, status), n in sorted(self._counts.items()):
                result.setdefault(route, {})[status] = n
            return result

    def count(self, route: str | None = None, status: int | None = None) -> int:
        """How many requests matched ``route`` and ``status`` (None: any)."""
        with self._lock:
            return sum(n for (r, s), n in self._counts.items()
                       if (route is None or r == route) and (status is None or s == status))

    def clear(self) -> None:
        """Forget every entry and count."""
        with self._lock:
            self._entries.clear()
            self._counts.clear()
