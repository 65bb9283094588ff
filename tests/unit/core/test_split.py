"""Largest-remainder splitting and rounding: exact to the cent, never negative."""

from __future__ import annotations

import math
from decimal import Decimal, Inexact
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.breakdowns import round_to_statement
from vapi_chargeback.money import CENT, from_units, round_half_up, round_money
from vapi_chargeback.split import CALL_QUANTUM, exact_sum, round_to_total, split_exact

D = Decimal


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        pytest.param("100.00", [1, 1, 1], ["33.34", "33.33", "33.33"], id="thirds-first-gets-cent"),
        pytest.param("0.01", [1, 1], ["0.01", "0.00"], id="one-cent-tie-to-earlier"),
        pytest.param("0.01", [1, 3], ["0.00", "0.01"], id="one-cent-to-largest-remainder"),
        pytest.param("0.00", [0, 0], ["0.00", "0.00"], id="nothing-by-nothing"),
        pytest.param("10.00", [0, 5, 0], ["0.00", "10.00", "0.00"], id="single-driver"),
        pytest.param(
            "84.60", [40, 30, 10, 20], ["33.84", "25.38", "8.46", "16.92"], id="percentages"
        ),
        pytest.param("1.00", ["0.3", "0.3", "0.4"], ["0.30", "0.30", "0.40"], id="decimal-weights"),
        pytest.param("-10.00", [1, 2], ["-3.33", "-6.67"], id="negative-mirrors"),
        pytest.param("0.00", [1, 2], ["0.00", "0.00"], id="zero-total"),
        pytest.param("0", [], [], id="nothing-over-nobody"),
    ],
)
def test_split_exact_examples(total: str, weights: list[object], parts: list[str]) -> None:
    result = split_exact(D(total), [D(str(w)) for w in weights])

    assert result == [D(p) for p in parts]
    assert [str(p) for p in result] == parts


@pytest.mark.parametrize(
    ("total", "weights", "message"),
    [
        pytest.param("1.005", [1], "not a whole number of 0.01", id="fraction-of-cent"),
        pytest.param("1.00", [1, -1], "non-negative", id="negative-weight"),
        pytest.param("1.00", [], "over no parts", id="no-parts"),
        pytest.param("10.00", [0, 0, 0], "all zero", id="zero-weights-the-caller-decides"),
    ],
)
def test_split_exact_refuses(total: str, weights: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_exact(D(total), [D(w) for w in weights])


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        pytest.param("0.005", "0.01", id="half-up"),
        pytest.param("0.0049999", "0.00", id="below-half"),
        pytest.param("-0.005", "-0.01", id="half-away-from-zero"),
        pytest.param("2.675", "2.68", id="float-trap-value"),
        pytest.param("12", "12.00", id="integer"),
    ],
)
def test_round_money(value: str, rounded: str) -> None:
    assert str(round_money(D(value))) == rounded


def test_round_to_total_moves_the_drifting_cents() -> None:
    values = [D("0.004"), D("0.004"), D("0.004")]

    assert round_to_total(values) == [D("0.01"), D("0.00"), D("0.00")]
    assert [round_money(v) for v in values] == [D("0.00")] * 3


def test_exact_sum_refuses_to_round() -> None:
    with pytest.raises(Inexact):
        exact_sum([D("1e40"), D("1e-40")])


cents = st.integers(min_value=0, max_value=10**9).map(lambda n: D(n) / 100)
weights = st.lists(
    st.one_of(
        st.just(D(0)),
        st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False),
        st.integers(min_value=0, max_value=10**6).map(D),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(total=cents, weights=weights)
def test_split_is_exact_and_never_negative(total: Decimal, weights: list[Decimal]) -> None:
    weight_sum = sum((Fraction(w) for w in weights), Fraction(0))
    if not weight_sum and total:
        with pytest.raises(ValueError, match="all zero"):
            split_exact(total, weights)
        return

    parts = split_exact(total, weights)

    assert sum(parts, D(0)) == total
    assert all(part >= 0 for part in parts)
    assert all(part == part.quantize(CENT) for part in parts)
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total) * Fraction(weight) / weight_sum if weight_sum else Fraction(0)
        assert abs(Fraction(part) - exact) < Fraction(CENT)


@settings(max_examples=200, deadline=None)
@given(
    calls=st.integers(min_value=0, max_value=10**6),
    weights=weights.filter(lambda ws: any(ws)),
)
def test_calls_split_whole(calls: int, weights: list[Decimal]) -> None:
    parts = split_exact(D(calls), weights, CALL_QUANTUM)

    assert sum(parts, D(0)) == calls
    assert all(part == part.to_integral_value() and part >= 0 for part in parts)


amounts = st.decimals(min_value=-(10**6), max_value=10**7, places=6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(amounts, min_size=1, max_size=60))
def test_rounded_lines_add_up_to_the_rounded_total(values: list[Decimal]) -> None:
    rounded = round_to_total(values)

    assert sum(rounded, D(0)) == round_money(sum(values, D(0)))
    for value, line in zip(values, rounded, strict=True):
        assert abs(line - value) < CENT
        assert line == line.quantize(CENT)


