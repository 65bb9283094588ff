"""The daily timetable: one run per calendar day, created once that day has begun anywhere.

The daily run must start at ``daily.time`` in the org's zone, and both live in
chargeback.yaml, which is read at run time only (never when the DAG is parsed, nor by the
scheduler). So, like the monthly DAG with its settlement delay, the timetable only creates
each day's run early enough for every zone, and the DAG's first task, ``due``, waits in
reschedule mode until the configured local time of that day (``daily_steps.run_is_due``).
A changed time or zone counts from the next check, with no redeploy.

The data interval is the UTC calendar day ``[D, D+1)`` — only a label: the run's *day* is
``D``, and the figures cover the org-local days of D's month before D. The run is created
when D begins in UTC+14, the first zone to reach it (10:00 UTC the day before); in the
last zone, UTC−12, a 23:59 start is reached 36 hours after that, so a day's sensor may
wait that long and runs of consecutive days overlap (the DAG allows three at once).

Logical dates: as the monthly timetable, scheduled runs take the moment they are created
(never 00:00 UTC), so ``airflow dags test vapi_chargeback_daily 2026-11-13`` — a manual run
for the day 2026-11-13, covering 1–12 November — never takes a scheduled run's key.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.timetables.base import DagRunInfo, DataInterval
from pendulum import UTC, DateTime

from vapi_chargeback.airflow.timetable import CalendarTimetable

FIRST_ZONE_LEAD = timedelta(hours=14)
"""How long before 00:00 UTC a calendar day begins in the easternmost zone (UTC+14)."""
DAY = timedelta(days=1)


def day_start(moment: DateTime) -> DateTime:
    """00:00 UTC of the UTC day containing ``moment``."""
    moment = moment.in_timezone(UTC)
    return DateTime(moment.year, moment.month, moment.day, tzinfo=UTC)


def created_at(day: DateTime) -> DateTime:
    """When the run of ``day`` (00:00 UTC) is created: as the day begins in UTC+14."""
    return day - FIRST_ZONE_LEAD


class DailyRunInfo(DagRunInfo):
    """A scheduled day, whose logical date is the moment its run is created."""

    __slots__ = ()

    @property
    def logical_date(self) -> DateTime | None:
        # Never 00:00 UTC, the instant manual runs for a day are given.
        return created_at(self.data_interval.start) if self.data_interval else None


class DailyTimetable(CalendarTimetable):
    """Daily data intervals ``[D, D+1)`` in UTC, created as D begins in UTC+14."""

    info_class = DailyRunInfo

    description = (
        "One run per day, created as the day begins in the first time zone; its first task"
        " waits for daily.time in org.timezone from chargeback.yaml."
    )

    @property
    def summary(self) -> str:
        return "daily, at daily.time in the org zone"

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        # A manual run (or `airflow dags test DAG 2026-11-13`) is the run of that UTC day.
        start = day_start(run_after)
        return DataInterval(start=start, end=start + DAY)

    def period_start(self, moment: DateTime) -> DateTime:
        return day_start(moment)

    def period_after(self, start: DateTime) -> DateTime:
        return start + DAY

    def latest_start(self, now: DateTime) -> DateTime:
        return day_start(now + FIRST_ZONE_LEAD)

    def run_after(self, interval: DataInterval) -> DateTime:
        return created_at(interval.start)
