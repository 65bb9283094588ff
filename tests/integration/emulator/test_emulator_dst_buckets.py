"""Property: sub-day buckets partition the calls around DST changes, in every kind of zone.

Each bucket row's ``date`` must start a half-open interval up to the next row's ``date``
that holds exactly the bucket's calls: buckets never overlap, none is longer than its
step, and every call lands in exactly one. Lord Howe's 30-minute change is the case that
broke it (an hour bucket after the change began before it); Chatham's +12:45/+13:45 and
Santiago's midnight change are there as well, next to whole-hour zones.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback.analytics.models import AnalyticsQueryDTO
from vapi_emulator.engine import Engine
from vapi_emulator.render import response_body
from vapi_emulator.resolve import resolve

ZONES = (
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "America/St_Johns",
    "Europe/Berlin",
    "Australia/Adelaide",
)
STEP_MS = {"second": 1_000, "minute": 60_000, "hour": 3_600_000}
WINDOW = timedelta(hours=6)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """The UTC instants (to the minute) at which ``zone_name`` changes offset in 2026."""
    zone = ZoneInfo(zone_name)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    found = []
    previous = moment.astimezone(zone).utcoffset()
    while moment.year == 2026:
        moment += timedelta(minutes=15)
        offset = moment.astimezone(zone).utcoffset()
        if offset != previous:
            found.append(moment)
            previous = offset
    return tuple(found)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[str, str, datetime, list[int]]:
    zone = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(transitions(zone)))
    step = draw(st.sampled_from(sorted(STEP_MS)))
    start = change - WINDOW / 2
    window_ms = int(WINDOW.total_seconds() * 1000)
    near = st.integers(window_ms // 2 - 4_000_000, window_ms // 2 + 4_000_000)
    offsets = draw(st.lists(st.integers(0, window_ms - 1) | near, min_size=1, max_size=60))
    return zone, step, start, sorted(set(offsets))


def _iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_sub_day_buckets_partition_random_calls_around_dst_changes(
    case: tuple[str, str, datetime, list[int]],
) -> None:
    assert_partition(*case)


@pytest.mark.parametrize("step", sorted(STEP_MS))
@pytest.mark.parametrize("zone", ZONES)
def test_sub_day_buckets_partition_a_grid_across_every_change_of_2026(zone: str, step: str) -> None:
    """Calls every quarter step on both sides of each change: every boundary is populated."""
    unit = STEP_MS[step]
    for change in transitions(zone):
        start = change - WINDOW / 2
        middle = int(WINDOW.total_seconds() * 1000) // 2
        offsets = [middle + quarter * unit // 4 + 1 for quarter in range(-12, 12)]
        assert_partition(zone, step, start, offsets)


def assert_partition(zone: str, step: str, start: datetime, offsets: list[int]) -> None:
    times = [start + timedelta(milliseconds=ms) for ms in offsets]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "calls.jsonl"
        path.write_text(
            "".join(
                json.dumps({"id": f"c{ms:012d}", "createdAt": _iso(moment), "cost": 1}) + "\n"
                for ms, moment in zip(offsets, times, strict=True)
            )
        )
        engine = Engine([path])
        engine.load()
        query = {
            "table": "call",
            "name": "buckets",
            "timeRange": {
                "start": _iso(start),
                "end": _iso(start + WINDOW),
                "timezone": zone,
                "step": step,
            },
            "operations": [{"operation": "count", "column": "id"}],
        }
        dto = AnalyticsQueryDTO.model_validate({"queries": [query]})
        (answer,) = json.loads(response_body(engine.run(resolve(dto, 0))))
        engine.close()
    rows = answer["result"]
    starts = [datetime.fromisoformat(row["date"]) for row in rows]
    assert starts == sorted(set(starts)), "bucket starts are distinct and ascending"
    ends = [*starts[1:], datetime.max.replace(tzinfo=UTC)]
    unit = timedelta(milliseconds=STEP_MS[step])
    for row, low, high in zip(rows, starts, ends, strict=True):
        inside = [moment for moment in times if low <= moment < high]
        assert len(inside) == row["countId"], f"{zone} {step} bucket {row['date']}"
        assert max(inside) - low < unit, "no bucket is longer than its step"
    assert sum(row["countId"] for row in rows) == len(times)
    assert min(times) >= starts[0]
