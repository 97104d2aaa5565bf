"""Named crash points for fault-injection tests: SIGKILL this process at a chosen boundary.

Set ``ICSYNC_CRASH_AT`` to ``name`` or ``name:N`` (the Nth time that point is reached, 1-based),
several separated by commas. Unset, :func:`crash_point` costs one dictionary lookup. The points in
use (see RELIABILITY.md): ``after_intent``, ``after_remote_call``, ``before_state_update``,
``mid_refresh`` (after chunk k is acknowledged), ``after_erp_commit`` (before the ledger update),
``before_writeback``, ``after_writeback``.

``ICSYNC_PAUSE_AT`` (same syntax) SIGSTOPs the process there instead, so a test can hold it at an
exact boundary past its lease and then SIGCONT it (RELIABILITY S16).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "ICSYNC_CRASH_AT"


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, nth = item.partition(":")
        points[name] = int(nth) if nth else 1
    return points


_ARMED = _parse(os.environ.get(ENV, ""))
_SEEN: Counter[str] = Counter()
PAUSE_ENV = "ICSYNC_PAUSE_AT"
_PAUSE = _parse(os.environ.get(PAUSE_ENV, ""))
_PAUSED: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """SIGKILL the process if ``name`` is armed and reached for the armed time.

    A point armed by ``ICSYNC_PAUSE_AT`` stops the process (SIGSTOP) instead, once.
    """
    if _PAUSE and name in _PAUSE:
        _PAUSED[name] += 1
        if _PAUSED[name] == _PAUSE[name]:
            os.kill(os.getpid(), signal.SIGSTOP)
    if not _ARMED or name not in _ARMED:
        return
    _SEEN[name] += 1
    if _SEEN[name] == _ARMED[name]:
        os.kill(os.getpid(), signal.SIGKILL)


def arm(spec: str) -> None:
    """Arm crash points in this process (tests of the mechanism itself)."""
    _ARMED.clear()
    _ARMED.update(_parse(spec))
    _SEEN.clear()
