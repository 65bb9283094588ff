"""The fast paths of attribution give what the reference gives: the memoised
:class:`Attributor` (one :func:`attribute` call per stretch between cuts, one lookup per
(assistant, variable value) over a query's days) answers :func:`attribute` for every day,
and the column reader answers the row-by-row reader, errors included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback.attribution import (
    AnalyticsResultError,
    Attributor,
    _QueryReader,
    attribute,
    attributed_columns,
    attributions,
)
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.mapping_rules import ListedAssistant, MappingRule, RuleBook
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import build_plan

from support.core_fixtures import Call, base_config, fake_results

D = Decimal
MONTH = [date(2026, 10, 1) + timedelta(days=n) for n in range(31)]
ASSISTANTS = [None, "", 7, "asst-a", "ASST-A", "asst-b", "asst-c", "asst-z",
              "00000000-0000-0000-0000-000000000000"]  # fmt: skip
VALUES = [None, "", "sales", "support", "ops", "gone", 3]
LISTED = {
    "asst-b": ListedAssistant(id="asst-b", name="ops-bot", metadata={"costCenter": "ops"}),
    "asst-c": ListedAssistant(id="asst-c", name="sales-c", metadata={"team": "t"}),
}
RULES = [
    MappingRule(metadata="costCenter", team_key="team"),
    MappingRule(name="^sales-", cost_center="sales", team="by-name"),
]
day_in_month = st.sampled_from(MONTH)
mapping_row = st.tuples(
    st.sampled_from(["asst-a", "asst-b", "asst-c"]),
    st.sampled_from(["sales", "support", "ops"]),
    day_in_month,
    st.integers(0, 40),
)


@pytest.fixture
def config(config_from: Callable[[dict[str, Any]], ChargebackConfig]) -> ChargebackConfig:
    """Sales, support and ``ops``, which retires mid-month: a cut for every pair naming it."""
    doc = base_config()
    doc["cost_centers"].append(
        {"id": "ops", "name": "Ops", "owner_email": "o@example.com", "valid_to": "2026-10-15"}
    )
    return config_from(doc)


def _mapping(config: ChargebackConfig, rows: list[tuple[str, str, date, int]]) -> AssistantMapping:
    """One row per assistant at most, valid from a day of the month for some days (rows
    charging ops end by its last day), so the mapping itself cuts months."""
    lines = ["assistant_id,team,cost_center_id,valid_from,valid_to"]
    for assistant, center, start, length in {row[0]: row for row in rows}.values():
        end = start + timedelta(days=length)
        if center == "ops":
            start, end = min(start, date(2026, 10, 15)), min(end, date(2026, 10, 15))
        open_ended = length >= 35 and center != "ops"
        lines.append(f"{assistant},team-{center},{center},{start},{'' if open_ended else end}")
    entries, problems = parse_mapping(
        "\n".join(lines).encode(), "teams.csv", set(config.cost_center_ids),
        ends=config.cost_center_ends,
    )  # fmt: skip
    assert problems == []
    return AssistantMapping(entries)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(mapping_row, max_size=3),
    with_rules=st.booleans(),
    order=st.permutations(MONTH),
)
def test_the_memoised_attributor_answers_attribute_on_every_day(
    config: ChargebackConfig,
    rows: list[tuple[str, str, date, int]],
    with_rules: bool,
    order: list[date],
) -> None:
    month = config.for_period(StatementPeriod.for_month("2026-10", config.timezone))
    mapping = _mapping(month, rows)
    book = RuleBook(RULES, LISTED) if with_rules else None
    ends = {center.id: center.valid_to for center in month.cost_centers}
    attributor = Attributor(month, mapping, book)
    pairs = [(a, v) for a in ASSISTANTS for v in VALUES]
    # Whole-month lookups first (the column path), then single days in any order.
    days = [MONTH[0]] * len(pairs) + [MONTH[-1]] * len(pairs)
    found = attributions(attributor, pairs * 2, days, (MONTH[0], MONTH[-1]))
    for (assistant, value), day, got in zip(pairs * 2, days, found, strict=True):
        assert got == attribute(ends, mapping, assistant, value, day, book)
    for day in order:
        for assistant, value in pairs:
            expected = attribute(ends, mapping, assistant, value, day, book)
            assert attributor(assistant, value, day) == expected
            [column] = attributions(attributor, [(assistant, value)], [day], (MONTH[0], MONTH[-1]))
            assert column == expected


calls = st.lists(
    st.builds(
        Call,
        day=day_in_month,
        cost=st.integers(0, 9_000).map(lambda units: D(units) / 1_000),
        assistant=st.sampled_from(["asst-a", "asst-b", "asst-c", None]),
        variable=st.sampled_from([None, "sales", "ops", "gone"]),
        duration=st.integers(0, 900).map(D),
    ),
    min_size=1,
    max_size=30,
)
odd_values = st.sampled_from([None, "1.5", True, {"x": 1}, [], "", D("NaN"), 2, D("0.1")])


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=calls,
    rows=st.lists(mapping_row, max_size=3),
    spoil=st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.sampled_from(["date", "assistantId", "measure"]),
            odd_values | st.sampled_from(["2026-10-05T12:00:00.000Z", "2026-09-30T22:00:00.000Z"]),
        ),
        max_size=3,
    ),
)
def test_the_column_reader_reads_what_the_row_by_row_reader_reads(
    config: ChargebackConfig,
    calls: list[Call],
    rows: list[tuple[str, str, date, int]],
    spoil: list[tuple[int, str, object]],
) -> None:
    """Same days, attributions and values on good rows; on a spoiled row (a bucket that is
    no day of the query, an odd assistant, a measure that is null, text or no number) either
    the same columns or the same error, naming the same row."""
    month = config.for_period(StatementPeriod.for_month("2026-10", config.timezone))
    mapping = _mapping(month, rows)
    plan = build_plan(month, StatementPeriod.for_month("2026-10", month.timezone))
    results = fake_results(plan, calls)
    for query in plan.queries:
        result = results[query.name]
        for index, key, value in spoil:
            if result.result:
                row = result.result[index % len(result.result)]
                if key == "measure":
                    key = next(iter(k for k in row if k.startswith(("sum_", "count_"))), key)
                if key in row:
                    row[key] = value
        measures = ["calls", "seconds", "cost"]
        reference = _QueryReader(plan, query.name, measures, result.result)
        try:
            expected = reference.row_by_row(Attributor(month, mapping))
        except (AnalyticsResultError, TypeError) as error:
            with pytest.raises(type(error)) as raised:
                attributed_columns(month, mapping, plan, results, query.name, measures)
            assert str(raised.value) == str(error)
            continue
        got = attributed_columns(month, mapping, plan, results, query.name, measures)
        assert got.days == expected.days
        assert got.pairs == expected.pairs
        assert got.attributions == expected.attributions
        assert [tuple(map(D, v)) for v in got.values] == [tuple(map(D, v)) for v in expected.values]
        assert [tuple(map(type, v)) for v in got.values] == [
            tuple(map(type, v)) for v in expected.values
        ]
