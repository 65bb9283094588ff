"""Each owner's query definitions as tables for their statement workbook.

The compiled queries are org-wide by day, assistant and variable value (the API has no
filter), so a definition's table is made here: keep the rows attributed to the owner's
cost center by the allocation rules, roll the days up to the definition's step (weeks
start on Monday, in the org calendar), group by its dimensions, and derive averages
from the summed measures. Additive columns are rounded together with largest remainder,
so a table adds up to its own rounded total; averages are rounded per cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from vapi_chargeback.attribution import AttributedRow
from vapi_chargeback.money import CENT, MINUTES_QUANTUM, round_money
from vapi_chargeback.plan import ASSISTANT_KEY, DefinitionPlan, Plan
from vapi_chargeback.split import round_to_total
from vapi_chargeback.statement import Breakdown

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

Cell = str | int | Decimal | None
GroupKey = tuple[str | None, ...]


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
        self._definitions = [
            _Definition(definition, measures[definition.query]) for definition in plan.definitions
        ]
        self._readers: dict[tuple[str, str], list[_Definition]] = {}
        for item in self._definitions:
            key = (item.plan.query, item.plan.cost_center_id)
            self._readers.setdefault(key, []).append(item)

    def add(self, query: str, item: AttributedRow) -> None:
        """Count one row of ``query`` towards each definition that reads it (exact sums)."""
        for definition in self._readers.get((query, item.attribution.cost_center_id), ()):
            definition.add(item)

    def tables(self) -> dict[str, list[Breakdown]]:
        """Cost center id → its definitions' tables, in config order (empty list when none)."""
        tables: dict[str, list[Breakdown]] = {center: [] for center in self._cost_center_ids}
        for definition in self._definitions:
            tables.setdefault(definition.plan.cost_center_id, []).append(definition.table())
        return tables


class _Definition:
    """One definition's groups: key → exact sums of its measures, in ``aliases`` order."""

    def __init__(self, plan: DefinitionPlan, order: Sequence[str]) -> None:
        self.plan = plan
        self._measures = list(plan.aliases)
        self._positions = [order.index(measure) for measure in self._measures]
        self._step = plan.step
        self._dimensions = list(plan.dimensions)
        self._buckets: dict[date, str] = {}
        self._groups: dict[GroupKey, list[Decimal]] = {}

    def add(self, item: AttributedRow) -> None:
        key = self._key(item)
        sums = self._groups.get(key)
        if sums is None:
            sums = self._groups[key] = [Decimal(0)] * len(self._positions)
        values = item.values
        for slot, position in enumerate(self._positions):
            sums[slot] += values[position]

    def table(self) -> Breakdown:
        groups = {
            key: dict(zip(self._measures, sums, strict=True)) for key, sums in self._groups.items()
        }
        return _table(self.plan, groups)

    def _key(self, item: AttributedRow) -> GroupKey:
        parts: list[str | None] = []
        if self._step is not None:
            bucket = self._buckets.get(item.day)
            if bucket is None:
                bucket = self._buckets[item.day] = _bucket(item.day, self._step).isoformat()
            parts.append(bucket)
        for dimension in self._dimensions:
            if dimension == ASSISTANT_KEY:
                parts.append(item.attribution.assistant_id)
            else:
                parts.append(_display(item.row.get(dimension)))
        return tuple(parts)


def _table(definition: DefinitionPlan, groups: Mapping[GroupKey, dict[str, Decimal]]) -> Breakdown:
    keys = sorted(groups, key=lambda key: tuple((part is None, part or "") for part in key))
    columns: list[str] = [] if definition.step is None else [definition.step]
    columns += [_DIMENSION_COLUMNS[d] for d in definition.dimensions]
    columns += [_METRIC_COLUMNS[m] for m in definition.metrics]
    metric_columns = [
        _metric(metric, [groups[key] for key in keys]) for metric in definition.metrics
    ]
    rows: list[list[Cell]] = [
        [*key, *(values[i] for values in metric_columns)] for i, key in enumerate(keys)
    ]
    return Breakdown(definition.definition_id, definition.title, columns, rows)


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


def _metric(metric: str, sums: list[dict[str, Decimal]]) -> list[Cell]:
    """One metric's column; additive ones rounded together, averages per cell."""
    if metric == "calls":
        return [int(s["calls"]) for s in sums]
    if metric == "minutes":
        return [value for value in round_to_total([_minutes(s) for s in sums], MINUTES_QUANTUM)]
    if metric in _MONEY_METRICS:
        return [value for value in round_to_total([s[metric] for s in sums], CENT)]
    cells: list[Cell] = []
    for s in sums:
        if metric == "avg_cost_per_call":
            cells.append(_ratio(Fraction(s["cost"]), Fraction(s["calls"]), CENT))
        elif metric == "avg_minutes_per_call":
            cells.append(_ratio(_minutes(s), Fraction(s["calls"]), MINUTES_QUANTUM))
        else:
            cells.append(_ratio(Fraction(s["cost"]), _minutes(s), CENT))
    return cells


def _minutes(sums: Mapping[str, Decimal]) -> Fraction:
    return Fraction(sums["seconds"]) / 60


def _ratio(numerator: Fraction, denominator: Fraction, quantum: Decimal) -> Decimal | None:
    """An average rounded for display; none when there is nothing to average over."""
    return round_money(numerator / denominator, quantum) if denominator else None
