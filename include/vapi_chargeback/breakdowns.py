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
from typing import TYPE_CHECKING

from vapi_chargeback.plan import ASSISTANT_KEY, DefinitionPlan, Plan
from vapi_chargeback.split import MINUTES_QUANTUM, round_money, round_to_total
from vapi_chargeback.statement import CENT, Breakdown

if TYPE_CHECKING:
    from vapi_chargeback.allocate import AttributedRow

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

    def __init__(self, plan: Plan, cost_center_ids: Sequence[str]) -> None:
        self._cost_center_ids = list(cost_center_ids)
        self._definitions = list(plan.definitions)
        self._groups: list[dict[GroupKey, dict[str, Decimal]]] = [{} for _ in self._definitions]
        self._readers: dict[tuple[str, str], list[int]] = {}
        for index, definition in enumerate(self._definitions):
            key = (definition.query, definition.cost_center_id)
            self._readers.setdefault(key, []).append(index)

    def add(self, query: str, item: AttributedRow) -> None:
        """Count one row of ``query`` towards each definition that reads it (exact sums)."""
        for index in self._readers.get((query, item.attribution.cost_center_id), ()):
            definition = self._definitions[index]
            key = _group_key(definition, item)
            sums = self._groups[index].get(key)
            if sums is None:
                self._groups[index][key] = {m: item.values[m] for m in definition.aliases}
            else:
                for measure in sums:
                    sums[measure] += item.values[measure]

    def tables(self) -> dict[str, list[Breakdown]]:
        """Cost center id → its definitions' tables, in config order (empty list when none)."""
        tables: dict[str, list[Breakdown]] = {center: [] for center in self._cost_center_ids}
        for definition, groups in zip(self._definitions, self._groups, strict=True):
            tables.setdefault(definition.cost_center_id, []).append(_table(definition, groups))
        return tables


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


def _group_key(definition: DefinitionPlan, item: AttributedRow) -> GroupKey:
    parts: list[str | None] = []
    if definition.step is not None:
        parts.append(_bucket(item.day, definition.step).isoformat())
    for dimension in definition.dimensions:
        if dimension == ASSISTANT_KEY:
            parts.append(item.attribution.assistant_id)
        else:
            parts.append(_display(item.row.get(dimension)))
    return tuple(parts)


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
