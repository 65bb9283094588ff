"""One rounding rule for minutes and one percent share, the same figures as before they merged.

Minutes were once rounded by ``Decimal.quantize(…, ROUND_HALF_UP)`` in the writers and by
``round_money`` in allocation; shares were computed as ``part / whole`` in the workbooks
and as ``part * 100 / whole`` in mails and on the statements page. These properties pin
that the single functions give those very numbers, so no statement byte moves.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vapi_chargeback.money import (
    CENT,
    HUNDRED,
    MINUTES_QUANTUM,
    percent_of,
    round_minutes,
    round_money,
)
from vapi_chargeback.statements.formatting import minutes_text
from vapi_chargeback.statements.totals import SHARE_PLACES, share

D = Decimal

any_minutes = st.decimals(
    min_value=D("-1000000"), max_value=D("1000000"), places=6, allow_nan=False
)
cents = st.decimals(min_value=D("-10000000"), max_value=D("10000000"), places=2, allow_nan=False)


def _quantized_half_up(minutes: Decimal) -> Decimal:
    """How the writers rounded minutes before there was one rule (and ``-0.00`` as ``0.00``)."""
    rounded = minutes.quantize(CENT, rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded.is_zero() else rounded


@given(any_minutes)
def test_minutes_round_half_up_like_decimal_quantize(minutes: Decimal) -> None:
    rounded = round_minutes(minutes)

    assert rounded == _quantized_half_up(minutes)
    assert str(rounded) == str(_quantized_half_up(minutes))
    assert rounded == round_money(minutes, MINUTES_QUANTUM)


@given(st.decimals(min_value=D("-100000"), max_value=D("100000"), places=2, allow_nan=False))
def test_minutes_a_statement_holds_are_shown_as_they_are(minutes: Decimal) -> None:
    """Statement minutes are already in hundredths: rounding them again changes nothing."""
    assert str(round_minutes(minutes)) == f"{minutes:.2f}".replace("-0.00", "0.00")
    assert minutes_text(minutes) == str(round_minutes(minutes))


@pytest.mark.parametrize(
    ("minutes", "shown"),
    [
        pytest.param("-0.00", "0.00", id="negative-zero"),
        pytest.param("-0.004", "0.00", id="rounds-to-zero-unsigned"),
        pytest.param("0.005", "0.01", id="half-up"),
        pytest.param("-0.005", "-0.01", id="half-away-from-zero"),
        pytest.param("12", "12.00", id="whole"),
    ],
)
def test_minutes_examples(minutes: str, shown: str) -> None:
    assert str(round_minutes(D(minutes))) == shown


@given(cents, cents)
def test_percent_of_is_the_share_every_reader_computed(part: Decimal, whole: Decimal) -> None:
    percent = percent_of(part, whole)
    if not whole:
        assert percent is None
        assert share(part, whole) is None
        return
    assert percent == part * HUNDRED / whole
    assert percent / HUNDRED == part / whole
    assert share(part, whole) == (part / whole).quantize(SHARE_PLACES)


def test_percent_examples() -> None:
    assert percent_of(D("25.00"), D("100.00")) == 25
    assert percent_of(D("1"), D("3")) == D("33.33333333333333333333333333")
    assert percent_of(D("5"), D("0.00")) is None
    assert share(D("1"), D("3")) == D("0.333333")
