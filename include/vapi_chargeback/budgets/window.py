"""The month cut at a local midnight, and the shared pools as much of them as has elapsed.

The daily run's figures are a statement of the month so far, computed by the monthly
code: a :class:`~vapi_chargeback.period.StatementPeriod` keeps the month's label and start
and ends at ``as_of`` instead of the month's end, so the plan asks the API for exactly
``[month start, as_of)`` and allocation, pools and reconciliation run unchanged on it. The
one thing a cut month needs that a whole one does not is fixed pools prorated by elapsed
days, done here on a copy of the config, so allocation and reconciliation see the same
amounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from fractions import Fraction
from zoneinfo import ZoneInfo

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.money import round_money
from vapi_chargeback.period import StatementPeriod


class DayNotOverError(PermanentError):
    """Month-to-date figures were asked for a day that has not ended in the org zone."""


@dataclass(frozen=True)
class MtdWindow:
    """The month so far: whole local days ``[month start, as_of)``."""

    period: StatementPeriod
    """The month cut at ``as_of``: its label and start, ``end`` = ``as_of``."""
    month: StatementPeriod
    """The whole month."""
    through_day: date
    """The last local day included: the day before the run's day."""

    @property
    def as_of(self) -> datetime:
        return self.period.end

    @property
    def elapsed_days(self) -> int:
        return (self.through_day - self.month.first_day).days + 1

    @property
    def total_days(self) -> int:
        return (self.month.last_day - self.month.first_day).days + 1


def mtd_window(run_day: date, timezone: str, *, now: datetime) -> MtdWindow:
    """The figures a run on local day ``run_day`` shows: the month of the day before, up to
    ``run_day``'s local midnight (on the 1st: the whole previous month).

    Refused (``DayNotOverError``) when that midnight is still after ``now``: a day that has
    not ended would be counted as if it had, and its spend read as the whole day's.
    """
    through = run_day - timedelta(days=1)
    month = StatementPeriod.for_month(f"{through:%Y-%m}", timezone)
    as_of = _local_midnight(run_day, timezone)
    if as_of > now:
        raise DayNotOverError(
            f"month-to-date figures through {through} need that day to be over in {timezone};"
            f" it ends {as_of.isoformat()}. Ask for an earlier day (the figures a run on"
            f" {run_day} shows cover the days before it)"
        )
    period = StatementPeriod(label=month.label, timezone=timezone, start=month.start, end=as_of)
    return MtdWindow(period=period, month=month, through_day=through)


def local_today(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def prorated_config(config: ChargebackConfig, window: MtdWindow) -> tuple[ChargebackConfig, str]:
    """``config`` with each fixed pool at ``amount × elapsed / total days`` (to the cent,
    half up), and a note saying so with the amounts, for the published figures."""
    elapsed, total = window.elapsed_days, window.total_days
    pools, parts = [], []
    for pool in config.shared_costs:
        if pool.amount is None:
            pools.append(pool)
            continue
        amount = round_money(Fraction(pool.amount) * elapsed / total)
        parts.append(f"{pool.name} {amount} of {pool.amount}")
        pools.append(pool.model_copy(update={"amount": amount}))
    if not parts:
        return config, "No fixed shared pools."
    note = (
        f"Fixed shared pools prorated by elapsed days ({elapsed} of {total}, amount × {elapsed}"
        f" / {total}, to the cent): {', '.join(parts)} USD."
    )
    return config.model_copy(update={"shared_costs": pools}), note


def _local_midnight(day: date, timezone: str) -> datetime:
    """Midnight starting ``day`` in ``timezone``, with that instant's fixed UTC offset (as
    ``StatementPeriod`` keeps its bounds, so arithmetic and JSON round trips are exact)."""
    local = datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone))
    offset = local.utcoffset()
    assert offset is not None
    return local.astimezone(dt_timezone(offset))
