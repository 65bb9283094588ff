"""Conversion to the reporting currency: exact USD × rate, rounded together so lines add up."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.errors import PermanentError
from vapi_chargeback.fx import (
    allocate_converted,
    amount_text,
    convert,
    minor_units,
    quantum,
)
from vapi_chargeback.money import round_money
from vapi_chargeback.statement import ChargebackLine, FxRate

from support.statement_samples import sample_statement

D = Decimal


def usd_line(center: str, assistant: str, cost: Decimal) -> ChargebackLine:
    return ChargebackLine(center, center.title(), "", assistant, "direct", 1, D(1), cost, {})


def fx_rate(currency: str = "EUR", rate: str = "0.9", places: int | None = None) -> FxRate:
    return FxRate(
        currency=currency,
        rate=D(rate),
        rate_date=date(2026, 10, 30),
        rule="month_end",
        source="fx_rates.csv",
        minor_units=minor_units(currency) if places is None else places,
    )


@pytest.mark.parametrize(
    ("code", "places"),
    [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("ISK", 0), ("BHD", 3), ("KWD", 3)],
)
def test_minor_units_per_iso_4217(code: str, places: int) -> None:
    assert minor_units(code) == places


@pytest.mark.parametrize("code", ["eur", "XYZ", "DEM", "XAU", ""])
def test_unknown_currency_is_a_permanent_error(code: str) -> None:
    with pytest.raises(PermanentError, match="not an active ISO 4217 currency code"):
        minor_units(code)


def test_no_statement_rate_means_no_conversion() -> None:
    assert convert(sample_statement()) is None


def test_eur_lines_add_up_to_the_rounded_exact_total() -> None:
    # 3 × 0.01 USD at 0.5: each line is exactly 0.005 EUR; rounding each alone gives 0.03,
    # but the exact total is 0.015 → 0.02, so one line must round down.
    lines = [usd_line("sales", "agent-a", D("0.01")) for _ in range(3)]
    statement = replace(sample_statement(), lines=lines, fx=fx_rate(rate="0.5"))

    converted = convert(statement)

    assert converted is not None
    assert converted.currency == "EUR"
    assert converted.total == D("0.02")
    assert converted.lines == [D("0.01"), D("0.01"), D("0.00")]
    assert sum(converted.lines) == converted.total


def test_jpy_has_no_minor_unit() -> None:
    statement = replace(sample_statement(), fx=fx_rate("JPY", "151.37"))
    usd_total = sum(line.cost_usd for line in statement.lines)

    converted = convert(statement)

    assert converted is not None
    assert converted.total == round_money(usd_total * D("151.37"), D(1))
    assert all(amount == amount.quantize(D(1)) for amount in converted.lines)
    assert all(amount.as_tuple().exponent == 0 for amount in converted.lines)
    assert sum(converted.lines) == converted.total


def test_by_cost_center_adds_up_and_keeps_line_order() -> None:
    statement = replace(sample_statement(), fx=fx_rate(rate="0.9137"))

    converted = convert(statement)

    assert converted is not None
    first_seen = list(dict.fromkeys(line.cost_center_id for line in statement.lines))
    assert list(converted.by_cost_center) == first_seen
    assert sum(converted.by_cost_center.values()) == converted.total
    for center, amount in converted.by_cost_center.items():
        own = [
            value
            for value, item in zip(converted.lines, statement.lines, strict=True)
            if item.cost_center_id == center
        ]
        assert amount == sum(own)


def test_amount_text_pads_to_the_minor_unit() -> None:
    assert amount_text(D("12"), 0) == "12"
    assert amount_text(D("12.5"), 2) == "12.50"
    assert amount_text(D("1.5"), 3) == "1.500"
    assert amount_text(D("-0"), 0) == "0"
    assert amount_text(D("-0.00"), 2) == "0.00"
    assert amount_text(D("-3.10"), 2) == "-3.10"


_cents = st.integers(min_value=-(10**9), max_value=10**11).map(lambda units: D(units) / 100)
_rates = st.decimals(min_value=D("0.0001"), max_value=D("20000"), places=6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    amounts=st.lists(_cents, max_size=40),
    rate=_rates,
    currency=st.sampled_from(["EUR", "JPY", "KWD", "GBP"]),
)
def test_converted_amounts_add_up_exactly_to_the_converted_total(
    amounts: list[Decimal], rate: Decimal, currency: str
) -> None:
    fx = fx_rate(currency, str(rate))
    step = quantum(fx.minor_units)

    converted = allocate_converted(amounts, fx)

    exact = [Fraction(amount) * Fraction(rate) for amount in amounts]
    assert sum(converted, D(0)) == round_money(sum(exact, Fraction(0)), step)
    for value, want in zip(converted, exact, strict=True):
        assert value == value.quantize(step)
        assert abs(Fraction(value) - want) < Fraction(step)


@settings(max_examples=100, deadline=None)
@given(
    costs=st.lists(
        st.integers(min_value=0, max_value=10**8).map(lambda c: D(c) / 100), max_size=20
    ),
    rate=_rates,
)
def test_a_statements_converted_lines_add_up_to_its_converted_total(
    costs: list[Decimal], rate: Decimal
) -> None:
    lines = [usd_line(f"cc{index % 3}", f"agent-{index}", cost) for index, cost in enumerate(costs)]
    statement = replace(sample_statement(), lines=lines, fx=fx_rate("EUR", str(rate)))

    converted = convert(statement)

    assert converted is not None
    usd_total = sum((item.cost_usd for item in lines), D(0))
    assert converted.total == round_money(usd_total * rate)
    assert sum(converted.lines, D(0)) == converted.total
    assert sum(converted.by_cost_center.values(), D(0)) == converted.total
