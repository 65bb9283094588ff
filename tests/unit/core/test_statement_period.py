"""Statement months are local calendar months, whatever DST does to their UTC boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vapi_chargeback.period import StatementPeriod, last_complete_month, month_of_interval


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("label", "zone", "start", "end", "hours"),
    [
        pytest.param(
            "2026-10",
            "Europe/Berlin",
            "2026-09-30T22:00",
            "2026-10-31T23:00",
            745,
            id="berlin-october-dst-ends",
        ),
        pytest.param(
            "2026-03",
            "Europe/Berlin",
            "2026-02-28T23:00",
            "2026-03-31T22:00",
            743,
            id="berlin-march-dst-starts",
        ),
        pytest.param(
            "2026-03",
            "America/New_York",
            "2026-03-01T05:00",
            "2026-04-01T04:00",
            743,
            id="new-york-march-dst-starts",
        ),
        pytest.param(
            "2026-11",
            "America/New_York",
            "2026-11-01T04:00",
            "2026-12-01T05:00",
            721,
            id="new-york-november-dst-ends",
        ),
        pytest.param(
            "2026-12",
            "UTC",
            "2026-12-01T00:00",
            "2027-01-01T00:00",
            744,
            id="utc-december-year-rollover",
        ),
        pytest.param(
            "2028-02",
            "Asia/Tokyo",
            "2028-01-31T15:00",
            "2028-02-29T15:00",
            696,
            id="tokyo-leap-february",
        ),
    ],
)
def test_period_boundaries_are_local_midnights(
    label: str, zone: str, start: str, end: str, hours: int
) -> None:
    period = StatementPeriod.for_month(label, zone)

    assert (period.start, period.end) == (utc(start), utc(end))
    assert period.end - period.start == timedelta(hours=hours)
    for instant in (period.start, period.end):
        local = instant.astimezone(ZoneInfo(zone))
        assert (local.day, local.hour, local.minute) == (1, 0, 0)
    assert period.label == label


def test_period_days_and_json_round_trip() -> None:
    period = StatementPeriod.for_month("2026-10", "America/New_York")

    again = StatementPeriod.model_validate_json(period.model_dump_json())

    assert again == period
    assert (again.first_day.isoformat(), again.last_day.isoformat()) == ("2026-10-01", "2026-10-31")
    assert again.contains_day(again.last_day)
    assert not again.contains_day(again.last_day + timedelta(days=1))


@pytest.mark.parametrize(
    ("label", "zone", "message"),
    [
        pytest.param("2026-13", "UTC", "YYYY-MM", id="month-13"),
        pytest.param("2026-1", "UTC", "YYYY-MM", id="one-digit-month"),
        pytest.param("October", "UTC", "YYYY-MM", id="name"),
        pytest.param("2026-10", "CEST", "IANA", id="abbreviation-zone"),
        pytest.param("2026-10", "+02:00", "IANA", id="offset-zone"),
    ],
)
def test_period_rejects_bad_input(label: str, zone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StatementPeriod.for_month(label, zone)


@pytest.mark.parametrize(
    ("start", "end", "month"),
    [
        pytest.param(
            "2026-09-30T22:00", "2026-10-31T23:00", "2026-10", id="berlin-timetable-october"
        ),
        pytest.param(
            "2026-10-31T23:00", "2026-11-30T23:00", "2026-11", id="berlin-timetable-november"
        ),
        pytest.param(
            "2026-02-28T23:00", "2026-03-31T22:00", "2026-03", id="berlin-timetable-march"
        ),
        pytest.param(
            "2026-03-01T05:00", "2026-04-01T04:00", "2026-03", id="new-york-timetable-march"
        ),
        pytest.param("2026-10-01T00:00", "2026-11-01T00:00", "2026-10", id="utc-cron-interval"),
        pytest.param("2026-02-01T00:00", "2026-03-01T00:00", "2026-02", id="utc-february"),
        pytest.param("2025-12-01T00:00", "2026-01-01T00:00", "2025-12", id="utc-december"),
        pytest.param("2025-11-30T14:00", "2025-12-31T13:00", "2025-12", id="auckland-december"),
    ],
)
def test_month_of_interval_reads_the_midpoint(start: str, end: str, month: str) -> None:
    assert month_of_interval(utc(start), utc(end)) == month


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(utc("2026-11-01T00:00"), utc("2026-11-01T00:00"), id="zero-length"),
        pytest.param(utc("2026-10-01T00:00"), utc("2026-10-02T00:00"), id="one-day"),
        pytest.param(utc("2026-10-01T00:00"), utc("2026-12-01T00:00"), id="two-months"),
        pytest.param(datetime(2026, 10, 1), datetime(2026, 11, 1), id="naive"),
    ],
)
def test_month_of_interval_refuses_to_guess(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError, match=r"not a month|timezone-aware"):
        month_of_interval(start, end)


@pytest.mark.parametrize(
    ("now", "zone", "delay", "month"),
    [
        pytest.param(
            "2026-10-31T23:30", "Europe/Berlin", 0, "2026-10", id="berlin-just-after-midnight"
        ),
        pytest.param(
            "2026-10-31T22:30", "Europe/Berlin", 0, "2026-09", id="berlin-just-before-midnight"
        ),
        pytest.param(
            "2026-10-31T23:30", "America/New_York", 0, "2026-09", id="new-york-still-october"
        ),
        pytest.param(
            "2026-11-01T04:30", "America/New_York", 0, "2026-10", id="new-york-after-midnight"
        ),
        pytest.param(
            "2026-11-01T02:00", "Europe/Berlin", 6, "2026-09", id="berlin-within-settlement-delay"
        ),
        pytest.param(
            "2026-11-01T05:00", "Europe/Berlin", 6, "2026-10", id="berlin-after-settlement-delay"
        ),
        pytest.param("2026-01-15T12:00", "UTC", 0, "2025-12", id="january-gives-last-december"),
    ],
)
def test_last_complete_month(now: str, zone: str, delay: int, month: str) -> None:
    assert last_complete_month(utc(now), zone, settlement_delay_hours=delay) == month