def _reference_largest_remainder(exact: list[Fraction], target: int) -> list[int]:
    """The Fraction implementation ``split.py`` had before its integer rewrite: the reference."""
    floors = [math.floor(value) for value in exact]
    missing = target - sum(floors)
    assert 0 <= missing <= len(exact)
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for index in by_remainder[:missing]:
        floors[index] += 1
    return floors


def _reference_round_to_total(
    values: list[Decimal | Fraction | int], quantum: Decimal = CENT
) -> list[Decimal]:
    units = [Fraction(value) / Fraction(quantum) for value in values]
    target = round_half_up(sum(units, Fraction(0)))
    return [from_units(part, quantum) for part in _reference_largest_remainder(units, target)]


def _reference_split_exact(
    total: Decimal, weights: list[Decimal], quantum: Decimal = CENT
) -> list[Decimal]:
    units = Fraction(total) / Fraction(quantum)
    sign = -1 if units < 0 else 1
    exact_weights = [Fraction(weight) for weight in weights]
    weight_sum = sum(exact_weights, Fraction(0))
    magnitude = abs(units)
    shares = [magnitude * weight / weight_sum for weight in exact_weights]
    parts = _reference_largest_remainder(shares, int(magnitude))
    return [from_units(sign * part, quantum) for part in parts]


ties = st.sampled_from([D("0.005"), D("-0.005"), D("0.015"), D("1.0049"), D(0)])
"""Values whose remainders tie, so the order of the extra quanta is exercised."""
minutes = st.integers(min_value=0, max_value=10**7).map(lambda s: Fraction(s) / 60)
mixed_values = st.lists(
    st.one_of(amounts, minutes, st.integers(min_value=-(10**6), max_value=10**6), ties),
    max_size=80,
)


@settings(max_examples=500, deadline=None)
@given(
    values=mixed_values,
    quantum=st.sampled_from([CENT, D("0.1"), D("0.0001"), D(1), D("0.25"), D("0.001")]),
)
def test_round_to_total_matches_the_fraction_reference(
    values: list[Decimal | Fraction | int], quantum: Decimal
) -> None:
    """Integer arithmetic gives exactly what exact Fraction arithmetic gave: the same
    digits, the same exponent, the same ties to the earlier value."""
    expected = _reference_round_to_total(values, quantum)

    got = round_to_total(values, quantum)

    assert got == expected
    assert [str(part) for part in got] == [str(part) for part in expected]


@settings(max_examples=500, deadline=None)
@given(
    total=st.integers(min_value=-(10**9), max_value=10**9).map(lambda n: D(n) / 100),
    weights=weights.filter(lambda ws: any(ws)),
)
def test_split_exact_matches_the_fraction_reference(total: Decimal, weights: list[Decimal]) -> None:
    expected = _reference_split_exact(total, weights)

    got = split_exact(total, weights)

    assert [str(part) for part in got] == [str(part) for part in expected]


def test_round_to_total_ties_go_to_the_earlier_value() -> None:
    assert round_to_total([D("0.005"), D("0.005"), D("0.005")]) == [
        D("0.01"),
        D("0.01"),
        D("0.00"),
    ]
    assert round_to_total([Fraction(1, 3)] * 3, CALL_QUANTUM) == [D(1), D(0), D(0)]


def _reference_round_to_statement(
    exact: list[Decimal | Fraction], total: Decimal, quantum: Decimal
) -> list[Decimal]:
    """``breakdowns.round_to_statement`` as it was, in Fractions: the reference."""
    if not exact:
        return []
    fractions = [Fraction(value) for value in exact]
    whole = sum(fractions, Fraction(0))
    if round_money(whole, quantum) == total:
        return _reference_round_to_total(list(fractions), quantum)
    if not whole:
        return _reference_split_exact(total, [D(1)] * len(exact), quantum)
    scale = Fraction(total) / whole
    return _reference_round_to_total([value * scale for value in fractions], quantum)


@settings(max_examples=500, deadline=None)
@given(
    values=st.lists(st.one_of(amounts, minutes, ties), max_size=40),
    drift=st.integers(min_value=-3, max_value=3),
    quantum=st.sampled_from([CENT, D("0.01"), D("0.0001"), D(1)]),
)
def test_round_to_statement_matches_the_fraction_reference(
    values: list[Decimal | Fraction], drift: int, quantum: Decimal
) -> None:
    """Rounded against a statement total a few quanta off their own sum (as a cost center's
    lines may be), or against it exactly (``drift`` 0), or spread evenly (a zero sum)."""
    total = round_money(sum((Fraction(v) for v in values), Fraction(0)), quantum) + drift * quantum

    got = round_to_statement(values, total, quantum)

    assert [str(part) for part in got] == [
        str(part) for part in _reference_round_to_statement(values, total, quantum)
    ]
    assert sum(got, D(0)) == (total if values else 0)
