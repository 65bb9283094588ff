"""The statement-month timetable: one run per calendar month, once that month is over everywhere.

Why not ``CronDataIntervalTimetable("0 0 1 * *")``: a cron interval in UTC would start
October's run at 1 November 00:00 UTC, while October is still running in the Americas
and the Pacific, so late calls would be missed. And a cron timetable in the org's zone
stores UTC boundaries that move with DST, which makes months hard to label. Here the data
interval is the calendar month in UTC — only a label; the statement window itself is the
month in the org zone, computed at run time from the config — and the run is created once
the month has ended in every zone on Earth (UTC−12 is last: 12:00 UTC on the 1st).

The settlement delay is not here. It is ``settlement_delay_hours`` in chargeback.yaml, one
setting with one source, and the config is read only at run time: the DAG's first task,
``settled``, waits in reschedule mode until the month in the org zone plus that delay is
over. A delay in the timetable would have to be fixed when the DAG is parsed.

Logical dates. Airflow keys runs by ``(dag_id, logical_date)``, and a manual run with a
logical date — ``airflow dags test vapi_chargeback_monthly 2026-11-01`` (→ October), a REST
trigger, ``make demo`` — takes whatever instant it is given, typically 00:00 on the 1st.
With the default logical date (the data interval's start) November's scheduled run would
also be 2026-11-01 00:00: the scheduler finds that manual run, takes it for November's,
and never creates November (it logs "run already exists" every second). So scheduled and
backfilled runs take as logical date the moment their month became due — its end plus
12 h, 12:00 UTC on the 1st of the next month — as Airflow 3's own ``CronTriggerTimetable``
uses the moment a run is due. Manual runs keep theirs (making them carry none would
break ``dags test DAG DATE``, which must pass one). The one manual logical date that can
still meet a scheduled one is that exact instant, 12:00:00 UTC on a 1st, and a manual run
given it covers the very month the scheduled run would have covered.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from dateutil.relativedelta import relativedelta
from pendulum import UTC, DateTime

if TYPE_CHECKING:
    from airflow.models.dag import DagModel

LAST_ZONE_LAG = timedelta(hours=12)
"""How long after 00:00 UTC a calendar day ends in the westernmost zone (UTC−12)."""


def month_start(moment: DateTime) -> DateTime:
    """00:00 UTC on the first day of the month containing ``moment``."""
    moment = moment.in_timezone(UTC)
    return DateTime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: DateTime) -> DateTime:
    return start + relativedelta(months=1)


def due_at(interval_end: DateTime) -> DateTime:
    """When a month ending at ``interval_end`` (00:00 UTC) has ended in every zone."""
    return interval_end + LAST_ZONE_LAG


def latest_due_month(now: DateTime) -> DateTime:
    """Start of the latest month that has ended everywhere at ``now``."""
    return month_start(now - LAST_ZONE_LAG) - relativedelta(months=1)


class StatementRunInfo(DagRunInfo):
    """A scheduled or backfilled month, whose logical date is the moment it became due."""

    __slots__ = ()

    @property
    def logical_date(self) -> DateTime | None:
        # Never 00:00 on a 1st, the instant manual runs are given (see the module docstring).
        return due_at(self.data_interval.end) if self.data_interval else None


class CalendarTimetable(Timetable):
    """Data intervals of whole calendar periods in UTC (days, months), one run each, created
    when the subclass says its period is due (``run_after``), with the subclass's run info
    (``info_class``: its logical date is that moment too)."""

    info_class: ClassVar[type[DagRunInfo]]

    def period_start(self, moment: DateTime) -> DateTime:
        """00:00 UTC of the period containing ``moment``."""
        raise NotImplementedError

    def period_after(self, start: DateTime) -> DateTime:
        raise NotImplementedError

    def latest_start(self, now: DateTime) -> DateTime:
        """Start of the latest period that is due at ``now``."""
        raise NotImplementedError

    def run_after(self, interval: DataInterval) -> DateTime:
        raise NotImplementedError

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            # Continue right after the last scheduled or backfilled period.
            start = self.period_start(last_automated_data_interval.end)
        elif restriction.earliest is None:
            # No start_date: never schedule.
            return None
        else:
            # First run: the first whole period at or after start_date.
            earliest = restriction.earliest.in_timezone(UTC)
            start = self.period_start(earliest)
            if start < earliest:
                start = self.period_after(start)
        if not restriction.catchup:
            # Without catchup, as Airflow's own timetables: never a period older than the
            # latest one that is due now — also after a backfill of older ones.
            start = max(start, self.latest_start(DateTime.now(UTC)))
        if restriction.latest is not None and start > restriction.latest:
            # Past the DAG's end_date (or a backfill's --to-date): nothing more.
            return None
        interval = DataInterval(start, self.period_after(start))
        return self.info_class(run_after=self.run_after(interval), data_interval=interval)

    def next_run_info_from_dag_model(self, *, dag_model: DagModel) -> DagRunInfo | None:
        # The scheduler creates the run from this, and the base class rebuilds a plain
        # DagRunInfo, whose logical date would fall back to the interval's start.
        info = super().next_run_info_from_dag_model(dag_model=dag_model)
        if info is None or info.data_interval is None:
            return info
        return self.info_class(run_after=info.run_after, data_interval=info.data_interval)


class StatementMonthTimetable(CalendarTimetable):
    """Monthly data intervals ``[M-01, M+1-01)`` in UTC, run once M has ended everywhere."""

    info_class = StatementRunInfo

    description = (
        "One run per calendar month, created once the month has ended in every time zone"
        " (UTC-12); its first task waits for settlement_delay_hours from chargeback.yaml."
    )

    @property
    def summary(self) -> str:
        return "monthly, after month end everywhere"

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        # A manual run (or `airflow dags test DAG 2026-11-01`) at any time in November means
        # "the last complete month": October.
        end = month_start(run_after)
        return DataInterval(start=end - relativedelta(months=1), end=end)

    def period_start(self, moment: DateTime) -> DateTime:
        return month_start(moment)

    def period_after(self, start: DateTime) -> DateTime:
        return next_month(start)

    def latest_start(self, now: DateTime) -> DateTime:
        return latest_due_month(now)

    def run_after(self, interval: DataInterval) -> DateTime:
        return due_at(interval.end)
