"""Schedules: an interval ("30s", "15m", "1h", "1h30m", "2d") or a 5-field cron expression.

Each company configures ``schedules = { reference = "15m", readback = "0 2 * * *",
transactions = "5m", timezone = "UTC" }``; :func:`build_trigger` turns one value into an
APScheduler trigger, and :func:`slots_between` lists the fire times in a window (the daemon uses
it to count missed runs without waiting for them).

The time rules, which hold on every host whatever its local zone:

- Intervals are elapsed time: "1h" means every 3600 seconds, across DST changes and zones,
  aligned on :data:`INTERVAL_ANCHOR` (2000-01-01T00:00Z), so "15m" fires at :00, :15, :30, :45.
- Cron expressions are read in ``timezone`` (UTC unless one is given) on the wall clock there.
- DST, for a cron expression in a zone with summer time:
  * a wall time that does not exist (the spring-forward gap, e.g. 01:30 in London on the last
    Sunday of March) fires once, as late as the gap is long (at 02:30 local time that day);
  * a wall time that happens twice (the fall-back hour) fires ONCE, at its first occurrence;
    the repeated hour's slots are skipped, so a job never runs twice for one wall time;
  * fire times always move forward in real time (APScheduler 3.x can otherwise repeat or go back
    a slot inside the repeated hour, which would loop; :class:`WallClockCronTrigger` prevents it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync.foundation.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^(?:\d+[smhd])+$")
_PART = re.compile(r"(\d+)([smhd])")
_MAX_STEPS = 10_000  # bound on every walk through fire times
MAX_INTERVAL = timedelta(days=366)
_JOBS = ("reference", "readback", "transactions")
# Intervals count from one fixed instant, so every instance and every restart agrees on the
# slots ("15m" fires at :00, :15, :30, :45 UTC): a lease decides who runs a slot, and a slot
# another instance already ran is recognised as done.
INTERVAL_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)


def parse_interval(text: str) -> timedelta | None:
    """The interval ``text`` spells ("30s", "15m", "1h30m"), or None when it is not one."""
    compact = text.strip().lower().replace(" ", "")
    if not _INTERVAL.match(compact):
        return None
    if len(compact) > 40:  # "99999999999999999999h" is no schedule; never overflow on it
        return MAX_INTERVAL * 2
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    return timedelta(seconds=min(seconds, int(MAX_INTERVAL.total_seconds()) * 2))


def zone(name: str, *, key: str = "schedules.timezone") -> tzinfo:
    """The IANA time zone ``name``; ConfigError naming ``key`` when it is unknown."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}; use an IANA name such as "
                          "'Europe/London' or 'UTC'", key=key) from None


