"""Breakdown tables made a column at a time, in integers, are the tables the row-at-a-time
maker gave: every cell, every total, the row order, on random groups and statement totals
(drifting a few cents from the groups' own sums, adding up to zero, negative)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from test_split import _reference_round_to_statement

from vapi_chargeback.attribution import Attribution
from vapi_chargeback.breakdowns import (
    _AVERAGES,
    _DIMENSION_COLUMNS,
    _METRIC_COLUMNS,
    _MONEY_METRICS,
    COVERAGE_COLUMN,
    SECONDS_PER_MINUTE,
    TOTAL_LABEL,
    GroupKey,
    _bucket,
    _coverage,
    _Definition,
    _display,
    _named,
    _ratio,
    _sorted_keys,
    _table,
)
from vapi_chargeback.money import CENT, MINUTES_QUANTUM, round_money
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import METRIC_MEASURES, DefinitionPlan, measure_alias
from vapi_chargeback.split import exact_context
from vapi_chargeback.statement import Breakdown, BreakdownCell

D = Decimal
PERIOD = StatementPeriod.for_month("2026-10", "Europe/Berlin")
DIMENSIONS = ["assistantId", "status", "endedReason", "type"]
METRICS = sorted(METRIC_MEASURES)
COMPONENTS = ["transport", "stt", "llm", "tts", "vapi"]


def _reference_table(
    definition: DefinitionPlan,
    groups: Mapping[GroupKey, Sequence[Decimal]],
    totals: Mapping[str, Decimal],
) -> Breakdown:
    """The row-at-a-time table maker ``breakdowns._table`` was: a dict per group, each
    additive metric rounded by the Fraction reference of ``round_to_statement``."""
    measures = list(definition.aliases)
    sums = [
        dict(zip(measures, groups[key], strict=True))
        for key in sorted(groups, key=lambda k: tuple((p is None, p or "") for p in k))
    ]
    keys = sorted(groups, key=lambda k: tuple((p is None, p or "") for p in k))
    whole = {name: sum((s[name] for s in sums), D(0)) for name in measures}
    for name in set(measures) & set(totals):
        whole[name] = totals[name]
    if "seconds" in whole and "minutes" in totals:
        whole["seconds"] = totals["minutes"] * SECONDS_PER_MINUTE

    def minutes(s: Mapping[str, Decimal]) -> Fraction:
        return Fraction(s["seconds"]) / SECONDS_PER_MINUTE

    def metric(name: str, rows: list[Mapping[str, Decimal]]) -> list[BreakdownCell]:
        if name == "calls":
            return [int(s["calls"]) for s in rows]
        if name == "minutes":
            target = round_money(minutes(whole), MINUTES_QUANTUM)
            exact = [minutes(s) for s in rows]
            return list(_reference_round_to_statement(exact, target, MINUTES_QUANTUM))
        if name in _MONEY_METRICS:
            exact = [s[name] for s in rows]
            return list(_reference_round_to_statement(exact, round_money(whole[name]), CENT))
        assert name in _AVERAGES
        ratio = {
            "avg_cost_per_call": lambda s: _ratio(
                s["cost"].as_integer_ratio(), s["calls"].as_integer_ratio()
            ),
            "avg_minutes_per_call": lambda s: _ratio(
                minutes(s).as_integer_ratio(), s["calls"].as_integer_ratio()
            ),
            "avg_cost_per_minute": lambda s: _ratio(
                s["cost"].as_integer_ratio(), minutes(s).as_integer_ratio()
            ),
        }[name]
        return [ratio(s) for s in rows]

    columns = [] if definition.step is None else [definition.step]
    columns += [COVERAGE_COLUMN] if definition.step == "week" else []
    columns += [_DIMENSION_COLUMNS[d] for d in definition.dimensions]
    labels = len(columns)
    columns += [_METRIC_COLUMNS[m] for m in definition.metrics]
    metric_columns = [metric(m, sums) for m in definition.metrics]
    rows = []
    for i, key in enumerate(keys):
        parts = list(key)
        cells: list[BreakdownCell] = []
        if definition.step is not None:
            bucket = parts.pop(0)
            cells.append(bucket)
            if definition.step == "week":
                cells.append(_coverage(bucket, PERIOD))
        cells += [_named(d, p) for d, p in zip(definition.dimensions, parts, strict=True)]
        rows.append([*cells, *(values[i] for values in metric_columns)])
    total: list[BreakdownCell] = [TOTAL_LABEL, *[""] * (labels - 1)] if labels else []
    total += [metric(m, [whole])[0] for m in definition.metrics]
    return Breakdown(definition.definition_id, definition.title, columns, rows, total)


money = st.one_of(
    st.decimals(min_value=-50, max_value=500, places=6, allow_nan=False),
    st.sampled_from([D("0.005"), D("-0.005"), D("0.015"), D("1.0049"), D(0)]),
)
"""Amounts, and amounts whose remainders tie, so the order of the extra cents is exercised."""
seconds = st.one_of(
    st.decimals(min_value=0, max_value=10**5, places=3, allow_nan=False),
    st.sampled_from([D(0), D(30), D("0.3"), D("59.999")]),
)
calls = st.integers(min_value=0, max_value=50).map(D)
values = st.fixed_dictionaries(
    {"calls": calls, "seconds": seconds, **{m: money for m in ["cost", *COMPONENTS]}}
)
label = st.one_of(st.none(), st.sampled_from(["a", "b", "asst-1", "asst-2", "zz"]))
day = st.integers(min_value=0, max_value=30).map(lambda n: date(2026, 10, 1) + timedelta(days=n))


@st.composite
def tables(draw: st.DrawFn) -> tuple[DefinitionPlan, dict[GroupKey, list[Decimal]], dict]:
    step = draw(st.sampled_from([None, "day", "week", "month"]))
    dimensions = draw(st.lists(st.sampled_from(DIMENSIONS), unique=True, max_size=2))
    metrics = draw(st.lists(st.sampled_from(METRICS), unique=True, min_size=1))
    definition = _definition(dimensions, step, metrics)
    aliases = definition.aliases
    key = st.tuples(*([day] if step else []), *([label] * len(dimensions)))
    groups = draw(st.dictionaries(key, values, max_size=25))
    if groups and draw(st.booleans()):
        # A refund: the last group's amounts cancel the others', so the table adds to zero.
        *others, last = groups
        for measure in set(aliases) - {"calls", "seconds"}:
            groups[last][measure] = -sum((groups[k][measure] for k in others), D(0))
    sums = {k: [v[m] for m in aliases] for k, v in groups.items()}
    drift = draw(st.sampled_from([0, 0, 1, -2, 3]))
    exact = {m: sum((v[m] for v in groups.values()), D(0)) for m in aliases}
    totals: dict[str, Decimal] = {}
    if draw(st.booleans()):
        totals = {m: round_money(v) + drift * CENT for m, v in exact.items() if m != "seconds"}
        totals["calls"] = exact.get("calls", D(0))
        if "seconds" in exact:
            totals["minutes"] = round_money(exact["seconds"] / 60, MINUTES_QUANTUM) + drift * CENT
    return definition, sums, totals


@settings(max_examples=400, deadline=None)
@given(tables())
def test_tables_made_a_column_at_a_time_are_the_row_at_a_time_tables(
    case: tuple[DefinitionPlan, dict[GroupKey, list[Decimal]], dict[str, Decimal]],
) -> None:
    definition, groups, totals = case

    got = _table(definition, list(definition.aliases), groups, PERIOD, totals)

    expected = _reference_table(definition, groups, totals)
    assert got == expected
    assert repr(got) == repr(expected)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(day, label, label), unique=True, max_size=30))
def test_keys_sort_missing_parts_last_as_the_sort_key_did(keys: list[GroupKey]) -> None:
    assert _sorted_keys(keys) == sorted(
        keys, key=lambda key: tuple((p is None, p or "") for p in key)
    )


def _reference_groups(
    definition: DefinitionPlan,
    order: list[str],
    rows: list[tuple[date, Attribution, dict[str, object], tuple[Decimal | int, ...]]],
) -> dict[GroupKey, list[Decimal]]:
    """``_Definition.add`` as it was, a row at a time: the reference for ``add_rows``."""
    positions = [order.index(measure) for measure in definition.aliases]
    groups: dict[GroupKey, list[Decimal]] = {}
    for day, attribution, row, values in rows:
        parts: list[date | str | None] = []
        if definition.step is not None:
            parts.append(_bucket(day, definition.step))
        for dimension in definition.dimensions:
            if dimension == "assistantId":
                parts.append(attribution.assistant_id or None)
                continue
            value = row.get(dimension)
            parts.append((value if type(value) is str else _display(value)) or None)
        sums = groups.get(tuple(parts))
        if sums is None:
            groups[tuple(parts)] = [Decimal(0) + values[p] for p in positions]
            continue
        for slot, position in enumerate(positions):
            sums[slot] += values[position]
    return groups


row_value = st.one_of(
    st.none(), st.sampled_from(["", "ended", "queued", "x"]), st.booleans(), st.integers(0, 3)
)
attributed = st.tuples(
    day,
    st.sampled_from(["", "asst-1", "asst-2"]).map(
        lambda a: Attribution("sales", "team", a, "direct")
    ),
    st.fixed_dictionaries({}, optional={d: row_value for d in DIMENSIONS if d != "assistantId"}),
    st.tuples(
        st.integers(0, 5),
        *[st.decimals(min_value=-5, max_value=50, places=4, allow_nan=False)] * 7,
    ),
)
ORDER = sorted(["calls", "seconds", "cost", *COMPONENTS])


@settings(max_examples=300, deadline=None)
@given(
    step=st.sampled_from([None, "day", "week", "month"]),
    dimensions=st.lists(st.sampled_from(DIMENSIONS), unique=True, max_size=3),
    rows=st.lists(attributed, max_size=30),
)
def test_rows_summed_a_column_at_a_time_are_the_row_at_a_time_groups(
    step: str | None, dimensions: list[str], rows: list
) -> None:
    metrics = ["calls", "minutes", "cost", "llm"]
    definition = _definition(dimensions, step, metrics)
    summed = _Definition(definition, ORDER)

    with exact_context():
        days, attributions, shown, values = [[row[i] for row in rows] for i in range(4)]
        summed.add_rows(days, attributions, shown, values)
        expected = _reference_groups(definition, ORDER, rows)

    assert summed.groups == expected
    assert list(summed.groups) == list(expected)
    assert repr(summed.groups) == repr(expected)


def _definition(dimensions: list[str], step: str | None, metrics: list[str]) -> DefinitionPlan:
    """Sales' definition ``d`` of ``metrics`` by ``dimensions`` and ``step``, read from ``q``."""
    return DefinitionPlan(
        cost_center_id="sales",
        definition_id="d",
        title="D",
        dimensions=dimensions,
        step=step,
        metrics=metrics,
        query="q",
        aliases={
            measure: measure_alias(measure)
            for metric in metrics
            for measure in METRIC_MEASURES[metric]
        },
    )
