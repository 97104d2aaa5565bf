"""Named crash points for fault-injection tests: SIGKILL this process at a chosen boundary.

Set ``ICSYNC_CRASH_AT`` to ``name`` or ``name:N`` (the Nth time that point is reached, 1-based),
several separated by commas. Unset, :func:`crash_point` costs one dictionary lookup. The points in
use (see RELIABILITY.md): ``after_intent``, ``after_remote_call``, ``before_state_update``,
``mid_refresh`` (after chunk k is acknowledged), ``after_erp_commit`` (before the ledger update),
``before_writeback``, ``after_writeback``.
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


def crash_point(name: str) -> None:
    """SIGKILL the process if ``name`` is armed and reached for the armed time."""
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
