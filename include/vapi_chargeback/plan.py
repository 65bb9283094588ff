"""Compile the config into as few analytics queries and requests as the API allows.

The API has no filter, so a cost center's breakdown is computed from org-wide rows and
attributed afterwards with the same rules as the money. Hence every compiled query:

- groups by ``assistantId`` and the variable key, because attribution needs the
  assistant and the variable value, and each of its rows must lie inside a stretch of
  days over which the (effective-dated) mapping does not change;
- asks only for sums and counts; averages are derived from them, because an ``avg``
  cannot be re-aggregated over days, assistants or cost centers.

A query's shape is its set of dimensions; definitions with the same shape share one
query whose operations are the union of what they need, so identical definitions of
different owners cost one query. Definitions grouped by assistant only (or by nothing)
merge into the core allocation query, and a shape whose dimensions all belong to a wider
shape asked at least as finely reads that shape's rows, rolled up (by ended reason from
by status and ended reason): it would only ask for the same groups again. An ungrouped org-total query, sharing nothing, is
the independent check reconciliation needs.

How finely a shape's rows are cut in time is its *grain*. Without the mapping (the plan
cannot know when it changes) every grouped query has ``step: day`` over the whole month,
and definitions asking for ``week``, ``month`` or no step are rolled up from day rows
(``breakdowns.py``); rolling up is exact for sums and counts. Given the mapping, a shape
is asked at the coarsest grain its definitions need — ``day``, ``week``, or one row per
group over the whole window (``period``) — because rows, not requests, are what a large
org pays for: 2,000 assistants by day and by variable value are ~150k rows a month for
the core query alone, against ~26k without the day. A week or period row must not span
a mapping change, nor the day after a cost center's ``valid_to`` (from which a call's
variable no longer names it), so those queries are split at both kinds of day; when there
are too many such days, the plan falls back to day rows. With ``window_days``, day
and week queries are further split at Mondays into windows of at most that many days.
With a :class:`RowBudget` (what a run plans with), every grouped query is cut into as few
windows as keep its estimated rows within the API's row cap, and queries are packed into
requests by estimated rows too (``row_budget.py`` says how rows are estimated). A day
query cut at a day boundary adds no row; a coarser one adds a row per group per extra
window, which is why the windows are as long as the budget allows. When even one day is
too many rows (tens of thousands of assistants by end reason), a day is cut into equal
slices: a group then comes back once per slice, and the slices' sums add up to the day's.
Each such family of queries keeps one logical name, which definitions refer to.

Two figures of the statement itself need rows no definition may ask for. Successful
calls (``analysis.successEvaluation`` is ``"true"``) are counted by the shape grouped by
that dimension, which the plan always has: an owner's definition of that shape gains a
count if it lacks one, else the shape is asked at the coarsest grain the mapping allows.
The daily cost behind the statement's charts reads day rows of the core shape: the core
query itself when it is by day, else one more query of that shape, by day, summing cost
only. Both are attributed with the same rules as the money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from itertools import pairwise
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from vapi_chargeback.analytics.models import (
    DEFAULT_MAX_QUERIES_PER_REQUEST,
    NAME_MAX_LENGTH,
    AnalyticsOperation,
    AnalyticsQuery,
    Column,
    Operation,
    Step,
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
from vapi_chargeback.mapping import AssistantMapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.row_budget import (
    REQUEST_ROW_BUDGET,
    ROW_BUDGET,
    RowEstimate,
    Slice,
    cut,
    pack_requests,
)

CORE_QUERY = "core-allocation"
ORG_TOTAL_QUERY = "org-total"
DAILY_COST_QUERY = "daily-cost"
"""Day rows of the core shape, asked only when the core query itself is not by day."""
ASSISTANT_KEY: Final = "assistantId"
SUCCESS_KEY: Final = "analysis.successEvaluation"
SUCCESS_SHAPE: tuple[Dimension, ...] = (SUCCESS_KEY,)
MAX_MAPPING_SEGMENTS = 4
"""Beyond this many stretches of unchanged mapping and cost centers in a month, coarse
queries would multiply by the stretches; the plan then asks for day rows instead."""

Grain = Literal["day", "week", "period"]
"""How finely a query's rows are cut in time: by local day, by week, or not at all."""
_GRAIN_RANK: dict[Grain, int] = {"period": 0, "week": 1, "day": 2}
_GRAIN_STEP: dict[Grain, Step | None] = {"day": "day", "week": "week", "period": None}
Window = tuple[date, date]
"""First and last local day (inclusive) a query covers."""

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
    success_query: str
    """Logical query grouped by ``analysis.successEvaluation`` whose ``calls`` count the
    successful calls of each line."""
    daily_cost_query: str
    """Logical query by day of the core shape whose ``cost`` gives the daily cost: the core
    query when it is by day, else :data:`DAILY_COST_QUERY`."""
    fixed_shared_usd: dict[str, Decimal]
    """Fixed-amount shared pools by name: reconciliation adds them to the org total."""
    queries: list[AnalyticsQuery]
    batches: list[list[str]]
    """Query names per request, in the order they are sent."""
    definitions: list[DefinitionPlan]
    estimated_rows: dict[str, int] = Field(default_factory=dict)
    """Query name → rows the plan expects it to answer (``row_budget.py``), for the plans
    sized by a :class:`RowBudget`; empty otherwise."""
    families: dict[str, list[str]] = Field(default_factory=dict)
    """Logical query (as ``core_query`` and definitions name it) → the queries answering it,
    one per time window, in day order. A logical name not listed is answered by the query
    of that name alone."""

    def parts(self, name: str) -> list[str]:
        """The queries whose rows together answer the logical query ``name``."""
        return self.families.get(name, [name])

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


