"""Compile the config into as few analytics queries and requests as the API allows.

The API has no filter, so a cost center's breakdown is computed from org-wide rows and
attributed afterwards with the same rules as the money. Hence every compiled query:

- groups by ``assistantId`` and the variable key, with ``step: day`` in the org zone,
  because attribution needs the assistant, the variable value and the local day (the
  mapping is effective-dated). Definitions asking for ``week``, ``month`` or no step are
  compiled with ``day`` too and rolled up afterwards (``breakdowns.py``): rolling up
  day rows is exact for sums and counts, and it lets every definition with the same
  dimensions share one query.
- asks only for sums and counts; averages are derived from them, because an ``avg``
  cannot be re-aggregated over days, assistants or cost centers.

A query's shape is then just its set of dimensions; definitions with the same shape
share one query whose operations are the union of what they need, so identical
definitions of different owners cost one query. Definitions grouped by assistant only
(or by nothing) merge into the core allocation query. An ungrouped org-total query,
sharing nothing, is the independent check reconciliation needs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, get_args

from pydantic import BaseModel, ConfigDict, Field

from vapi_chargeback.analytics.models import (
    NAME_MAX_LENGTH,
    AnalyticsOperation,
    AnalyticsQuery,
    Column,
    Operation,
    TimeRange,
    VariableValueGroupBy,
    default_result_key,
)
from vapi_chargeback.config import (
    COMPONENTS,
    ChargebackConfig,
    Component,
    DefinitionStep,
    Dimension,
    Metric,
    QueryDefinition,
)
from vapi_chargeback.period import StatementPeriod

CORE_QUERY = "core-allocation"
ORG_TOTAL_QUERY = "org-total"
DEFAULT_MAX_QUERIES_PER_REQUEST = 20
ASSISTANT_KEY: Final = "assistantId"
DATE_KEY = "date"

DIMENSIONS_IN_ORDER: tuple[Dimension, ...] = get_args(Dimension)
MEASURES: tuple[str, ...] = ("calls", "seconds", "cost", *COMPONENTS)
"""What the API sums or counts for us, in the order operations are listed."""
MEASURE_OPERATIONS: dict[str, tuple[Operation, Column]] = {
    "calls": ("count", "id"),
    "seconds": ("sum", "duration"),
    "cost": ("sum", "cost"),
    "transport": ("sum", "costBreakdown.transport"),
    "stt": ("sum", "costBreakdown.stt"),
    "llm": ("sum", "costBreakdown.llm"),
    "tts": ("sum", "costBreakdown.tts"),
    "vapi": ("sum", "costBreakdown.vapi"),
}
METRIC_MEASURES: dict[str, tuple[str, ...]] = {
    "calls": ("calls",),
    "minutes": ("seconds",),
    "cost": ("cost",),
    **{component: (component,) for component in COMPONENTS},
    "avg_cost_per_call": ("cost", "calls"),
    "avg_minutes_per_call": ("seconds", "calls"),
    "avg_cost_per_minute": ("cost", "seconds"),
}
"""The measures each metric of the config vocabulary is computed from."""
_DIMENSION_NAMES: dict[str, str] = {
    "type": "type",
    "endedReason": "reason",
    "analysis.successEvaluation": "success",
    "status": "status",
}
"""Short words for query names; ``assistantId`` is in every compiled query, so it is implied."""


def measure_default_key(measure: str) -> str:
    """The key the API uses for a measure when it ignores the alias (``sumCost``)."""
    operation, column = MEASURE_OPERATIONS[measure]
    return default_result_key(operation, column)


def measure_alias(measure: str) -> str:
    """The alias of a measure's operation: ``count_id``, ``sum_duration``, ``sum_llm`` …

    One alias per measure across all queries, so a reader needs only the query name.
    The config refuses variable keys starting with ``sum_``/``count_`` so they never collide.
    """
    operation, column = MEASURE_OPERATIONS[measure]
    return f"{operation}_{column.removeprefix('costBreakdown.')}"


class DefinitionPlan(BaseModel):
    """Where one owner's query definition reads its numbers from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cost_center_id: str
    definition_id: str
    title: str
    dimensions: list[Dimension]
    step: DefinitionStep | None
    metrics: list[Metric]
    query: str
    """Name of the compiled query holding its rows (by day, assistant and variable value)."""
    aliases: dict[str, str]
    """Measure (``calls``, ``seconds``, ``cost``, ``llm`` …) → result key it reads."""


