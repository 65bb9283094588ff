"""The month-end forecast on hand-made months (method: ``budgets.forecast.METHOD``).

November 2026 starts on a Sunday and has 30 days; the series below are direct cost by
local day, every elapsed day present.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.budgets.forecast import forecast_usd, weekday_rates

FIRST = date(2026, 11, 1)
LAST = date(2026, 11, 30)


def series(*costs: str | Decimal) -> list[tuple[date, Decimal]]:
    return [(FIRST + timedelta(days=i), Decimal(cost)) for i, cost in enumerate(costs)]


def test_flat_month_forecasts_the_same_rate_for_every_remaining_day() -> None:
    # 10 days at 100.00: 20 remaining days at 100.00.
    assert forecast_usd(series(*["100.00"] * 10), LAST) == Decimal("3000.00")


def test_growing_spend_is_projected_at_the_latest_week_not_the_month_average() -> None:
    # 14 days growing by 10.00 a day: day n costs 10n. The last 7 days (days 8..14) cost
    # 80..140; the remaining 16 days repeat them by weekday: two full weeks (2 × 770)
    # and days 29, 30 (weekdays of days 8, 9: 80 + 90).
    daily = series(*[f"{10 * n}.00" for n in range(1, 15)])
    spent = sum(range(10, 141, 10))
    expected = spent + 2 * sum(range(80, 141, 10)) + 80 + 90
    assert forecast_usd(daily, LAST) == Decimal(expected)
    # A month-average rate would say spent × 30/14 = 2250 here, well below.
    assert forecast_usd(daily, LAST) > Decimal(spent * 30 / 14)


def test_weekday_heavy_traffic_is_forecast_by_weekday() -> None:
    # Weekdays 200.00, weekends 20.00, for 14 days (Sun 1 … Sat 14). The remaining 16
    # days hold 5 weekend days (Sun 15, Sat 21, Sun 22, Sat 28, Sun 29) and 11 weekdays.
    costs = ["20.00" if (FIRST + timedelta(days=i)).weekday() >= 5 else "200.00" for i in range(14)]
    daily = series(*costs)
    remaining = [FIRST + timedelta(days=i) for i in range(14, 30)]
    weekend = sum(1 for day in remaining if day.weekday() >= 5)
    assert weekend == 5
    spent = sum(Decimal(c) for c in costs)
    assert forecast_usd(daily, LAST) == spent + 11 * Decimal(200) + weekend * Decimal(20)


def test_a_spike_in_the_last_week_recurs_on_its_weekday_and_an_older_one_does_not() -> None:
    flat = ["50.00"] * 21
    recent = list(flat)
    recent[17] = "1050.00"  # Wednesday 18th, inside the last 7 days of 21
    older = list(flat)
    older[3] = "1050.00"  # Wednesday 4th, two weeks back
    base = forecast_usd(series(*flat), LAST)
    assert base == Decimal("1500.00")
    # The recent spike is spent once and repeats on Wednesday 25th: +1000 twice.
    assert forecast_usd(series(*recent), LAST) == base + 2 * Decimal(1000)
    # The older one is spent, not projected.
    assert forecast_usd(series(*older), LAST) == base + Decimal(1000)


def test_before_a_week_has_passed_the_mean_of_the_days_so_far_is_the_rate() -> None:
    assert forecast_usd(series("30.00", "60.00", "90.00"), LAST) == Decimal("1800.00")
    assert set(weekday_rates(series("30.00", "60.00")).values()) == {45}


def test_pool_shares_scale_to_the_whole_month() -> None:
    # 10 of 30 days, a fixed pool of 300.00 a month prorated to 100.00 so far.
    assert forecast_usd(series(*["0.00"] * 10), LAST, shared_usd=Decimal("100.00")) == Decimal(
        "300.00"
    )


def test_a_complete_month_forecasts_what_was_spent() -> None:
    daily = series(*[f"{n}.37" for n in range(30)])
    spent = sum((cost for _, cost in daily), Decimal(0)) + Decimal("12.34")
    assert forecast_usd(daily, LAST, shared_usd=Decimal("12.34")) == spent


def test_a_refund_day_does_not_lower_the_forecast_below_the_spend() -> None:
    daily = series(*["10.00"] * 6, "-500.00")
    spent = Decimal("-440.00")
    result = forecast_usd(daily, LAST)
    # The negative day is spent but projects nothing; the 6 positive weekdays recur.
    assert result >= spent
    rates = weekday_rates(daily)
    assert rates[daily[-1][0].weekday()] == 0


def test_a_gap_in_the_days_is_refused() -> None:
    daily = series("1.00", "2.00")
    daily.append((FIRST + timedelta(days=5), Decimal("1.00")))
    with pytest.raises(ValueError, match="every elapsed day"):
        forecast_usd(daily, LAST)
    with pytest.raises(ValueError, match="past the month"):
        forecast_usd(series("1.00"), FIRST - timedelta(days=1))


cents = st.integers(min_value=-10_000, max_value=10_000_000).map(lambda c: Decimal(c).scaleb(-2))


@settings(max_examples=150, deadline=None)
@given(
    costs=st.lists(cents, min_size=0, max_size=30),
    shared=st.integers(min_value=0, max_value=1_000_000).map(lambda c: Decimal(c).scaleb(-2)),
)
def test_never_below_the_spend_and_exact_once_the_month_is_over(
    costs: list[Decimal], shared: Decimal
) -> None:
    daily = series(*costs)
    spent = sum(costs, Decimal(0)) + shared
    result = forecast_usd(daily, LAST, shared_usd=shared)
    assert result >= spent
    assert result == result.quantize(Decimal("0.01"))
    if len(costs) == 30:
        assert result == spent