@dataclass(frozen=True)
class RowBudget:
    """What sizes a run's windows and requests: the org's mapped assistants and the rows
    a query and a request are planned for (``row_budget.py``)."""

    assistants: int
    rows_per_query: int = ROW_BUDGET
    rows_per_request: int = REQUEST_ROW_BUDGET


def build_plan(
    config: ChargebackConfig,
    period: StatementPeriod,
    max_queries_per_request: int = DEFAULT_MAX_QUERIES_PER_REQUEST,
    *,
    mapping: AssistantMapping | None = None,
    window_days: int | None = None,
    rows: RowBudget | None = None,
) -> Plan:
    """The deterministic query plan of ``config`` for ``period``: same inputs, same JSON.

    ``mapping`` lets shapes be asked at the coarsest grain their definitions need (see the
    module docstring); without it, every grouped query is by day. ``window_days`` (at least
    7) splits day and week queries into windows of at most that many days. ``rows`` cuts
    every grouped query into windows and packs requests so that estimated rows stay
    within its budgets.
    """
    if max_queries_per_request < 1:
        raise ValueError(f"max_queries_per_request must be >= 1, got {max_queries_per_request}")
    if window_days is not None and window_days < 7:
        raise ValueError(f"window_days must be >= 7 (a whole week), got {window_days}")
    if period.timezone != config.timezone:
        raise ValueError(
            f"period {period.label} is in {period.timezone} but the config's org zone is"
            f" {config.timezone}; build the period with StatementPeriod.for_month(label,"
            " config.timezone)"
        )
    month = config.for_period(period)
    segments = _stable_segments(period, mapping, month)
    needs: dict[tuple[Dimension, ...], set[str]] = {
        (): {"calls", "seconds", "cost", *config.components}
    }
    grains: dict[tuple[Dimension, ...], Grain] = {(): _grain(None, segments)}
    definitions: list[tuple[str, QueryDefinition, tuple[Dimension, ...]]] = []
    for center in month.cost_centers:
        for definition in center.queries:
            shape = _shape(definition.dimensions)
            measures = {m for metric in definition.metrics for m in METRIC_MEASURES[metric]}
            needs.setdefault(shape, set()).update(measures)
            grain = _grain(definition.step, segments)
            if _GRAIN_RANK[grain] > _GRAIN_RANK[grains.get(shape, "period")]:
                grains[shape] = grain
            else:
                grains.setdefault(shape, grain)
            definitions.append((center.id, definition, shape))
    needs.setdefault(SUCCESS_SHAPE, set()).add("calls")
    grains.setdefault(SUCCESS_SHAPE, _grain(None, segments))
    answered_by = _answering_shapes(grains)
    for shape, wider in answered_by.items():
        if shape != wider:
            needs[wider].update(needs.pop(shape))
            del grains[shape]
    names = {shape: _query_name(answered_by[shape]) for shape in answered_by}
    families: dict[str, list[AnalyticsQuery]] = {}
    estimated: dict[str, int] = {}
    cuts = _Cuts(window_days, rows, len(config.cost_centers))
    for shape in needs:
        families[names[shape]] = _family(
            names[shape],
            shape,
            needs[shape],
            config.variable_key,
            period,
            grains[shape],
            segments,
            cuts,
            estimated,
        )
    daily_cost = CORE_QUERY if grains[()] == "day" else DAILY_COST_QUERY
    if daily_cost == DAILY_COST_QUERY:
        families[daily_cost] = _family(
            daily_cost,
            (),
            {"cost"},
            config.variable_key,
            period,
            "day",
            segments,
            cuts,
            estimated,
        )
    core, *others = families
    queries = [
        *families[core],
        _org_total_query(period),
        *(query for family in sorted(others) for query in families[family]),
    ]
    if rows is not None:
        estimated[ORG_TOTAL_QUERY] = 1
    return Plan(
        period=period,
        variable_key=config.variable_key,
        components=list(config.components),
        max_queries_per_request=max_queries_per_request,
        core_query=CORE_QUERY,
        org_total_query=ORG_TOTAL_QUERY,
        success_query=names[SUCCESS_SHAPE],
        daily_cost_query=daily_cost,
        fixed_shared_usd={
            pool.name: pool.amount for pool in config.shared_costs if pool.amount is not None
        },
        queries=queries,
        batches=pack_requests(
            [query.name for query in queries],
            max_queries_per_request,
            estimated,
            rows.rows_per_request if rows else None,
        ),
        estimated_rows={query.name: estimated[query.name] for query in queries if estimated},
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
        families={
            family: [query.name for query in parts]
            for family, parts in families.items()
            if [query.name for query in parts] != [family]
        },
    )


