"""``to_decimal`` and ``to_int``: what may arrive as a number, and what must be refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vapi_chargeback.analytics.numbers import InvalidNumberError, to_decimal, to_int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="null"),
        pytest.param(0, Decimal(0), id="int-zero"),
        pytest.param(12, Decimal(12), id="int"),
        pytest.param(10**20, Decimal(10**20), id="bigint"),
        pytest.param(Decimal("0.1"), Decimal("0.1"), id="decimal"),
        pytest.param(Decimal("-3.25"), Decimal("-3.25"), id="negative-decimal"),
        pytest.param("12.3456", Decimal("12.3456"), id="numeric-string"),
        pytest.param("42", Decimal(42), id="bigint-string"),
        pytest.param("-0.5", Decimal("-0.5"), id="negative-string"),
        pytest.param("+7", Decimal(7), id="plus-string"),
        pytest.param(".5", Decimal("0.5"), id="leading-dot"),
        pytest.param("1e-3", Decimal("0.001"), id="exponent-string"),
        pytest.param(
            "0.10000000000000000555", Decimal("0.10000000000000000555"), id="exact-digits"
        ),
    ],
)
def test_accepted_values_become_exact_decimals(value: object, expected: Decimal | None) -> None:
    result = to_decimal(value, field="sumCost")
    assert result == expected
    assert result is None or isinstance(result, Decimal)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        pytest.param(True, "not a boolean", id="true"),
        pytest.param(False, "not a boolean", id="false"),
        pytest.param(Decimal("NaN"), "finite", id="decimal-nan"),
        pytest.param(Decimal("Infinity"), "finite", id="decimal-inf"),
        pytest.param("NaN", "numeric string", id="string-nan"),
        pytest.param("Infinity", "numeric string", id="string-infinity"),
        pytest.param("inf", "numeric string", id="string-inf"),
        pytest.param("", "numeric string", id="empty"),
        pytest.param(" 1", "numeric string", id="padded"),
        pytest.param("1,5", "numeric string", id="comma"),
        pytest.param("$1.00", "numeric string", id="currency-symbol"),
        pytest.param("1_000", "numeric string", id="underscore"),
        pytest.param("abc", "numeric string", id="word"),
        pytest.param(0.1, "not a float", id="float"),
        pytest.param([1], "not list", id="list"),
        pytest.param({"v": 1}, "not dict", id="dict"),
    ],
)
def test_refused_values_name_the_field(value: object, says: str) -> None:
    with pytest.raises(InvalidNumberError) as caught:
        to_decimal(value, field="queries.cost.result[3].sumCost")
    assert str(caught.value).startswith("queries.cost.result[3].sumCost: ")
    assert says in str(caught.value)
    assert caught.value.field == "queries.cost.result[3].sumCost"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="null"),
        pytest.param(42, 42, id="int"),
        pytest.param("42", 42, id="string"),
        pytest.param(Decimal("3.0"), 3, id="whole-decimal"),
        pytest.param("9007199254740993", 9007199254740993, id="beyond-float-precision"),
    ],
)
def test_whole_numbers(value: object, expected: int | None) -> None:
    assert to_int(value, field="countId") == expected


@pytest.mark.parametrize("value", ["3.5", Decimal("0.1"), True], ids=["string", "decimal", "bool"])
def test_fractions_are_not_counts(value: object) -> None:
    with pytest.raises(InvalidNumberError, match="countId"):
        to_int(value, field="countId")
