"""The client-side request budget and concurrency limit, shared per credential in a process.

iCompleat publishes no quota; the real client held itself to 50 requests in any 60 seconds. A
:class:`Limiter` enforces a sliding-window budget and a cap on requests in flight, and a 429 with
Retry-After pauses EVERY caller sharing it until then. Clients with the same base URL, tenant and
key share one limiter through :data:`LIMITERS`, keyed by a salted hash of the key (never the key).

Time comes from a :class:`Clock` (``time.monotonic`` by default) so tests can drive it. A limiter
serves one event loop at a time; it binds to none, so a later loop (the next test) may reuse it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from sync.foundation.secrets import Secret

WINDOW_SECONDS = 60.0


class Clock(Protocol):
    """Monotonic seconds and a way to wait for them."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        """Seconds since an arbitrary point; never steps with the wall clock."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running loop."""
        await asyncio.sleep(max(0.0, seconds))


MONOTONIC = MonotonicClock()


class Limiter:
    """A request budget (``requests_per_minute``, 0 = none) and a concurrency cap (0 = none)."""

    def __init__(
        self, requests_per_minute: int, max_concurrency: int, clock: Clock = MONOTONIC,
        window_seconds: float = WINDOW_SECONDS,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.max_concurrency = max_concurrency
        self.clock = clock
        self.window_seconds = window_seconds
        self._sent: deque[float] = deque()
        self._paused_until = float("-inf")
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the concurrent slots and spend one request of the budget."""
        await self._enter()
        try:
            await self._spend()
            yield
        finally:
            self._leave()

    def pause(self, seconds: float) -> None:
        """Start no request, from any caller, for ``seconds`` (a Retry-After); never shortens."""
        self._paused_until = max(self._paused_until, self.clock.now() + max(0.0, seconds))

    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when not paused)."""
        return max(0.0, self._paused_until - self.clock.now())

    def wait_time(self) -> float:
        """Seconds before one more request may start (pause and budget)."""
        now = self.clock.now()
        while self._sent and self._sent[0] <= now - self.window_seconds:
            self._sent.popleft()
        budget = 0.0
        if 0 < self.requests_per_minute <= len(self._sent):
            budget = self._sent[-self.requests_per_minute] + self.window_seconds - now
        return max(budget, self._paused_until - now, 0.0)

    def snapshot(self) -> dict[str, float]:
        """Requests in flight, queued, started in the window, and seconds of pause left."""
        self.wait_time()  # drops requests that left the window
        return {"in_flight": self._in_flight, "queued": len(self._waiters),
                "in_window": len(self._sent), "paused_for": self.paused_for()}

    async def _spend(self) -> None:
        # Rechecked after every sleep: another caller may have spent the budget meanwhile.
        while (wait := self.wait_time()) > 0:
            await self.clock.sleep(wait)
        self._sent.append(self.clock.now())

    async def _enter(self) -> None:
        if self.max_concurrency <= 0 or (self._in_flight < self.max_concurrency
                                         and not self._waiters):
            self._in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by _leave, which hands its slot over
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._leave()  # the slot was handed to us as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def _leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1


class LimiterRegistry:
    """One limiter per (base URL, tenant, key) in this process; the key is only ever hashed."""

    def __init__(self) -> None:
        self._salt = os.urandom(16)
        self._limiters: dict[tuple[str, str, str], Limiter] = {}
        self._lock = threading.Lock()

    def key(self, base_url: str, tenant_id: str, api_key: Secret) -> tuple[str, str, str]:
        """The sharing key: normalised URL and tenant, and a salted hash of the key."""
        digest = hashlib.blake2b(api_key.reveal().encode(), key=self._salt, digest_size=16)
        return base_url.rstrip("/").casefold(), tenant_id.casefold(), digest.hexdigest()

    def get(
        self, base_url: str, tenant_id: str, api_key: Secret, *, requests_per_minute: int,
        max_concurrency: int, clock: Clock = MONOTONIC,
    ) -> Limiter:
        """The shared limiter of these credentials; the first caller's limits and clock win."""
        key = self.key(base_url, tenant_id, api_key)
        with self._lock:
            if key not in self._limiters:
                self._limiters[key] = Limiter(requests_per_minute, max_concurrency, clock)
            return self._limiters[key]

    def clear(self) -> None:
        """Forget every limiter (tests, or after a configuration reload)."""
        with self._lock:
            self._limiters.clear()


LIMITERS = LimiterRegistry()