def _answering_shapes(
    grains: dict[tuple[Dimension, ...], Grain],
) -> dict[tuple[Dimension, ...], tuple[Dimension, ...]]:
    """Each shape → the shape whose query answers it: the widest shape that contains all of
    its dimensions and is asked at least as finely, else itself.

    Rows, not queries, are what a large org pays for (fetch, check and attribute are linear
    in them), and a wider shape's rows hold every group of a narrower one: rolled up by the
    definition's own dimensions (``breakdowns.py`` keys groups by those alone), sums and
    counts are exact, so e.g. "minutes by ended reason" read from the rows of "calls by
    status and ended reason" costs no row of its own. A narrower shape asked more finely
    keeps its query, since answering it would multiply the wider one's rows. The core
    shape stays the core query.
    """
    rank = _GRAIN_RANK
    answered: dict[tuple[Dimension, ...], tuple[Dimension, ...]] = {}
    for shape, grain in grains.items():
        wider = [
            other
            for other, other_grain in grains.items()
            if shape and set(shape) < set(other) and rank[grain] <= rank[other_grain]
        ]
        answered[shape] = max(wider, key=lambda other: (len(other), other), default=shape)
    return answered


@dataclass(frozen=True)
class _Cuts:
    """How a run cuts its queries in time: at most ``window_days`` days, and within ``rows``."""

    window_days: int | None
    rows: RowBudget | None
    cost_centers: int

    def estimate(self, shape: tuple[Dimension, ...]) -> RowEstimate | None:
        if self.rows is None:
            return None
        return RowEstimate.of(self.rows.assistants, self.cost_centers, shape)


def _family(
    family: str,
    shape: tuple[Dimension, ...],
    measures: set[str],
    variable_key: str,
    period: StatementPeriod,
    grain: Grain,
    segments: list[Window] | None,
    cuts: _Cuts,
    estimated: dict[str, int],
) -> list[AnalyticsQuery]:
    """The queries answering one logical query, one per time window, in day order; their
    estimated rows go into ``estimated`` when the cuts have a row budget."""
    whole = Slice(period.first_day, period.last_day)
    windows = [
        Slice(first, last) for first, last in _windows(whole, grain, segments, cuts.window_days)
    ]
    estimate = cuts.estimate(shape)
    if estimate is not None and cuts.rows is not None:
        windows = [
            piece
            for window in windows
            for piece in cut(window, grain, estimate, cuts.rows.rows_per_query)
        ]
    queries = []
    for window in windows:
        name = family if windows == [whole] else _window_name(family, window)
        queries.append(
            _grouped_query(
                name,
                shape,
                measures,
                variable_key,
                period,
                grain,
                None if window == whole else window,
            )
        )
        if estimate is not None:
            estimated[name] = estimate.rows(window, grain)
    return queries


def _window_name(family: str, window: Slice) -> str:
    """``core-allocation-12`` for the window starting on the 12th; ``by-reason-03.2`` for
    the second slice of the 3rd."""
    name = f"{family}-{window.first.day:02d}"
    return name if window.parts == 1 else f"{name}.{window.part + 1}"


