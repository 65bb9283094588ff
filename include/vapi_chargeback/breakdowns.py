"""Each owner's query definitions as tables for their statement workbook.

The compiled queries are org-wide by day, assistant and variable value (the API has no
filter), so a definition's table is made here: keep the rows attributed to the owner's
cost center by the allocation rules, roll the days up to the definition's step (weeks
start on Monday, in the org calendar), group by its dimensions, and derive averages
from the summed measures.

What a reader checks first is that a table adds up to their statement, so additive
columns are rounded together with largest remainder *against the cost center's direct
lines* (:func:`round_to_statement`), and the table carries that total row. Averages are
unit rates: kept to ``RATE_QUANTUM`` and rounded only by the workbook's number format.
Buckets are real dates (their first day); a week cut by the month's start or end says so
in a ``week_coverage`` column; a group with no value of a dimension (a queued call has
no ended reason yet) is named, never left blank.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import repeat
from operator import attrgetter, methodcaller
from typing import Any

from vapi_chargeback.attribution import Attribution
from vapi_chargeback.money import (
    CENT,
    MINUTES_QUANTUM,
    from_units,
    from_units_each,
    round_half_up,
)
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import ASSISTANT_KEY, SUCCESS_KEY, DefinitionPlan, Plan
from vapi_chargeback.process_memory import paused_gc
from vapi_chargeback.split import round_units_to_statement, units_over, whole_units
from vapi_chargeback.statement import Breakdown, BreakdownCell
from vapi_chargeback.statements.keyfigures import RATE_QUANTUM

_DIMENSION_COLUMNS = {
    "assistantId": "assistant_id",
    "type": "type",
    "endedReason": "ended_reason",
    "analysis.successEvaluation": "success_evaluation",
    "status": "status",
}
_METRIC_COLUMNS = {
    "calls": "calls",
    "minutes": "minutes",
    "cost": "cost_usd",
    "transport": "transport_usd",
    "stt": "stt_usd",
    "llm": "llm_usd",
    "tts": "tts_usd",
    "vapi": "vapi_usd",
    "avg_cost_per_call": "avg_cost_per_call_usd",
    "avg_minutes_per_call": "avg_minutes_per_call",
    "avg_cost_per_minute": "avg_cost_per_minute_usd",
}
_MONEY_METRICS = frozenset({"cost", "transport", "stt", "llm", "tts", "vapi"})
_AVERAGES = frozenset({"avg_cost_per_call", "avg_minutes_per_call", "avg_cost_per_minute"})
NO_VALUE = "(none)"
"""What a group without a value of a dimension is called (a queued call has no ended reason)."""
NO_VALUES: dict[str, str] = {
    ASSISTANT_KEY: "(no assistant)",
    SUCCESS_KEY: "(not evaluated)",
}
"""Dimensions whose missing value has a more telling name than :data:`NO_VALUE`."""
SECONDS_PER_MINUTE = 60
_RATE_NUMERATOR, _RATE_DENOMINATOR = RATE_QUANTUM.as_integer_ratio()
TOTAL_LABEL = "Total"
COVERAGE_COLUMN = "week_coverage"
FULL_WEEK = "Full week"

Cell = BreakdownCell
_CENTER = attrgetter("cost_center_id")
GroupKey = tuple[date | str | None, ...]


class BreakdownBuilder:
    """Accumulates every definition's groups as attributed rows stream by, then renders tables.

    A row only reaches the definitions of the cost center it is attributed to that read its
    query, so forty owners asking the same question cost one pass over its rows.
    """

    def __init__(
        self,
        plan: Plan,
        cost_center_ids: Sequence[str],
        measures: Mapping[str, Sequence[str]],
    ) -> None:
        """``measures``: query name → the measures its rows' ``values`` hold, in that order."""
        self._cost_center_ids = list(cost_center_ids)
        self._period = plan.period
        self._definitions = [
            _Definition(definition, measures[definition.query]) for definition in plan.definitions
        ]
        self._by_query: dict[str, dict[str, list[_Definition]]] = {}
        for item in self._definitions:
            centers = self._by_query.setdefault(item.plan.query, {})
            centers.setdefault(item.plan.cost_center_id, []).append(item)

    def add_rows(
        self,
        query: str,
        days: Sequence[date],
        attributions: Sequence[Attribution],
        rows: Sequence[Mapping[str, Any]],
        values: Sequence[Sequence[Decimal | int]],
    ) -> None:
        """Count the rows of ``query``, a column each (position for position), towards each
        definition that reads them (exact sums): each cost center's rows are picked out once
        and handed to its definitions as columns, whose keys are made a column at a time."""
        readers = self._by_query.get(query)
        if not readers:
            return
        picked: dict[str, list[int]] = {}
        for index, center in enumerate(map(_CENTER, attributions)):
            if center in readers:
                picked.setdefault(center, []).append(index)
        for center, indexes in picked.items():
            mine = (
                [days[i] for i in indexes],
                [attributions[i] for i in indexes],
                [rows[i] for i in indexes],
                [values[i] for i in indexes],
            )
            for definition in readers[center]:
                definition.add_rows(*mine)

    def exact_groups(self) -> list[dict[GroupKey, list[Decimal]]]:
        """Each definition's groups with their exact sums, in plan order: what a shard of a
        sharded allocation hands to the merge (``exact_sums.ExactSums.groups``)."""
        return [definition.groups for definition in self._definitions]

    def use_groups(self, groups: Sequence[dict[GroupKey, list[Decimal]]]) -> None:
        """Take the exact groups of :meth:`exact_groups` (merged over shards) as summed here.

        Each definition looks its groups up in ``groups`` only when its table is made: the
        merge passes a sequence that reads them from the shards' files then
        (``shard_groups.MergedGroups``), so it holds one cost center's groups at a time.
        """
        if len(groups) != len(self._definitions):
            raise ValueError(f"{len(groups)} groups for {len(self._definitions)} definitions")
        for index, definition in enumerate(self._definitions):
            definition.source = (groups, index)

    def tables(self, statement_totals: Mapping[str, Mapping[str, Decimal]]) -> BreakdownTables:
        """Cost center id → its definitions' tables, in config order (empty list when none),
        each cost center's rounded when looked up (:class:`BreakdownTables`).

        ``statement_totals``: cost center → its direct lines' ``calls``, ``minutes``,
        ``cost`` and components, which each table's additive columns add up to (a cost
        center without direct lines adds up to zero).
        """
        by_center: dict[str, list[_Definition]] = {center: [] for center in self._cost_center_ids}
        for definition in self._definitions:
            by_center.setdefault(definition.plan.cost_center_id, []).append(definition)
        return BreakdownTables(by_center, self._period, statement_totals)