class WallClockCronTrigger(CronTrigger):  # type: ignore[misc]
    """A cron trigger whose fire times strictly increase and never repeat a wall time.

    See the module docstring for the DST rule it implements.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime,
    ) -> datetime | None:
        """The first fire time after ``previous_fire_time`` and not before ``now``."""
        floor = now if previous_fire_time is None else max(now, _after(previous_fire_time))
        for _ in range(_MAX_STEPS):
            found: datetime | None = super().get_next_fire_time(None, floor)
            if found is None:
                return None
            found = datetime.fromtimestamp(found.timestamp(), self.timezone)
            if found.timestamp() >= floor.timestamp() and not _repeated(found):
                return found
            floor = _after(max(found, floor, key=datetime.timestamp))
        return None


def _after(moment: datetime) -> datetime:
    """One second later in REAL time, with the fold set right (plain + ignores DST)."""
    tz = moment.tzinfo or UTC
    return datetime.fromtimestamp(moment.timestamp() + 1, tz)


def _repeated(moment: datetime) -> bool:
    """True for the second occurrence of a wall time in a fall-back hour."""
    if moment.fold == 0:
        return False
    return moment.replace(fold=0).utcoffset() != moment.utcoffset()


def build_trigger(text: str, *, timezone: str = "UTC", key: str = "schedules",
                  jitter: float | None = None) -> BaseTrigger:
    """An APScheduler trigger for an interval or a 5-field cron expression.

    ``key`` names the setting in errors; ``jitter`` (seconds) spreads each fire time.
    """
    interval = parse_interval(text)
    if interval is not None:
        if interval.total_seconds() < 1:
            raise ConfigError(f"interval {text!r} is shorter than one second", key=key)
        if interval > MAX_INTERVAL:
            raise ConfigError(f"interval {text[:40]!r} is longer than {MAX_INTERVAL.days} days; "
                              "use a cron expression for rare runs", key=key)
        return IntervalTrigger(seconds=interval.total_seconds(), start_date=INTERVAL_ANCHOR,
                               timezone=UTC, jitter=_jitter(jitter))
    tz = zone(timezone, key=f"{key.rsplit('.', 1)[0]}.timezone")
    return _cron(text, tz, key=key, jitter=jitter)


def _cron(text: str, tz: tzinfo, *, key: str, jitter: float | None) -> BaseTrigger:
    fields = text.split()
    if len(fields) != 5:
        raise ConfigError(f"{text!r} is neither an interval such as '15m' nor a 5-field cron "
                          "expression such as '0 2 * * *'", key=key)
    minute, hour, day, month, dow = fields
    try:
        return WallClockCronTrigger(minute=minute, hour=hour, day=day, month=month,
                                    day_of_week=dow, timezone=tz, jitter=_jitter(jitter))
    except ValueError as exc:
        raise ConfigError(f"bad cron expression {text!r}: {exc}", key=key) from None


def checked_trigger(text: str, *, timezone: str = "UTC", key: str = "schedules",
                    now: datetime | None = None) -> BaseTrigger:
    """:func:`build_trigger`, refusing a schedule that never fires ("0 0 31 2 *")."""
    trigger = build_trigger(text, timezone=timezone, key=key)
    if trigger.get_next_fire_time(None, now or datetime.now(UTC)) is None:
        raise ConfigError(f"{text!r} never fires (no such date); correct the day and month",
                          key=key)
    return trigger


def validate_schedules(companies: Sequence[Any]) -> int:
    """Check every company's schedules as the daemon builds them; the number checked.

    ``icsync run`` and ``icsync check`` both call this, so they accept exactly the same values.
    """
    checked = 0
    for i, company in enumerate(companies):
        schedules = company.schedules
        for job in _JOBS:
            text = getattr(schedules, job)
            if text is not None:
                checked_trigger(text, timezone=schedules.timezone,
                                key=f"companies.{i}.schedules.{job}")
                checked += 1
    return checked


def _jitter(seconds: float | None) -> int | None:
    return int(seconds) if seconds and seconds >= 1 else None


def fire_times(trigger: BaseTrigger, start: datetime) -> Iterator[datetime]:
    """The trigger's fire times from ``start`` on, in order (bounded by an internal cap)."""
    previous: datetime | None = None
    now = start
    for _ in range(_MAX_STEPS):
        moment: Any = trigger.get_next_fire_time(previous, now)
        if moment is None:
            return
        yield moment
        previous, now = moment, moment


def slots_between(trigger: BaseTrigger, after: datetime, until: datetime) -> list[datetime]:
    """Fire times strictly after ``after`` and no later than ``until`` (the missed slots)."""
    slots: list[datetime] = []
    for moment in fire_times(trigger, after):
        if moment.timestamp() > until.timestamp():
            break
        if moment.timestamp() > after.timestamp():
            slots.append(moment)
    return slots


def unjittered(trigger: BaseTrigger) -> BaseTrigger:
    """The same schedule without jitter, for counting slots deterministically."""
    if isinstance(trigger, IntervalTrigger):
        return IntervalTrigger(seconds=trigger.interval.total_seconds(),
                               start_date=trigger.start_date, timezone=UTC)
    if isinstance(trigger, CronTrigger):
        clone = WallClockCronTrigger.__new__(WallClockCronTrigger)
        clone.__setstate__(trigger.__getstate__())
        clone.jitter = None
        return clone
    return trigger


class ClockWatch:
    """Notices steps of the host's wall clock by comparing it with the monotonic clock.

    The daemon samples it every second; a difference of ``threshold`` seconds or more between
    how far the wall clock moved and how far real time moved is a step (an NTP correction, a
    manual change, a VM resumed). Schedules are then recomputed from the new time: after a step
    back the next run is not delayed by the step, after a step forward the skipped wall time is
    not counted as missed runs. Leases never depend on this clock (they use the database's).
    """

    def __init__(self, wall: float, monotonic: float, threshold: float = 5.0) -> None:
        self.wall, self.monotonic, self.threshold = wall, monotonic, threshold

    def step(self, wall: float, monotonic: float) -> float | None:
        """The step in seconds since the last sample (positive: forward), or None."""
        moved = (wall - self.wall) - (monotonic - self.monotonic)
        self.wall, self.monotonic = wall, monotonic
        return moved if abs(moved) >= self.threshold else None