def _grain(step: DefinitionStep | None, segments: list[Window] | None) -> Grain:
    """The grain a definition needs; day for all when the mapping's stretches are unknown."""
    if segments is None or step == "day":
        return "day"
    return "week" if step == "week" else "period"


def _stable_segments(
    period: StatementPeriod, mapping: AssistantMapping | None, config: ChargebackConfig
) -> list[Window] | None:
    """The stretches of the period over which neither an assistant's mapping nor the set of
    cost centers a call's variable may name changes.

    A coarse row is attributed as of one day of its window (``attribution.py``), which is
    exact only when every day of the window would attribute it alike. None when the
    mapping is unknown or the stretches are so many that coarse queries would multiply
    beyond what day rows cost.
    """
    if mapping is None:
        return None
    changes: set[date] = set()
    for entry in mapping.entries:
        if entry.valid_from is not None:
            changes.add(entry.valid_from)
        if entry.valid_to is not None:
            changes.add(entry.valid_to + timedelta(days=1))
    for end in config.cost_center_ends.values():
        changes.add(end + timedelta(days=1))
    cuts = sorted(day for day in changes if period.first_day < day <= period.last_day)
    if len(cuts) >= MAX_MAPPING_SEGMENTS:
        return None
    bounds = [period.first_day, *cuts, period.last_day + timedelta(days=1)]
    return [(start, end - timedelta(days=1)) for start, end in pairwise(bounds)]


def _windows(
    whole: Slice, grain: Grain, segments: list[Window] | None, window_days: int | None
) -> list[Window]:
    """The time windows of one shape's queries, in day order.

    Day rows never span a mapping change, so only week and period queries follow the
    segments. Cutting day and week queries at a Monday adds no row: no day or week
    bucket is split.
    """
    spans = segments if grain != "day" and segments is not None else [(whole.first, whole.last)]
    if window_days is None or grain == "period":
        return spans
    return [piece for span in spans for piece in _cut_at_mondays(span, window_days)]


def _cut_at_mondays(span: Window, days: int) -> list[Window]:
    """``span`` in windows of at most ``days`` (>= 7) days, each but the last ending on a Sunday."""
    first, last = span
    pieces: list[Window] = []
    while first <= last:
        end = first + timedelta(days=days - 1)
        if end < last:
            end -= timedelta(days=(end.weekday() + 1) % 7)
        else:
            end = last
        pieces.append((first, end))
        first = end + timedelta(days=1)
    return pieces


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
    grain: Grain,
    window: Slice | None,
) -> AnalyticsQuery:
    """One query of a shape: over the whole period, or over ``window`` of it."""
    time_range = _time_range(period, _GRAIN_STEP[grain])
    if window is not None:
        start, end = _bounds(window, ZoneInfo(period.timezone))
        time_range = TimeRange(
            step=_GRAIN_STEP[grain], start=start, end=end, timezone=period.timezone
        )
    return AnalyticsQuery(
        table="call",
        group_by=[ASSISTANT_KEY, *shape],
        group_by_variable_value=[VariableValueGroupBy(key=variable_key)],
        name=name,
        time_range=time_range,
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


def _time_range(period: StatementPeriod, step: Step | None) -> TimeRange:
    return TimeRange(step=step, start=period.start, end=period.end, timezone=period.timezone)


def _bounds(window: Slice, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """A window's start and end instants: local midnights, or whole seconds splitting one
    local day (23, 24 or 25 hours) into ``parts`` near-equal slices."""
    start = _local_midnight(window.first, zone)
    end = _local_midnight(window.last + timedelta(days=1), zone)
    if window.parts == 1:
        return start, end
    seconds = int((end - start).total_seconds())
    return (
        _with_local_offset(start + timedelta(seconds=seconds * window.part // window.parts), zone),
        _with_local_offset(
            start + timedelta(seconds=seconds * (window.part + 1) // window.parts), zone
        ),
    )


def _with_local_offset(instant: datetime, zone: ZoneInfo) -> datetime:
    """``instant`` written with the zone's offset at that moment (fixed, as the period's)."""
    local = instant.astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return local.astimezone(dt_timezone(offset))


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """Midnight of ``day`` in ``zone`` with a fixed offset, as ``StatementPeriod`` writes its
    bounds (a window's JSON then reads the same offsets as the period's)."""
    local = datetime.combine(day, time(0), tzinfo=zone)
    offset = local.utcoffset()
    assert offset is not None
    return local.astimezone(dt_timezone(offset))