class BreakdownTables(Mapping[str, list[Breakdown]]):
    """Cost center id → its tables, rounded from the exact groups when looked up, not kept.

    At 20,000 assistants and 400 cost centers the tables of every owner are well over a
    GiB as objects; the step that rounds them writes each cost center's away before the
    next (``breakdown_files.store_breakdowns``), so only one cost center's are ever held.
    Looking a cost center up twice rounds it twice, to the same tables.
    """

    def __init__(
        self,
        definitions: Mapping[str, Sequence[_Definition]],
        period: StatementPeriod,
        totals: Mapping[str, Mapping[str, Decimal]],
    ) -> None:
        self._definitions = definitions
        self._period = period
        self._totals = totals

    @property
    def totals(self) -> Mapping[str, Mapping[str, Decimal]]:
        """Cost center → the direct lines' totals its tables add up to."""
        return self._totals

    def __getitem__(self, center: str) -> list[Breakdown]:
        totals = self._totals.get(center, {})
        with paused_gc():
            return [item.table(self._period, totals) for item in self._definitions[center]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._definitions)

    def __len__(self) -> int:
        return len(self._definitions)


class _Definition:
    """One definition's groups: key → exact sums of its measures, in ``aliases`` order."""

    def __init__(self, plan: DefinitionPlan, order: Sequence[str]) -> None:
        self.plan = plan
        self._measures = list(plan.aliases)
        self._positions = [order.index(measure) for measure in self._measures]
        self._step = plan.step
        self._dimensions = list(plan.dimensions)
        self._buckets: dict[date, date] = {}
        self.groups: dict[GroupKey, list[Decimal]] = {}
        self.source: tuple[Sequence[dict[GroupKey, list[Decimal]]], int] | None = None
        """Where the groups are when summed elsewhere (:meth:`BreakdownBuilder.use_groups`)."""

    def add_rows(
        self,
        days: Sequence[date],
        attributions: Sequence[Attribution],
        rows: Sequence[Mapping[str, Any]],
        values: Sequence[Sequence[Decimal | int]],
    ) -> None:
        """Sum rows of this definition's cost center, given as columns, into its groups."""
        groups = self.groups
        positions = self._positions
        for key, row_values in zip(self._keys(days, attributions, rows), values, strict=True):
            sums = groups.get(key)
            if sums is None:
                groups[key] = [Decimal(0) + row_values[position] for position in positions]
                continue
            for slot, position in enumerate(positions):
                sums[slot] += row_values[position]

    def table(self, period: StatementPeriod, totals: Mapping[str, Decimal]) -> Breakdown:
        summed = self.groups if self.source is None else self.source[0][self.source[1]]
        return _table(self.plan, self._measures, summed, period, totals)

    def _keys(
        self,
        days: Sequence[date],
        attributions: Sequence[Attribution],
        rows: Sequence[Mapping[str, Any]],
    ) -> Iterable[GroupKey]:
        """Each row's (bucket, then each dimension's value as shown), a part a column at a
        time; a plain string value, the usual case, is taken as is, anything else goes
        through :func:`_display`."""
        parts: list[list[date | str | None]] = []
        if self._step is not None:
            buckets = self._buckets
            for day in set(days) - buckets.keys():
                buckets[day] = _bucket(day, self._step)
            parts.append(list(map(buckets.__getitem__, days)))
        for dimension in self._dimensions:
            if dimension == ASSISTANT_KEY:
                parts.append([item.assistant_id or None for item in attributions])
                continue
            shown = map(methodcaller("get", dimension), rows)
            parts.append([(v if type(v) is str else _display(v)) or None for v in shown])
        return zip(*parts, strict=True) if parts else repeat((), len(days))


