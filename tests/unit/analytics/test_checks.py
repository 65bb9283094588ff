"""Rows held to the promises of their query: each way a row breaks one is named, once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.analytics import checks
from vapi_chargeback.analytics.checks import (
    MAX_REPORTED_PROBLEMS,
    check_results,
    result_problems,
)
from vapi_chargeback.analytics.errors import UnusableResponseError
from vapi_chargeback.analytics.models import (
    AnalyticsOperation,
    AnalyticsQuery,
    AnalyticsQueryResult,
    TimeRange,
    VariableValueGroupBy,
)

DROP = object()
"""A change that removes the key from the row."""

OPERATIONS = [
    AnalyticsOperation(operation="sum", column="cost", alias="sum_cost"),
    AnalyticsOperation(operation="count", column="id", alias="count_id"),
    AnalyticsOperation(operation="history", column="cost", alias="history_cost"),
    AnalyticsOperation(operation="min", column="id", alias="first_id"),
]
QUERY = AnalyticsQuery(
    table="call",
    name="cost",
    group_by=["assistantId"],
    group_by_variable_value=[VariableValueGroupBy(key="costCenter")],
    time_range=TimeRange(step="day"),
    operations=OPERATIONS,
)
GOOD_ROW: dict[str, Any] = {
    "assistantId": "a1",
    "costCenter": None,
    "date": "2026-10-01T00:00:00.000Z",
    "sum_cost": Decimal("1.5"),
    "count_id": 3,
    "history_cost": [{"date": "2026-10-01T00:00:00.000Z", "value": Decimal("1.5")}],
    "first_id": "c1",
}


def result(*rows: dict[str, Any]) -> AnalyticsQueryResult:
    return AnalyticsQueryResult.model_validate({"name": "cost", "timeRange": {}, "result": rows})


def row(**changes: Any) -> dict[str, Any]:
    changed = {**GOOD_ROW, **changes}
    return {key: value for key, value in changed.items() if value is not DROP}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        pytest.param({}, None, id="good"),
        pytest.param({"sum_cost": "1.5", "count_id": "4"}, None, id="numeric-strings"),
        pytest.param({"sum_cost": None}, None, id="null-sum"),
        pytest.param(
            {"assistantId": DROP},
            "'cost' row 0: no group key 'assistantId' (the query groups by it)",
            id="no-group-by-key",
        ),
        pytest.param(
            {"date": DROP},
            "'cost' row 0: no group key 'date' (the query groups by it)",
            id="no-date",
        ),
        pytest.param(
            {"costCenter": {"a": 1}},
            "'cost' row 0: group key 'costCenter' is a JSON object, not a plain value",
            id="nested-variable-value",
        ),
        pytest.param(
            {"sum_cost": DROP},
            "'cost' row 0.sum_cost: missing (sum of cost was asked for)",
            id="no-aggregate",
        ),
        pytest.param(
            {"sum_cost": -1},
            "'cost' row 0.sum_cost: -1 is negative; no sum of cost can be",
            id="negative",
        ),
        pytest.param(
            {"sum_cost": Decimal("NaN")},
            "'cost' row 0.sum_cost: expected a finite number, got Decimal('NaN')",
            id="nan",
        ),
        pytest.param(
            {"sum_cost": True},
            "'cost' row 0.sum_cost: expected a number, not a boolean, got True",
            id="boolean",
        ),
        pytest.param(
            {"count_id": Decimal("2.5")},
            "'cost' row 0.count_id: 2.5 is not a whole count",
            id="fractional-count",
        ),
        pytest.param(
            {"count_id": None}, "'cost' row 0.count_id: null where a count belongs", id="null-count"
        ),
        pytest.param(
            {"history_cost": {"a": 1}},
            "'cost' row 0.history_cost: a JSON object where a history (a list of points) belongs",
            id="history-not-a-list",
        ),
        pytest.param(
            {"history_cost": [{"value": -1}]},
            "'cost' row 0.history_cost[0].value: -1 is negative; no sum of cost can be",
            id="history-point-negative",
        ),
        pytest.param(
            {"first_id": ["c1"]}, "'cost' row 0.first_id: ['c1'] is not an id", id="min-id-not-id"
        ),
    ],
)
def test_each_broken_promise_is_named(changes: dict[str, Any], problem: str | None) -> None:
    assert result_problems(QUERY, result(row(**changes))) == ([problem] if problem else [])


def test_rows_need_a_date_only_when_the_query_has_a_step() -> None:
    undated = QUERY.model_copy(update={"time_range": TimeRange()})

    assert result_problems(undated, result(row(date=DROP))) == []


def test_problems_stop_being_collected_after_the_cap() -> None:
    broken = [row(sum_cost=-1) for _ in range(3 * MAX_REPORTED_PROBLEMS)]

    problems = result_problems(QUERY, result(*broken))

    assert len(problems) == MAX_REPORTED_PROBLEMS + 1
    assert problems[-1].startswith(f"'cost' row {MAX_REPORTED_PROBLEMS}.sum_cost")


def test_check_results_raises_naming_the_request_and_the_first_problems() -> None:
    broken = [row(sum_cost=-index - 1) for index in range(MAX_REPORTED_PROBLEMS + 1)]

    with pytest.raises(UnusableResponseError) as caught:
        check_results([QUERY], [result(*broken)], request="stored batch-000.json", status_code=200)

    message = str(caught.value)
    assert message.startswith("stored batch-000.json: results that break what the queries")
    assert "'cost' row 0.sum_cost: -1 is negative" in message
    assert f"row {MAX_REPORTED_PROBLEMS - 1}.sum_cost" in message
    assert f"row {MAX_REPORTED_PROBLEMS}.sum_cost" not in message
    assert "; … and more. Nothing of this batch was used" in message
    assert caught.value.status_code == 200


def test_check_results_passes_good_results_and_pairs_them_with_their_queries() -> None:
    other = QUERY.model_copy(update={"name": "other", "operations": OPERATIONS[:1]})

    check_results([QUERY, other], [result(row()), result({**row(), "count_id": None})], request="r")
    with pytest.raises(UnusableResponseError, match="count_id: null where a count belongs"):
        check_results(
            [other, QUERY], [result(row()), result({**row(), "count_id": None})], request="r"
        )


PLAIN_QUERY = AnalyticsQuery(
    table="call",
    name="plain",
    group_by=["assistantId", "endedReason"],
    group_by_variable_value=[VariableValueGroupBy(key="costCenter")],
    time_range=TimeRange(step="day"),
    operations=[
        AnalyticsOperation(operation="sum", column="cost", alias="sum_cost"),
        AnalyticsOperation(operation="count", column="id", alias="count_id"),
    ],
)
"""A query whose columns all take the column-at-a-time path when its rows are good."""
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.integers(min_value=-3, max_value=10**12),
    st.decimals(min_value=-3, max_value=10**9, places=3),
    st.sampled_from([Decimal("NaN"), Decimal("-0"), Decimal("1E+400"), Decimal("2.0")]),
    st.just([1]),
    st.just({"n": 1}),
)
PLAIN_KEYS = ("assistantId", "endedReason", "costCenter", "date", "sum_cost", "count_id")


def _plain_row(data: st.DataObject) -> dict[str, Any]:
    row: dict[str, Any] = {
        "assistantId": "a1",
        "endedReason": "voicemail",
        "costCenter": None,
        "date": "2026-10-01T00:00:00.000Z",
        "sum_cost": Decimal("1.5"),
        "count_id": 3,
    }
    for key in data.draw(st.lists(st.sampled_from(PLAIN_KEYS), max_size=2)):
        change = data.draw(st.one_of(ANY_VALUE, st.just(DROP)))
        if change is DROP:
            row.pop(key, None)
        else:
            row[key] = change
    return row


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_column_at_a_time_check_finds_what_the_row_by_row_check_finds(
    data: st.DataObject,
) -> None:
    """The fast path may only say "all good" where the row-by-row check finds nothing."""
    rows = [_plain_row(data) for _ in range(data.draw(st.integers(0, 6)))]
    result = AnalyticsQueryResult(name="plain", timeRange={}, result=rows)

    found = result_problems(PLAIN_QUERY, result)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(checks, "_plainly_good", lambda *_: False)
        row_by_row = result_problems(PLAIN_QUERY, result)

    assert found == row_by_row


def test_good_rows_take_the_column_at_a_time_path() -> None:
    rows = [{**dict.fromkeys(PLAIN_KEYS, "x"), "sum_cost": Decimal(2), "count_id": 1}] * 3

    assert checks._plainly_good(
        rows,
        ["assistantId", "endedReason", "costCenter", "date"],
        [
            ("sum_cost", "sum", "cost"),
            ("count_id", "count", "id"),
        ],
    )


WIDE_QUERY = PLAIN_QUERY.model_copy(
    update={
        "name": "wide",
        "operations": [
            *PLAIN_QUERY.operations,
            AnalyticsOperation(operation="sum", column="costBreakdown.llm", alias="sum_llm"),
            AnalyticsOperation(operation="count", column="id", alias="count_again"),
        ],
    }
)
"""Several sums and counts: the column-at-a-time path checks like columns together."""


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_like_columns_checked_together_find_what_the_row_by_row_check_finds(
    data: st.DataObject,
) -> None:
    rows = []
    for _ in range(data.draw(st.integers(0, 6))):
        row = _plain_row(data) | {"sum_llm": Decimal("0.25"), "count_again": 1}
        for key in data.draw(st.lists(st.sampled_from(["sum_llm", "count_again"]), max_size=1)):
            change = data.draw(st.one_of(ANY_VALUE, st.just(DROP)))
            if change is DROP:
                row.pop(key)
            else:
                row[key] = change
        rows.append(row)
    result = AnalyticsQueryResult(name="wide", timeRange={}, result=rows)

    found = result_problems(WIDE_QUERY, result)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(checks, "_plainly_good", lambda *_: False)
        row_by_row = result_problems(WIDE_QUERY, result)

    assert found == row_by_row


EDGE_VALUES = [
    Decimal("-1.5"),
    Decimal("-0.0"),
    Decimal("-0"),
    Decimal("NaN"),
    Decimal("-NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    Decimal("1E+400"),
    -1,
    0,
    True,
    None,
    "1.5",
    2.5,
]


@pytest.mark.parametrize("value", EDGE_VALUES, ids=repr)
@pytest.mark.parametrize("key", ["sum_cost", "sum_llm", "count_id", "count_again"])
@pytest.mark.parametrize("position", [0, 2, 4])
def test_one_edge_value_among_good_rows_is_judged_as_row_by_row(
    value: object, key: str, position: int
) -> None:
    rows = [
        {
            **dict.fromkeys(PLAIN_KEYS[:4], "x"),
            "sum_cost": Decimal("1.25") if index % 2 else 0,
            "sum_llm": Decimal("0.5"),
            "count_id": 3,
            "count_again": index,
        }
        for index in range(5)
    ]
    rows[position][key] = value
    result = AnalyticsQueryResult(name="wide", timeRange={}, result=rows)

    found = result_problems(WIDE_QUERY, result)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(checks, "_plainly_good", lambda *_: False)
        row_by_row = result_problems(WIDE_QUERY, result)

    assert found == row_by_row
