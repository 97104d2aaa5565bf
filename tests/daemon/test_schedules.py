"""Schedules: intervals, cron in UTC or a zone, the DST rule, missed-slot counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from sync.daemon.schedules import (
    WallClockCronTrigger,
    build_trigger,
    fire_times,
    parse_interval,
    slots_between,
    unjittered,
)
from sync.foundation.errors import ConfigError

LONDON = ZoneInfo("Europe/London")


def _times(text: str, start: datetime, n: int, tz: str = "UTC") -> list[datetime]:
    return list(islice(fire_times(build_trigger(text, timezone=tz), start), n))


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1h30m", 5400), (" 5M ", 300)])
def test_parse_interval(text: str, seconds: int) -> None:
    """Interval spellings give their number of seconds."""
    assert parse_interval(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0 2 * * *", "15", "m", "1x", ""])
def test_parse_interval_rejects_other_text(text: str) -> None:
    """Cron expressions and nonsense are not intervals."""
    assert parse_interval(text) is None


def test_interval_is_elapsed_time_across_dst() -> None:
    """An interval trigger keeps its spacing in real time over a DST change."""
    trigger = build_trigger("1h")
    start = datetime(2024, 3, 31, 0, 0, tzinfo=UTC)
    times = list(islice(fire_times(trigger, start), 4))
    gaps = {(b - a).total_seconds() for a, b in pairwise(times)}
    assert gaps == {3600.0}


def test_cron_defaults_to_utc() -> None:
    """A cron expression without a zone fires on UTC wall time."""
    times = _times("0 2 * * *", datetime(2024, 6, 1, 3, tzinfo=UTC), 2)
    assert times[0] == datetime(2024, 6, 2, 2, tzinfo=UTC)
    assert times[0].utcoffset() == timedelta(0)


def test_cron_in_a_zone_follows_local_wall_time() -> None:
    """In London a 02:00 job is 01:00 UTC in summer and 02:00 UTC in winter."""
    summer = _times("0 2 * * *", datetime(2024, 7, 1, tzinfo=UTC), 1, "Europe/London")[0]
    winter = _times("0 2 * * *", datetime(2024, 12, 1, tzinfo=UTC), 1, "Europe/London")[0]
    assert summer.astimezone(UTC).hour == 1
    assert winter.astimezone(UTC).hour == 2


def test_spring_forward_gap_fires_once_after_the_gap() -> None:
    """01:30 does not exist on 31 March 2024 in London: it fires once, at 02:30 BST."""
    times = _times("30 1 * * *", datetime(2024, 3, 30, 12, tzinfo=UTC), 3, "Europe/London")
    assert [t.astimezone(LONDON).isoformat() for t in times] == [
        "2024-03-31T02:30:00+01:00", "2024-04-01T01:30:00+01:00", "2024-04-02T01:30:00+01:00"]


def test_fall_back_repeated_time_fires_once() -> None:
    """01:30 happens twice on 27 October 2024 in London: it fires at the first one only."""
    times = _times("30 1 * * *", datetime(2024, 10, 26, 12, tzinfo=UTC), 3, "Europe/London")
    assert [t.astimezone(UTC).isoformat() for t in times] == [
        "2024-10-27T00:30:00+00:00", "2024-10-28T01:30:00+00:00", "2024-10-29T01:30:00+00:00"]


def test_fall_back_every_half_hour_moves_forward_and_never_repeats() -> None:
    """A */30 schedule over the repeated hour never goes back or repeats a wall time."""
    times = _times("*/30 * * * *", datetime(2024, 10, 26, 23, 50, tzinfo=UTC), 8,
                   "Europe/London")
    stamps = [t.timestamp() for t in times]
    assert stamps == sorted(set(stamps))
    walls = [t.astimezone(LONDON).replace(tzinfo=None) for t in times]
    assert len(walls) == len(set(walls))


def test_wall_clock_trigger_steps_past_the_second_occurrence() -> None:
    """Asked after the first 01:30 of a fall-back day, the next fire is the following day."""
    fixed = WallClockCronTrigger(minute="30", hour="1", timezone=LONDON)
    first = datetime(2024, 10, 27, 1, 30, tzinfo=LONDON, fold=0)
    after = fixed.get_next_fire_time(first, first)
    assert after is not None
    assert after.astimezone(UTC) == datetime(2024, 10, 28, 1, 30, tzinfo=UTC)


def test_slots_between_counts_missed_slots() -> None:
    """Three hourly slots pass while the daemon is down from 00:30 to 03:30."""
    trigger = build_trigger("0 * * * *")
    slots = slots_between(trigger, datetime(2024, 1, 1, 0, 30, tzinfo=UTC),
                          datetime(2024, 1, 1, 3, 30, tzinfo=UTC))
    assert [s.hour for s in slots] == [1, 2, 3]


def test_unjittered_keeps_the_schedule() -> None:
    """Removing jitter keeps a cron trigger's fields and timezone."""
    plain = unjittered(build_trigger("0 2 * * *", timezone="Europe/London", jitter=30))
    assert plain.jitter is None
    first = next(iter(fire_times(plain, datetime(2024, 12, 1, tzinfo=UTC))))
    assert first == datetime(2024, 12, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(("text", "tz", "key"), [
    ("0 2 * *", "UTC", "companies.0.schedules.readback"),
    ("99 2 * * *", "UTC", "companies.0.schedules.readback"),
    ("0 2 * * *", "Mars/Olympus", "companies.0.schedules.timezone"),
    ("0s", "UTC", "companies.0.schedules.readback"),
])
def test_bad_schedules_name_the_key(text: str, tz: str, key: str) -> None:
    """A bad expression or zone is a ConfigError naming the setting."""
    with pytest.raises(ConfigError) as err:
        build_trigger(text, timezone=tz, key="companies.0.schedules.readback")
    assert err.value.key == key
