"""The statement-month timetable: which month a run covers and when it may start."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

from vapi_chargeback.airflow.timetable import StatementMonthTimetable

UTC = pendulum.UTC


def utc(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz=UTC)


@pytest.mark.parametrize(
    ("run_after", "expected_start"),
    [
        pytest.param(utc(2026, 11, 1), utc(2026, 10, 1), id="dags-test-on-the-first"),
        pytest.param(utc(2026, 11, 28, 15, 30), utc(2026, 10, 1), id="manual-mid-november"),
        pytest.param(utc(2026, 11, 30, 23, 59, 59), utc(2026, 10, 1), id="last-second-of-november"),
        pytest.param(utc(2027, 1, 10), utc(2026, 12, 1), id="across-new-year"),
        pytest.param(utc(2026, 3, 31, 1), utc(2026, 2, 1), id="after-february"),
    ],
)
def test_manual_run_covers_the_last_complete_month(
    run_after: pendulum.DateTime, expected_start: pendulum.DateTime
) -> None:
    interval = StatementMonthTimetable().infer_manual_data_interval(run_after=run_after)
    assert interval.start == expected_start
    assert interval.end == expected_start.add(months=1)


def test_backfill_window_yields_each_month_once_inclusive_of_to_date() -> None:
    timetable = StatementMonthTimetable()
    restriction = TimeRestriction(utc(2026, 1, 1), utc(2026, 6, 30), catchup=True)
    starts = []
    last: DataInterval | None = None
    while info := timetable.next_dagrun_info(
        last_automated_data_interval=last, restriction=restriction
    ):
        assert info.data_interval is not None
        starts.append(info.data_interval.start.month)
        last = info.data_interval
    assert starts == [1, 2, 3, 4, 5, 6]


def test_scheduled_run_waits_until_the_month_is_over_everywhere_plus_settlement() -> None:
    timetable = StatementMonthTimetable(settlement_delay=timedelta(hours=6))
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(utc(2026, 9, 1), utc(2026, 10, 1)),
        restriction=TimeRestriction(utc(2025, 1, 1), None, catchup=True),
    )
    assert info is not None
    assert info.data_interval == DataInterval(utc(2026, 10, 1), utc(2026, 11, 1))
    # October ends last in UTC-12, at 1 November 12:00 UTC; then 6 h of settlement.
    assert info.run_after == utc(2026, 11, 1, 18)


def test_first_run_starts_at_the_first_whole_month_after_start_date() -> None:
    info = StatementMonthTimetable().next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(utc(2026, 1, 15), utc(2026, 3, 31), catchup=True),
    )
    assert info is not None and info.data_interval is not None
    assert info.data_interval.start == utc(2026, 2, 1)


def test_without_catchup_the_first_run_is_the_latest_ready_month() -> None:
    info = StatementMonthTimetable().next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(utc(2020, 1, 1), None, catchup=False),
    )
    assert info is not None and info.data_interval is not None
    now = pendulum.now(UTC)
    assert info.data_interval.end <= now.start_of("month")
    assert info.data_interval.end >= now.start_of("month").subtract(months=1)


def test_no_start_date_never_schedules_and_end_date_stops() -> None:
    timetable = StatementMonthTimetable()
    assert (
        timetable.next_dagrun_info(
            last_automated_data_interval=None, restriction=TimeRestriction(None, None, True)
        )
        is None
    )
    assert (
        timetable.next_dagrun_info(
            last_automated_data_interval=DataInterval(utc(2026, 5, 1), utc(2026, 6, 1)),
            restriction=TimeRestriction(utc(2026, 1, 1), utc(2026, 5, 31), True),
        )
        is None
    )


def test_serialization_round_trips_the_settlement_delay() -> None:
    timetable = StatementMonthTimetable(settlement_delay=timedelta(hours=36))
    again = StatementMonthTimetable.deserialize(timetable.serialize())
    assert isinstance(again, StatementMonthTimetable)
    assert again.settlement_delay == timedelta(hours=36)
    assert "36 h" in again.summary


def test_negative_settlement_delay_is_rejected() -> None:
    with pytest.raises(ValueError, match="settlement_delay"):
        StatementMonthTimetable(settlement_delay=timedelta(hours=-1))
