"""The statement-month timetable: one run per calendar month, once that month is over everywhere.

Why not ``CronDataIntervalTimetable("0 0 1 * *")``: a cron interval in UTC would start
October's run at 1 November 00:00 UTC, while October is still running in the Americas
and the Pacific, so late calls would be missed. And a cron timetable in the org's zone
stores UTC boundaries that move with DST, which makes months hard to label. Here the data
interval is the calendar month in UTC — only a label; the statement window itself is the
month in the org zone, computed at run time from the config — and the run waits until the
month has ended in every zone on Earth (UTC−12 is last) plus a settlement delay, so that
late-arriving call costs are in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from dateutil.relativedelta import relativedelta
from pendulum import UTC, DateTime

LAST_ZONE_LAG = timedelta(hours=12)
"""How long after 00:00 UTC a calendar day ends in the westernmost zone (UTC−12)."""


def month_start(moment: DateTime) -> DateTime:
    """00:00 UTC on the first day of the month containing ``moment``."""
    moment = moment.in_timezone(UTC)
    return DateTime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: DateTime) -> DateTime:
    return start + relativedelta(months=1)


class StatementMonthTimetable(Timetable):
    """Monthly data intervals ``[M-01, M+1-01)`` in UTC, run once M has ended everywhere."""

    def __init__(self, settlement_delay: timedelta = timedelta(0)) -> None:
        if settlement_delay < timedelta(0):
            raise ValueError("settlement_delay must not be negative")
        self.settlement_delay = settlement_delay
        self.description = (
            "One run per calendar month, started once the month has ended in every time zone "
            f"(UTC-12) plus a settlement delay of {settlement_delay}."
        )

    @property
    def summary(self) -> str:
        hours = self.settlement_delay.total_seconds() / 3600
        return f"monthly, after month end everywhere + {hours:g} h"

    def serialize(self) -> dict[str, Any]:
        return {"settlement_delay": self.settlement_delay.total_seconds()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(settlement_delay=timedelta(seconds=data["settlement_delay"]))

    def ready_at(self, interval_end: DateTime) -> DateTime:
        """When a month ending at ``interval_end`` (00:00 UTC) is over everywhere and settled."""
        return interval_end + LAST_ZONE_LAG + self.settlement_delay

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        # A manual run (or `airflow dags test DAG 2026-11-01`) at any time in November means
        # "the last complete month": October.
        end = month_start(run_after)
        return DataInterval(start=end - relativedelta(months=1), end=end)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            # Continue right after the last scheduled or backfilled month.
            start = month_start(last_automated_data_interval.end)
        elif restriction.earliest is None:
            # No start_date: never schedule.
            return None
        else:
            # First run: the first whole month at or after start_date.
            earliest = restriction.earliest.in_timezone(UTC)
            start = month_start(earliest)
            if start < earliest:
                start = next_month(start)
            if not restriction.catchup:
                # Without catchup, skip to the latest month that is ready now, if later.
                now = DateTime.now(UTC)
                latest_ready = month_start(now - LAST_ZONE_LAG - self.settlement_delay)
                start = max(start, latest_ready - relativedelta(months=1))
        if restriction.latest is not None and start > restriction.latest:
            # Past the DAG's end_date (or a backfill's --to-date): nothing more.
            return None
        end = next_month(start)
        return DagRunInfo(run_after=self.ready_at(end), data_interval=DataInterval(start, end))
