"""Local calendars for buckets: UTC offsets over a range, and bucket starts as UTC instants.

DuckDB could convert every call with ICU, but that costs a time-zone lookup per row and
uses ICU's copy of the tz database. Instead the few offset changes inside the queried
range are found here (with Python's ``zoneinfo``, the same database pydantic validated
the zone name against) and handed to SQL as bound parameters; SQL then buckets with
integer arithmetic. Bucket starts of day and longer steps come back as local wall-clock
times and are turned into instants here, again with ``zoneinfo``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
_SCAN_STEP_SECONDS = 6 * 3_600
"""Offsets are sampled this far apart; tz rules never change twice within six hours."""

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def offset_segments(zone: str, start_us: int, end_us: int) -> tuple[tuple[int, int], ...]:
    """``((from_us, offset_us), …)``: the UTC offset in force from each instant on, over the range.

    The first segment starts at or before ``start_us``; later ones start exactly at a
    transition. The range is widened to whole days so that nearby queries share a cache
    entry.
    """
    first_day = start_us // US_PER_DAY
    last_day = -(-end_us // US_PER_DAY)
    return _segments(zone, first_day, last_day)


@lru_cache(maxsize=256)
def _segments(zone_name: str, first_day: int, last_day: int) -> tuple[tuple[int, int], ...]:
    zone = ZoneInfo(zone_name)
    start = first_day * 86_400
    end = last_day * 86_400
    segments = [(start * US_PER_SECOND, _offset_seconds(zone, start) * US_PER_SECOND)]
    previous_time, previous_offset = start, _offset_seconds(zone, start)
    moment = start
    while moment < end:
        moment = min(moment + _SCAN_STEP_SECONDS, end)
        offset = _offset_seconds(zone, moment)
        if offset != previous_offset:
            change = _first_second_with(zone, previous_time, moment, offset)
            segments.append((change * US_PER_SECOND, offset * US_PER_SECOND))
            previous_offset = offset
        previous_time = moment
    return tuple(segments)


def _offset_seconds(zone: ZoneInfo, epoch_seconds: int) -> int:
    moment = _EPOCH_UTC + timedelta(seconds=epoch_seconds)
    offset = moment.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _first_second_with(zone: ZoneInfo, low: int, high: int, offset: int) -> int:
    """Smallest second in ``(low, high]`` whose offset is ``offset`` (a transition lies inside)."""
    while high - low > 1:
        middle = (low + high) // 2
        if _offset_seconds(zone, middle) == offset:
            high = middle
        else:
            low = middle
    return high


def local_wall_to_instant_us(zone: str, wall_us: int) -> int:
    """The instant a local wall-clock time (as epoch-like microseconds) first occurs in ``zone``.

    A wall time the zone skips (a spring-forward gap) maps to the instant the gap ends,
    since ``fold=0`` applies the offset in force before the transition.
    """
    naive = _EPOCH + timedelta(microseconds=wall_us)
    aware = naive.replace(tzinfo=ZoneInfo(zone), fold=0)
    return (aware - _EPOCH_UTC) // timedelta(microseconds=1)


def iso_instant(epoch_us: int) -> str:
    """ISO-8601 UTC with milliseconds (``2026-10-14T22:00:00.000Z``), as JavaScript's
    ``Date.toISOString`` writes it: a sub-millisecond part is dropped, never printed."""
    moment = _EPOCH + timedelta(microseconds=epoch_us)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        f".{moment.microsecond // 1000:03d}Z"
    )
