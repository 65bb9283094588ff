"""The fetch checks a body decoded with its fractions as ``float`` (``rough``) and must come
to exactly the verdict of the exact ``Decimal`` decoding: the same spans, or the same error
word for word. ``roughly_good`` may only say True where the exact check finds nothing.

Rows are generated as JSON text with the numbers that could tell a ``float`` from a
``Decimal``: ``-0.0``, ``-1e-400`` (a float underflows to a signed zero), ``1e400`` (a float
overflows), big integers, whole numbers as integers among fractions, and every other kind
of value a row may hold or lack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback.analytics.checks import result_problems, roughly_good
from vapi_chargeback.analytics.decode import decode_json, iter_json_array, result_from_json
from vapi_chargeback.analytics.errors import VapiAnalyticsError
from vapi_chargeback.analytics.models import (
    AnalyticsOperation,
    AnalyticsQuery,
    TimeRange,
    VariableValueGroupBy,
)
from vapi_chargeback.analytics.responses import read_results

OPERATIONS = [
    AnalyticsOperation(operation="count", column="id", alias="count_id"),
    AnalyticsOperation(operation="sum", column="cost", alias="sum_cost"),
    AnalyticsOperation(operation="sum", column="duration", alias="sum_duration"),
    AnalyticsOperation(operation="min", column="id", alias="first_id"),
    AnalyticsOperation(operation="history", column="cost", alias="history_cost"),
]
QUERIES = [
    AnalyticsQuery(
        table="call",
        name=name,
        group_by=["assistantId"],
        group_by_variable_value=[VariableValueGroupBy(key="costCenter")],
        time_range=TimeRange(step="day"),
        operations=OPERATIONS[: 3 if name == "plain" else 5],
    )
    for name in ("plain", "full")
]
NUMBERS = st.one_of(
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,22})(\.[0-9]{1,14})?([eE][+-]?[0-9]{1,3})?\Z"),
    st.sampled_from(["0", "0.0", "-0", "-0.0", "-1e-400", "1e-400", "1e400", "1E+400", "7"]),
)
GOOD_NUMBERS = st.one_of(
    st.from_regex(r"\A(0|[1-9][0-9]{0,12})(\.[0-9]{1,12})?\Z"), st.sampled_from(["0", "2"])
)
VALUES = st.one_of(
    NUMBERS,
    st.sampled_from(['"x"', '"1.5"', "null", "true", "[]", "{}", '[{"value":-0.0}]']),
)


@st.composite
def _rows(draw: Any, mostly_good: bool) -> str:
    numbers = GOOD_NUMBERS if mostly_good else VALUES
    fields = {
        "date": '"2026-10-01T00:00:00.000Z"',
        "assistantId": draw(st.sampled_from(['"a1"', "null", "1.5", "-0.0", "[]"])),
        "costCenter": draw(st.sampled_from(['"cc"', '""', "null", "2.50"])),
        "count_id": draw(st.sampled_from(["3", "0"]) if mostly_good else VALUES),
        "sum_cost": draw(numbers),
        "sum_duration": draw(numbers),
        "first_id": draw(st.sampled_from(['"c1"', "null", "1.5"])),
        "history_cost": "[" + ",".join(f'{{"value":{draw(numbers)}}}' for _ in range(2)) + "]",
    }
    kept = [key for key in fields if draw(st.integers(0, 30)) != 0]
    return "{" + ",".join(f'"{key}":{fields[key]}' for key in kept) + "}"


@st.composite
def _bodies(draw: Any) -> bytes:
    mostly_good = draw(st.booleans())
    time_range = draw(st.sampled_from(["{}", '{"start":"2026-10-01T00:00:00Z"}', '{"x":1.5}']))
    results = [
        f'{{"name":"{query.name}","timeRange":{time_range},"result":['
        + ",".join(draw(st.lists(_rows(mostly_good), max_size=6)))
        + "]}"
        for query in QUERIES
    ]
    return ("[" + ",".join(results) + "]").encode()


def _verdict(raw: bytes, keep_results: bool) -> tuple[str, Any]:
    """What ``read_results`` makes of ``raw`` with ``check=True``: spans or the error text."""
    try:
        _, spans = read_results(
            raw,
            QUERIES,
            request="batch 0",
            status=200,
            content_type="application/json",
            scrub=str,
            keep_results=keep_results,
            check=True,
        )
    except VapiAnalyticsError as error:
        return type(error).__name__, str(error)
    return "spans", spans


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies())
def test_the_rough_check_comes_to_the_exact_verdict(raw: bytes) -> None:
    """``keep_results=True`` decodes exactly; ``False`` (the fetch) decodes roughly."""
    assert _verdict(raw, keep_results=False) == _verdict(raw, keep_results=True)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies())
def test_roughly_good_only_where_the_exact_check_finds_nothing(raw: bytes) -> None:
    exact = decode_json(raw)
    for (item, _, _), exact_item, query in zip(
        iter_json_array(raw, rough=True), exact, QUERIES, strict=True
    ):
        try:
            rough_result, exact_result = result_from_json(item), result_from_json(exact_item)
        except ValueError:
            continue
        if roughly_good(query, rough_result):
            assert result_problems(query, exact_result) == []


@pytest.mark.parametrize(
    ("value", "good"),
    [("1.5", True), ("0.0", True), ("-0.0", False), ("-1e-400", False), ("1e400", True)],
)
def test_a_float_is_roughly_good_only_unsigned_and_finite(value: str, good: bool) -> None:
    """``1e400`` is too big for a float: msgspec refuses it and the element is decoded exactly."""
    raw = (
        '[{"name":"plain","timeRange":{},"result":[{"date":"d","assistantId":"a",'
        f'"costCenter":"c","count_id":1,"sum_cost":{value},"sum_duration":2}}]}}]'
    ).encode()
    item = next(iter_json_array(raw, rough=True))[0]
    assert roughly_good(QUERIES[0], result_from_json(item)) is good
    if not good:
        assert _verdict(raw, keep_results=False) == _verdict(raw, keep_results=True)
        assert _verdict(raw, keep_results=False)[0] != "spans"


def test_a_rough_body_decodes_fractions_as_float() -> None:
    item = next(iter_json_array(b'[{"a":1.50,"b":2}]', rough=True))[0]
    assert item == {"a": 1.5, "b": 2}
    assert type(item["a"]) is float
    assert json.loads('{"a":1.50}')["a"] == item["a"]