class Plan(BaseModel):
    """Everything the fetch, allocate and reconcile steps need to know about the queries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: StatementPeriod
    variable_key: str
    components: list[Component]
    max_queries_per_request: int = Field(ge=1)
    core_query: str
    org_total_query: str
    fixed_shared_usd: dict[str, Decimal]
    """Fixed-amount shared pools by name: reconciliation adds them to the org total."""
    queries: list[AnalyticsQuery]
    batches: list[list[str]]
    """Query names per request, in the order they are sent."""
    definitions: list[DefinitionPlan]

    def query(self, name: str) -> AnalyticsQuery:
        for query in self.queries:
            if query.name == name:
                return query
        raise KeyError(f"no query named {name!r} in the plan; known: {self.query_names}")

    @property
    def query_names(self) -> list[str]:
        return [query.name for query in self.queries]

    def batch_queries(self) -> list[list[AnalyticsQuery]]:
        """The batches as query objects, ready for the client."""
        return [[self.query(name) for name in batch] for batch in self.batches]

    def definitions_for(self, cost_center_id: str) -> list[DefinitionPlan]:
        return [d for d in self.definitions if d.cost_center_id == cost_center_id]


def build_plan(
    config: ChargebackConfig,
    period: StatementPeriod,
    max_queries_per_request: int = DEFAULT_MAX_QUERIES_PER_REQUEST,
) -> Plan:
    """The deterministic query plan of ``config`` for ``period``: same inputs, same JSON."""
    if max_queries_per_request < 1:
        raise ValueError(f"max_queries_per_request must be >= 1, got {max_queries_per_request}")
    if period.timezone != config.timezone:
        raise ValueError(
            f"period {period.label} is in {period.timezone} but the config's org zone is"
            f" {config.timezone}; build the period with StatementPeriod.for_month(label,"
            " config.timezone)"
        )
    needs: dict[tuple[Dimension, ...], set[str]] = {
        (): {"calls", "seconds", "cost", *config.components}
    }
    definitions: list[tuple[str, QueryDefinition, tuple[Dimension, ...]]] = []
    for center in config.cost_centers:
        for definition in center.queries:
            shape = _shape(definition.dimensions)
            measures = {m for metric in definition.metrics for m in METRIC_MEASURES[metric]}
            needs.setdefault(shape, set()).update(measures)
            definitions.append((center.id, definition, shape))
    names = {shape: _query_name(shape) for shape in needs}
    grouped = [
        _grouped_query(names[shape], shape, needs[shape], config.variable_key, period)
        for shape in needs
    ]
    queries = [
        grouped[0],
        _org_total_query(period),
        *sorted(grouped[1:], key=lambda query: query.name),
    ]
    size = max_queries_per_request
    return Plan(
        period=period,
        variable_key=config.variable_key,
        components=list(config.components),
        max_queries_per_request=size,
        core_query=CORE_QUERY,
        org_total_query=ORG_TOTAL_QUERY,
        fixed_shared_usd={
            pool.name: pool.amount for pool in config.shared_costs if pool.amount is not None
        },
        queries=queries,
        batches=[
            [query.name for query in queries[i : i + size]] for i in range(0, len(queries), size)
        ],
        definitions=[
            DefinitionPlan(
                cost_center_id=center_id,
                definition_id=definition.id,
                title=definition.title,
                dimensions=list(definition.dimensions),
                step=definition.step,
                metrics=list(definition.metrics),
                query=names[shape],
                aliases={
                    measure: measure_alias(measure)
                    for metric in definition.metrics
                    for measure in METRIC_MEASURES[metric]
                },
            )
            for center_id, definition, shape in definitions
        ],
    )


def _shape(dimensions: list[Dimension]) -> tuple[Dimension, ...]:
    """The dimensions besides ``assistantId`` (always grouped), in vocabulary order."""
    return tuple(d for d in DIMENSIONS_IN_ORDER if d in dimensions and d != ASSISTANT_KEY)


def _query_name(shape: tuple[Dimension, ...]) -> str:
    if not shape:
        return CORE_QUERY
    name = "by-" + "-".join(_DIMENSION_NAMES[d] for d in shape)
    if len(name) > NAME_MAX_LENGTH:
        raise AssertionError(f"query name {name!r} exceeds {NAME_MAX_LENGTH} characters")
    return name


def _grouped_query(
    name: str,
    shape: tuple[Dimension, ...],
    measures: set[str],
    variable_key: str,
    period: StatementPeriod,
) -> AnalyticsQuery:
    return AnalyticsQuery(
        table="call",
        group_by=[ASSISTANT_KEY, *shape],
        group_by_variable_value=[VariableValueGroupBy(key=variable_key)],
        name=name,
        time_range=_time_range(period, "day"),
        operations=[_operation(m) for m in MEASURES if m in measures],
    )


def _org_total_query(period: StatementPeriod) -> AnalyticsQuery:
    return AnalyticsQuery(
        table="call",
        name=ORG_TOTAL_QUERY,
        time_range=_time_range(period, None),
        operations=[_operation(m) for m in ("calls", "seconds", "cost")],
    )


def _operation(measure: str) -> AnalyticsOperation:
    operation, column = MEASURE_OPERATIONS[measure]
    return AnalyticsOperation(operation=operation, column=column, alias=measure_alias(measure))


def _time_range(period: StatementPeriod, step: DefinitionStep | None) -> TimeRange:
    return TimeRange(step=step, start=period.start, end=period.end, timezone=period.timezone)