def _table(
    definition: DefinitionPlan,
    measures: Sequence[str],
    groups: Mapping[GroupKey, Sequence[Decimal]],
    period: StatementPeriod,
    totals: Mapping[str, Decimal],
) -> Breakdown:
    """The definition's table from its groups (key → exact sums in ``measures`` order),
    made a column at a time: a table has a row per assistant and day."""
    keys = _sorted_keys(groups)
    week = definition.step == "week"
    columns: list[str] = [] if definition.step is None else [definition.step]
    columns += [COVERAGE_COLUMN] if week else []
    columns += [_DIMENSION_COLUMNS[d] for d in definition.dimensions]
    labels = len(columns)
    columns += [_METRIC_COLUMNS[m] for m in definition.metrics]
    summed = [groups[key] for key in keys]
    by_measure = (
        dict(zip(measures, map(list, zip(*summed, strict=True)), strict=True)) if summed else {}
    )
    exact = {name: by_measure.get(name, []) for name in measures}
    whole = _whole_table(exact, totals)
    metric_columns = _Columns(exact, whole)
    positions = len(definition.dimensions) + (definition.step is not None)
    parts = list(zip(*keys, strict=True)) if keys else [()] * positions
    cells: list[Sequence[Cell]] = []
    if definition.step is not None:
        buckets = parts.pop(0)
        cells.append(buckets)
        if week:
            coverage = {bucket: _coverage(bucket, period) for bucket in set(buckets)}
            cells.append(list(map(coverage.__getitem__, buckets)))
    for dimension, values in zip(definition.dimensions, parts, strict=True):
        cells.append(
            [value if type(value) is str else _named(dimension, value) for value in values]
        )
    cells += [metric_columns.column(metric) for metric in definition.metrics]
    rows: list[list[Cell]] = list(map(list, zip(*cells, strict=True)))
    total: list[Cell] = [TOTAL_LABEL, *[""] * (labels - 1)] if labels else []
    whole_row = _Columns({name: [value] for name, value in whole.items()}, whole)
    total += [whole_row.column(metric)[0] for metric in definition.metrics]
    return Breakdown(definition.definition_id, definition.title, columns, rows, total)


def _sorted_keys(groups: Iterable[GroupKey]) -> list[GroupKey]:
    """Group keys in table order: by each part, a missing one (``None``) after any value.

    Without a missing part that is the keys' own order (a bucket is a day, a dimension a
    text), which ``sorted`` compares in C; with one, each key is made a sort key."""
    keys = list(groups)
    if any(None in key for key in keys):
        return sorted(keys, key=lambda key: tuple((part is None, part or "") for part in key))
    return sorted(keys)


def round_to_statement(
    exact: Sequence[Decimal | Fraction], total: Decimal, quantum: Decimal = CENT
) -> list[Decimal]:
    """``exact`` rounded to ``quantum`` so that the parts add up to ``total``, a statement
    figure (a whole number of quanta).

    The statement rounds its lines once, over all of them, so a cost center's lines may
    differ from its own exact sum by a few quanta; a table of its calls rounded to its own
    sum would then miss the statement by a cent. Here each part is its share of ``total``
    in proportion to its exact value, rounded by largest remainder (``round_to_total``):
    within one quantum of that share. When ``total`` is the rounded exact sum (most
    tables), that is plain rounding of the exact values. Exact values adding up to zero
    (refunds) spread ``total`` evenly. In integers (``split.round_units_to_statement``).
    """
    if not exact:
        return []
    numerators, denominator = units_over([value.as_integer_ratio() for value in exact], quantum)
    parts = round_units_to_statement(numerators, denominator, whole_units(total, quantum))
    return from_units_each(parts, quantum)


