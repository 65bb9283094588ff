"""The statement month: a calendar month in the org's time zone, as aware instants.

Finance books October as October in the org's own calendar, so the boundaries are
local midnights and their UTC offsets differ whenever a DST change falls inside the
month. Everything here derives months with ``relativedelta`` (month arithmetic, not a
fixed number of days) and labels Airflow intervals without trusting their raw UTC
start, which shifts by an hour with DST when the timetable runs in a non-UTC zone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from pydantic import AwareDatetime, BaseModel, ConfigDict

from vapi_chargeback.analytics.models import is_iana_timezone
from vapi_chargeback.errors import PermanentError

_LABEL = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_MIN_MONTH = timedelta(days=27)
"""Shortest plausible monthly interval: February less a DST hour, with a day to spare."""
_MAX_MONTH = timedelta(days=32)
"""Longest plausible monthly interval: 31 days plus a DST hour, with slack."""


class StatementPeriod(BaseModel):
    """One statement month, half-open ``[start, end)`` in ``timezone``.

    A pydantic model so it travels through XCom and the plan as plain JSON.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    """``YYYY-MM``."""
    timezone: str
    start: AwareDatetime
    """Local midnight of the 1st, with that instant's fixed UTC offset."""
    end: AwareDatetime
    """Local midnight of the 1st of the next month, with that instant's fixed UTC offset."""

    @classmethod
    def for_month(cls, label: str, timezone: str) -> StatementPeriod:
        """The period labelled ``label`` (``YYYY-MM``) in the IANA zone ``timezone``."""
        first = parse_month(label)
        zone = _zone(timezone)
        start = _local_midnight(first, zone)
        end = _local_midnight(first + relativedelta(months=1), zone)
        return cls(label=label, timezone=timezone, start=start, end=end)

    def settled_at(self, settlement_delay_hours: int) -> datetime:
        """When the month's calls are complete: its local end plus the settlement delay.

        Vapi finishes costing a call after it ends, so a statement drawn before this moment
        would miss late costs; no statement (and no scheduled run) starts before it.
        """
        if settlement_delay_hours < 0:
            raise ValueError(f"settlement_delay_hours must be >= 0, got {settlement_delay_hours}")
        return self.end + timedelta(hours=settlement_delay_hours)

    def settles_after(self, settlement_delay_hours: int, now: datetime) -> datetime | None:
        """When the month settles, if that is still after ``now``; ``None`` once it has."""
        ready_at = self.settled_at(settlement_delay_hours)
        return ready_at if now < ready_at else None

    @property
    def first_day(self) -> date:
        return self.start.astimezone(_zone(self.timezone)).date()

    @property
    def last_day(self) -> date:
        """The last local calendar day inside the period (inclusive)."""
        return self.end.astimezone(_zone(self.timezone)).date() - timedelta(days=1)

    def contains_day(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


class MonthNotReadyError(PermanentError):
    """The statement month has not ended (plus the settlement delay) yet."""

    def __init__(self, period: StatementPeriod, ready_at: datetime) -> None:
        self.period = period
        self.ready_at = ready_at
        utc = ready_at.astimezone(UTC)
        super().__init__(
            f"{period.label} is not complete yet: it ends {period.end.isoformat()} in"
            f" {period.timezone} and settles {utc:%Y-%m-%d %H:%M} UTC (settlement_delay_hours in"
            " chargeback.yaml). A statement of an unfinished month would miss calls; run it"
            " then, or choose an earlier month. Month-to-date figures are the budgets' job."
        )


def require_settled(period: StatementPeriod, settlement_delay_hours: int, now: datetime) -> None:
    """Refuse, before anything is fetched, a month whose calls may still change."""
    ready_at = period.settles_after(settlement_delay_hours, now)
    if ready_at is not None:
        raise MonthNotReadyError(period, ready_at)


def parse_month(label: str) -> date:
    """``"2026-10"`` → ``date(2026, 10, 1)``; a clear error for anything else."""
    match = _LABEL.match(label) if isinstance(label, str) else None
    if match is None:
        raise ValueError(f"month {label!r} is not of the form YYYY-MM (e.g. '2026-10')")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_of_interval(data_interval_start: datetime, data_interval_end: datetime) -> str:
    """Label the month a monthly Airflow data interval covers, as ``YYYY-MM``.

    Reads the month at the interval's midpoint: a monthly interval's boundaries may sit
    an hour or a day off the UTC month boundary (a timetable in Europe/Berlin stores
    October as ``[09-30T22:00Z, 10-31T23:00Z)``), but its middle is always mid-month, in
    every zone. Intervals that are not about a month long raise, rather than guess.
    """
    for name, value in (("start", data_interval_start), ("end", data_interval_end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"data interval {name} {value.isoformat()} must be timezone-aware")
    length = data_interval_end - data_interval_start
    if not _MIN_MONTH <= length <= _MAX_MONTH:
        raise ValueError(
            f"data interval [{data_interval_start.isoformat()}, {data_interval_end.isoformat()})"
            f" is {length} long, not a month; the DAG needs a monthly timetable"
            " (or pass the month explicitly)"
        )
    middle = data_interval_start + length / 2
    return middle.astimezone(ZoneInfo("UTC")).strftime("%Y-%m")


def last_complete_month(now: datetime, timezone: str, *, settlement_delay_hours: int = 0) -> str:
    """The latest month that has ended in ``timezone`` at least ``settlement_delay_hours`` before ``now``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now {now.isoformat()} must be timezone-aware")
    if settlement_delay_hours < 0:
        raise ValueError(f"settlement_delay_hours must be >= 0, got {settlement_delay_hours}")
    settled = (now - timedelta(hours=settlement_delay_hours)).astimezone(_zone(timezone))
    previous = settled.date().replace(day=1) - relativedelta(months=1)
    return previous.strftime("%Y-%m")


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """Midnight of ``day`` in ``zone`` with a fixed offset.

    Python subtracts two datetimes sharing one ``ZoneInfo`` as wall-clock times, so
    ``end - start`` of October in Berlin would miss the DST hour; fixed offsets make
    arithmetic exact and survive a JSON round trip unchanged.
    """
    local = datetime.combine(day, time(0), tzinfo=zone)
    offset = local.utcoffset()
    assert offset is not None
    return local.astimezone(dt_timezone(offset))


def _zone(timezone: str) -> ZoneInfo:
    if not is_iana_timezone(timezone):
        raise ValueError(
            f"timezone {timezone!r} is not an IANA time zone name (e.g. 'Europe/Berlin', 'UTC')"
        )
    return ZoneInfo(timezone)
