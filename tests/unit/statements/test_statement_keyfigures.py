"""Key figures and unit costs on the hand-made sample, checked by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from vapi_chargeback.money import round_minutes, round_money
from vapi_chargeback.statement import PreviousMonth
from vapi_chargeback.statements.keyfigures import RATE_QUANTUM, key_figures, unit_costs, unit_rate
from vapi_chargeback.statements.manifest import build_manifest
from vapi_chargeback.statements.totals import shown_minutes, summarize

from support.statement_samples import line, sample_statement

D = Decimal


def test_org_figures_define_allocated_on_usage_and_give_the_share_with_pools_beside_it() -> None:
    figures = key_figures(sample_statement())

    assert figures.total_usd == D("182.50")
    assert figures.usage.cost_usd == D("170.50")
    assert figures.allocated_usage_usd == D("140.00")
    assert figures.unallocated_usd == D("30.50")
    assert figures.shared_usd == D("12.00")
    assert figures.allocated_share_of_usage == D("0.821114")  # 140.00 / 170.50
    assert figures.allocated_share_of_total == D("0.832877")  # 152.00 / 182.50
    assert (figures.usage.calls, figures.usage.minutes) == (163, D("391.83"))
    assert figures.usage.per_call == D("1.0460122699")  # 170.50 / 163
    assert figures.previous_total_usd is None
    assert figures.change_usd is None


def test_a_cost_centers_figures_cover_only_its_lines_and_its_previous_month() -> None:
    previous = PreviousMonth(
        "2026-09",
        [
            line(
                "sales", "Sales", "emea", "asst-1", "direct", 100, "250", "80.00", ("0", "0", "0")
            ),
            line("support", "Support", "", "asst-2", "direct", 1, "1", "9.99", ("0", "0", "0")),
        ],
    )
    figures = key_figures(sample_statement(previous=previous), "sales")

    assert figures.total_usd == D("107.00")
    assert figures.usage.cost_usd == D("100.00")
    assert figures.allocated_share_of_usage is None
    assert figures.usage.per_minute == D("0.3327787022")  # 100.00 / 300.50
    assert figures.usage.per_call == D("0.8333333333")
    assert (figures.previous_period, figures.previous_total_usd) == ("2026-09", D("80.00"))
    assert figures.change_usd == D("27.00")
    assert figures.change_share == D("0.3375")


def test_unit_rates_are_stored_exact_not_rounded_to_cents() -> None:
    rated = line("sales", "Sales", "", "a", "direct", 8, "100", "10.24", ("0", "0", "0"))

    costs = unit_costs([replace(rated, successful_calls=4)])

    assert costs.per_minute == D("0.1024")
    assert costs.per_call == D("1.28")
    assert costs.per_successful_call == D("2.56")


def test_successful_call_cost_is_blank_where_unknown_or_zero() -> None:
    rated = line("sales", "Sales", "", "a", "direct", 8, "100", "10.24", ("0", "0", "0"))

    assert unit_costs([rated]).per_successful_call is None
    assert unit_costs([replace(rated, successful_calls=0)]).per_successful_call is None
    assert unit_rate(D("5.00"), 0) is None


@given(
    cents=st.integers(min_value=-(10**12), max_value=10**12),
    units=st.integers(min_value=-(10**8), max_value=10**8).filter(bool),
    places=st.sampled_from([0, 2, 3]),
)
def test_a_rate_is_the_exact_quotient_rounded_once_half_away_from_zero(
    cents: int, units: int, places: int
) -> None:
    amount = D(cents).scaleb(-2)
    divisor = D(units).scaleb(-places) if places else units

    expected = round_money(Fraction(amount) / Fraction(divisor), RATE_QUANTUM)
    assert unit_rate(amount, divisor) == expected


def test_the_manifest_carries_the_same_key_figures_for_the_org_and_each_cost_center() -> None:
    statement = sample_statement()
    document = json.loads(build_manifest(statement, summarize(statement), []))

    org = document["key_figures"]["org"]
    assert org["total_usd"] == "182.50"
    assert org["allocated_share_of_usage"] == "0.821114"
    assert org["usd_per_call"] == "1.0460122699"
    assert org["change_usd"] is None
    sales = document["key_figures"]["cost_centers"]["sales"]
    assert sales["usd_per_minute"] == "0.3327787022"
    assert sales["allocated_share_of_usage"] is None
    assert set(document["key_figures"]["cost_centers"]) == {"sales", "support"}


@given(
    st.decimals(
        min_value=-(10**12), max_value=10**12, allow_nan=False, allow_infinity=False, places=6
    )
)
def test_minutes_are_shown_as_round_minutes_rounds_them(minutes: Decimal) -> None:
    shown = shown_minutes(minutes)

    assert shown == round_minutes(minutes)
    assert str(shown) == str(round_minutes(minutes)), "same digits, zero never negative"