def _whole_table(
    exact: Mapping[str, Sequence[Decimal]], totals: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """The table's measures summed exactly, then replaced by the statement's direct-line
    totals where it has them (calls, money; minutes as seconds): the total row's figures."""
    whole = {name: sum(column, Decimal(0)) for name, column in exact.items()}
    for name in whole.keys() & totals.keys():
        whole[name] = totals[name]
    if "seconds" in whole and "minutes" in totals:
        whole["seconds"] = totals["minutes"] * SECONDS_PER_MINUTE
    return whole


def _coverage(bucket: object, period: StatementPeriod) -> str:
    """Whether a week lies wholly in the month; a cut one names the days it covers."""
    assert isinstance(bucket, date)
    first = max(bucket, period.first_day)
    last = min(bucket + timedelta(days=6), period.last_day)
    if (first, last) == (bucket, bucket + timedelta(days=6)):
        return FULL_WEEK
    return f"Partial: {first.isoformat()} to {last.isoformat()}"


def _named(dimension: str, value: object) -> Cell:
    """A group key as shown: a missing value (null or empty, one group) named
    (:data:`NO_VALUES`)."""
    if value is None:
        return NO_VALUES.get(dimension, NO_VALUE)
    assert isinstance(value, str)
    return value


def _bucket(day: date, step: str) -> date:
    if step == "week":
        return day - timedelta(days=day.weekday())
    if step == "month":
        return day.replace(day=1)
    return day


def _display(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_AS_RATIO = Decimal.as_integer_ratio
"""Exact sums are ``Decimal`` (counts too, summed into one), so the method is called in C."""


class _Columns:
    """A table's metric columns from its measures' exact columns (``exact``, group by
    group): additive ones rounded together against ``whole`` (the totals the table adds
    up to), averages per cell to :data:`RATE_QUANTUM`, all in integers.

    Each measure's exact values are read as ``as_integer_ratio`` pairs once, however many
    metrics use them."""

    def __init__(self, exact: Mapping[str, Sequence[Decimal]], whole: Mapping[str, Decimal]):
        self._exact = exact
        self._whole = whole
        self._ratios: dict[str, list[tuple[int, int]]] = {}

    def column(self, metric: str) -> Sequence[Cell]:
        if metric == "calls":
            return list(map(int, self._exact["calls"]))
        if metric == "minutes":
            target = round_half_up(_minutes(self._whole) / Fraction(MINUTES_QUANTUM))
            return self._rounded(self._minutes(), target, MINUTES_QUANTUM)
        if metric in _MONEY_METRICS:
            target = round_half_up(Fraction(self._whole[metric]) / Fraction(CENT))
            return self._rounded(self.ratios(metric), target, CENT)
        assert metric in _AVERAGES, metric
        if metric == "avg_cost_per_call":
            return list(map(_ratio, self.ratios("cost"), self.ratios("calls")))
        if metric == "avg_minutes_per_call":
            return list(map(_ratio, self._minutes(), self.ratios("calls")))
        return list(map(_ratio, self.ratios("cost"), self._minutes()))

    def ratios(self, measure: str) -> list[tuple[int, int]]:
        ratios = self._ratios.get(measure)
        if ratios is None:
            ratios = self._ratios[measure] = list(map(_AS_RATIO, self._exact[measure]))
        return ratios

    def _minutes(self) -> list[tuple[int, int]]:
        """The minutes as (numerator, denominator), not reduced: what :func:`_ratio` takes."""
        return [(n, d * SECONDS_PER_MINUTE) for n, d in self.ratios("seconds")]

    @staticmethod
    def _rounded(ratios: Sequence[tuple[int, int]], target: int, quantum: Decimal) -> list[Cell]:
        numerators, denominator = units_over(ratios, quantum)
        return list(
            from_units_each(round_units_to_statement(numerators, denominator, target), quantum)
        )


def _minutes(sums: Mapping[str, Decimal]) -> Fraction:
    numerator, denominator = sums["seconds"].as_integer_ratio()
    return Fraction(numerator, denominator * SECONDS_PER_MINUTE)


def _ratio(numerator: tuple[int, int], denominator: tuple[int, int]) -> Decimal | None:
    """A unit rate kept to :data:`RATE_QUANTUM`; none when there is nothing to average over.

    ``round_money`` of the exact quotient, in integer arithmetic: (a/b) / (c/d) in rate
    quanta is a·d·q₂ / (b·c·q₁) for a quantum q₁/q₂, rounded half away from zero as
    ``money.round_half_up`` rounds. A table has a few cells per group, and ``Fraction``s
    made and reduced for each were most of the time spent making tables.
    """
    (a, b), (c, d) = numerator, denominator
    if not c:
        return None
    top, bottom = a * d * _RATE_DENOMINATOR, b * c * _RATE_NUMERATOR
    if bottom < 0:
        top, bottom = -top, -bottom
    magnitude = (2 * abs(top) + bottom) // (2 * bottom)
    return from_units(-magnitude if top < 0 else magnitude, RATE_QUANTUM)
