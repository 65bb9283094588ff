"""Where a cost center's month is heading: a month-end estimate from its cost so far.

Voice traffic follows the week (busy Mondays, quiet Sundays), so a plain average of the
days so far over- or under-shoots depending on which weekdays remain. The forecast
therefore projects each remaining day by the *same weekday* of the most recent week:

- **Usage** (the direct cost by local day): each remaining day of the month costs what
  the same weekday cost among the last :data:`WINDOW_DAYS` complete days. With fewer
  days elapsed, there is no full week yet: each remaining day costs the mean of the
  days so far. A negative day (a refund) counts as zero.
- **Pool shares** (shared costs charged to the cost center) are scaled from the elapsed
  days to the whole month: fixed pools are prorated by elapsed days, so this gives back
  their monthly amount.
- The result is the spend so far plus the projection, rounded once to the cent; it is
  never below the spend so far.

A week is the shortest window that holds every weekday once, and the most recent one
reacts fastest when spend changes course (a looping outbound campaign). The price: a
one-off spike inside the last seven days is repeated on its weekday for the rest of the
month, so the forecast errs high — the safe side for a warning. ``bench/forecast.py``
measures the error on generated months (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

from vapi_chargeback.money import round_money

WINDOW_DAYS = 7
METHOD = (
    "weekday run rate: each remaining local day is forecast at the direct cost of the same"
    f" weekday among the last {WINDOW_DAYS} complete days (the mean of the days so far while"
    f" fewer than {WINDOW_DAYS} have passed; negative days count as zero), shared-pool shares"
    " scaled from the elapsed days to the whole month; never below the spend so far"
)
"""Stated beside every forecast (``MtdReport.forecast_method``)."""
ZERO = Decimal(0)


def forecast_usd(
    daily_usd: Sequence[tuple[date, Decimal]],
    last_day: date,
    *,
    shared_usd: Decimal = ZERO,
) -> Decimal:
    """The month-end estimate of a cost center's spend, to the cent (method: :data:`METHOD`).

    ``daily_usd`` is its direct cost for every elapsed local day of the month, in order,
    with no gaps (zero-cost days present); ``last_day`` is the month's last local day;
    ``shared_usd`` its pool shares so far. Invariant: the result is at least
    ``Σ daily_usd + shared_usd``, and equals it once no day remains.
    """
    _check_series(daily_usd, last_day)
    spent = sum((cost for _, cost in daily_usd), ZERO) + shared_usd
    if not daily_usd:
        return round_money(spent)
    through = daily_usd[-1][0]
    remaining = [through + timedelta(days=n) for n in range(1, (last_day - through).days + 1)]
    rate = weekday_rates(daily_usd)
    usage = sum((rate[day.weekday()] for day in remaining), Fraction(0))
    elapsed = len(daily_usd)
    shared = Fraction(shared_usd) * len(remaining) / elapsed
    return max(round_money(Fraction(spent) + usage + shared), round_money(spent))


def weekday_rates(daily_usd: Sequence[tuple[date, Decimal]]) -> dict[int, Fraction]:
    """Weekday (Monday 0) → the cost a remaining day of that weekday is forecast at."""
    recent = daily_usd[-WINDOW_DAYS:]
    if len(recent) < WINDOW_DAYS:
        mean = sum((Fraction(max(cost, ZERO)) for _, cost in recent), Fraction(0)) / max(
            len(recent), 1
        )
        return dict.fromkeys(range(7), mean)
    return {day.weekday(): Fraction(max(cost, ZERO)) for day, cost in recent}


def _check_series(daily_usd: Sequence[tuple[date, Decimal]], last_day: date) -> None:
    """Consecutive days, none after the month: a gap would read as a day without calls."""
    for (before, _), (after, _) in pairwise(daily_usd):
        if after - before != timedelta(days=1):
            raise ValueError(
                f"daily costs jump from {before} to {after}; give every elapsed day, zero"
                " when it had no cost"
            )
    if daily_usd and daily_usd[-1][0] > last_day:
        raise ValueError(f"daily costs run to {daily_usd[-1][0]}, past the month's {last_day}")
