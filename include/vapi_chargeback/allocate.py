"""Turn the core query's rows into chargeback lines that add up exactly.

Each row is one (time bucket, assistant, variable value) group, its bucket a local day or
a stretch of days over which the mapping does not change (``plan.py``). Its cost center
is decided by the first rule that matches — the call-level variable value naming a configured cost
center, else the assistant's mapping valid that day, else ``UNALLOCATED`` with a reason —
and rows are summed exactly per (cost center, team, assistant, allocation). Only then is
anything rounded: each column once, over all lines together, with largest remainder, so
the lines add up to the rounded column total to the cent. Shared pools are split the
same way. The breakdowns of ``breakdowns.py`` attribute their rows with these same rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from vapi_chargeback.analytics.models import DATE_KEY, AnalyticsQuery, AnalyticsQueryResult
from vapi_chargeback.analytics.numbers import InvalidNumberError, to_decimal
from vapi_chargeback.breakdowns import BreakdownBuilder
from vapi_chargeback.config import (
    AssistantMapping,
    ChargebackConfig,
    SharedPool,
    canonical_assistant_id,
)
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.plan import ASSISTANT_KEY, Plan, measure_alias, measure_default_key
from vapi_chargeback.split import (
    CALL_QUANTUM,
    MINUTES_QUANTUM,
    exact_context,
    round_to_total,
    split_exact,
)
from vapi_chargeback.statement import (
    UNALLOCATED,
    ChargebackLine,
    CostCenterInfo,
    Statement,
)

NO_ASSISTANT_ID = "00000000-0000-0000-0000-000000000000"
"""Transient assistants and squads show up with this id: treated as no assistant."""
UNALLOCATED_NAME = "Unallocated"
DIRECT = "direct"
REASONS = ("no-assistant", "unknown-cost-center", "unmapped-assistant")
"""Why a line is unallocated, in order of precedence."""
SECONDS_PER_MINUTE = 60
NO_ASSISTANT_LINE = "unallocated:no-assistant"
RESPREAD_NOTE = (
    "Re-spreads the calls without an assistant: their calls, minutes and every cost component"
    " move with their cost, each split with the same shares (largest remainder: calls whole,"
    " minutes to 0.01, money to the cent), so every column still adds up to the org total."
)

log = logging.getLogger(__name__)


class AnalyticsResultError(PermanentError, ValueError):
    """A result row the plan did not ask for; names the query, row and field."""


@dataclass(frozen=True)
class Attribution:
    cost_center_id: str
    team: str
    assistant_id: str
    """Empty when the call had no assistant (none, empty or the all-zero id)."""
    allocation: str
    """``direct`` or ``unallocated:<reason>``."""


def attribute(
    cost_center_ends: Mapping[str, date | None],
    mapping: AssistantMapping,
    assistant_id: object,
    variable_value: object,
    day: date,
) -> Attribution:
    """Who pays for calls of ``assistant_id`` with ``variable_value`` on local ``day``.

    ``cost_center_ends``: every cost center of the month → its last charged day (``valid_to``,
    none while it runs); a variable value naming one after that day names no cost center.
    Assistant ids are UUIDs, which compare case-blind: the API may answer them in upper case,
    so they are looked up, and shown, in their canonical lower case (as the mapping stores them).
    """
    assistant = canonical_assistant_id(assistant_id) if isinstance(assistant_id, str) else ""
    if assistant == NO_ASSISTANT_ID:
        assistant = ""
    mapped = mapping.lookup(assistant, day) if assistant else None
    has_value = variable_value is not None and variable_value != ""
    named = _charged_center(variable_value, cost_center_ends, day)
    if named is not None:
        team = mapped.team if mapped and mapped.cost_center_id == named else ""
        return Attribution(named, team, assistant, DIRECT)
    if mapped is not None:
        return Attribution(mapped.cost_center_id, mapped.team, assistant, DIRECT)
    if not assistant:
        reason = "no-assistant"
    elif has_value:
        reason = "unknown-cost-center"
    else:
        reason = "unmapped-assistant"
    return Attribution(UNALLOCATED, "", assistant, f"unallocated:{reason}")


def _charged_center(
    value: object, cost_center_ends: Mapping[str, date | None], day: date
) -> str | None:
    """The cost center a variable value names, if it is still charged on ``day``."""
    if not isinstance(value, str) or value not in cost_center_ends:
        return None
    end = cost_center_ends[value]
    return value if end is None or day <= end else None


class Attributor:
    """:func:`attribute`, memoised for one run: across queries, the same few thousand
    (assistant, variable value, day) triples come back on every row."""

    def __init__(self, config: ChargebackConfig, mapping: AssistantMapping) -> None:
        self._ends = {center.id: center.valid_to for center in config.cost_centers}
        self._mapping = mapping
        self._seen: dict[tuple[object, object, date], Attribution] = {}

    def __call__(self, assistant_id: object, variable_value: object, day: date) -> Attribution:
        key = (assistant_id, variable_value, day)
        try:
            found = self._seen.get(key)
        except TypeError:
            key = (_hashable(assistant_id), _hashable(variable_value), day)
            found = self._seen.get(key)
        if found is None:
            found = attribute(self._ends, self._mapping, assistant_id, variable_value, day)
            self._seen[key] = found
        return found


@dataclass(frozen=True, slots=True)
class AttributedRow:
    day: date
    """A local day inside both the row's bucket and its query's window, so that the mapping
    and every coarser bucket (week, month) read the same from it: the bucket's own day for
    day rows, the window's first day for rows over a whole window, and for week rows the
    later of the week's Monday and the window's first day."""
    attribution: Attribution
    row: Mapping[str, Any]
    values: tuple[Decimal | int, ...]
    """Exact values of the measures in the order they were asked for; null sums are 0.
    Counts may arrive as ``int``: sum them into a ``Decimal``."""


def attributed_rows(
    config: ChargebackConfig,
    mapping: AssistantMapping,
    plan: Plan,
    results: Mapping[str, AnalyticsQueryResult],
    query_name: str,
    measures: Sequence[str],
    *,
    attributor: Attributor | None = None,
) -> Iterator[AttributedRow]:
    """The rows of one compiled query, each with its local day, attribution and measures.

    A generator, so a month of rows is aggregated as it is read, never held twice; days
    and attributions repeat across rows and are computed once each (across queries too,
    when they share an ``attributor``). Rows whose measures are all JSON numbers take a
    fast path; anything else is read value by value, which also names what is wrong.
    """
    result = results.get(query_name)
    if result is None:
        raise AnalyticsResultError(
            f"no result for query {query_name!r}; got {sorted(results)}. Fetch every batch of"
            " the plan before allocating"
        )
    attributor = attributor or Attributor(config, mapping)
    zone = ZoneInfo(plan.period.timezone)
    query = plan.query(query_name)
    step = query.time_range.step if query.time_range else "day"
    first, last = _window(query, plan, zone)
    readers = [(measure_alias(m), measure_default_key(m)) for m in measures]
    aliases = [alias for alias, _ in readers]
    pick = _picker(aliases)
    variable_key = plan.variable_key
    days: dict[object, date] = {}
    for index, row in enumerate(result.result):
        if step is None:
            day = first
        else:
            stamp = row.get(DATE_KEY)
            found = days.get(stamp) if isinstance(stamp, str) else None
            if found is None:
                where = f"query {query_name!r} row {index}"
                found = _row_day(stamp, step, zone, plan, (first, last), where)
                days[stamp] = found
            day = found
        attribution = attributor(row.get(ASSISTANT_KEY), row.get(variable_key), day)
        try:
            values = pick(row)
        except KeyError:
            values = None
        if values is None or not _EXACT_TYPES.issuperset(map(type, values)):
            values = tuple(
                _measure(row, alias, default, query_name, index) for alias, default in readers
            )
        yield AttributedRow(day, attribution, row, values)


def allocate(
    config: ChargebackConfig,
    mapping: AssistantMapping,
    plan: Plan,
    results: Mapping[str, AnalyticsQueryResult],
) -> Statement:
    """The month's statement, without reconciliation and provenance (added by the caller).

    Its ``breakdowns`` hold every owner's query definitions, attributed with the same rules.
    Each query's rows are read once and aggregated as they stream by. The month sees its own
    config (:meth:`ChargebackConfig.for_period`): a cost center that ended before the month
    gets no variable-value charge, no share of a pool and no statement; within the month of
    its ``valid_to`` it shares that month's pools, but variable values name it only until
    that day.
    """
    config = config.for_period(plan.period)
    core_measures = ["calls", "seconds", "cost", *plan.components]
    needed: dict[str, set[str]] = {plan.core_query: set(core_measures)}
    for definition in plan.definitions:
        needed.setdefault(definition.query, set()).update(definition.aliases)
    measures = {name: sorted(wanted) for name, wanted in needed.items()}
    builder = BreakdownBuilder(plan, config.cost_center_ids, measures)
    attributor = Attributor(config, mapping)
    core = [measures[plan.core_query].index(m) for m in core_measures]
    sums: dict[tuple[str, str, str, str], list[Decimal]] = {}
    with exact_context():
        for name, wanted in measures.items():
            is_core = name == plan.core_query
            for part in plan.parts(name):
                rows = attributed_rows(
                    config, mapping, plan, results, part, wanted, attributor=attributor
                )
                for item in rows:
                    builder.add(name, item)
                    if is_core:
                        a = item.attribution
                        key = (a.cost_center_id, a.team, a.assistant_id, a.allocation)
                        line = sums.get(key)
                        if line is None:
                            line = sums[key] = [Decimal(0)] * len(core)
                        values = item.values
                        for position, index in enumerate(core):
                            line[position] += values[index]
    order = _LineOrder(config)
    keys = sorted(sums, key=lambda k: order.key(k[0], k[3], k[1], k[2]))
    totals = [dict(zip(core_measures, sums[k], strict=True)) for k in keys]
    lines = _rounded_lines(config, plan, keys, totals)
    lines, notes = _with_shared_pools(config, plan, lines)
    lines.sort(key=lambda line: order.key(*_line_key(line)))
    return Statement(
        period=plan.period.label,
        timezone=plan.period.timezone,
        period_start=plan.period.start,
        period_end=plan.period.end,
        currency=config.currency,
        components=list(plan.components),
        cost_centers=[CostCenterInfo(c.id, c.name, c.owner_email) for c in config.cost_centers],
        lines=lines,
        breakdowns=builder.tables(),
        pool_notes=notes,
    )


_EXACT_TYPES = frozenset({Decimal, int})
"""What a JSON number parses to with ``parse_float=Decimal``; ``bool`` is not among them."""


def _picker(aliases: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The values of ``aliases`` of a row, as a tuple, in one C call (``KeyError`` if one is missing)."""
    if len(aliases) == 1:
        alias = aliases[0]
        return lambda row: (row[alias],)
    return itemgetter(*aliases)


def _window(query: AnalyticsQuery, plan: Plan, zone: ZoneInfo) -> tuple[date, date]:
    """First and last local day a query covers: its own time range, else the period's."""
    time_range = query.time_range
    start = time_range.start if time_range and time_range.start else plan.period.start
    end = time_range.end if time_range and time_range.end else plan.period.end
    return start.astimezone(zone).date(), end.astimezone(zone).date() - timedelta(days=1)


def _row_day(
    value: object,
    step: str,
    zone: ZoneInfo,
    plan: Plan,
    window: tuple[date, date],
    where: str,
) -> date:
    """The :attr:`AttributedRow.day` of a day or week row, after checking its bucket."""
    first, last = window
    if step == "week":
        monday = _bucket_day(value, zone, plan, where)
        if not first - timedelta(days=6) <= monday <= last:
            raise AnalyticsResultError(
                f"{where}: {DATE_KEY} {value!r} ({monday}) starts no week of the query's"
                f" days {first}..{last}; the response does not belong to this plan"
            )
        return max(monday, first)
    if step != "day":
        raise AnalyticsResultError(f"{where}: the plan asks for no step {step!r}")
    day = _local_day(value, zone, plan, where)
    if not first <= day <= last:
        raise AnalyticsResultError(
            f"{where}: {DATE_KEY} {value!r} ({day}) is outside the query's days {first}..{last};"
            " the response does not belong to this plan"
        )
    return day


def _rounded_lines(
    config: ChargebackConfig,
    plan: Plan,
    keys: list[tuple[str, str, str, str]],
    sums: list[dict[str, Decimal]],
) -> list[ChargebackLine]:
    """Round each column over all lines at once, so the lines add up to its rounded total."""
    cost = round_to_total([s["cost"] for s in sums])
    minutes = round_to_total(
        [Fraction(s["seconds"]) / SECONDS_PER_MINUTE for s in sums], MINUTES_QUANTUM
    )
    components = {c: round_to_total([s[c] for s in sums]) for c in plan.components}
    names = {center.id: center.name for center in config.cost_centers}
    return [
        ChargebackLine(
            cost_center_id=center,
            cost_center_name=names.get(center, UNALLOCATED_NAME),
            team=team,
            assistant_id=assistant,
            allocation=allocation,
            calls=_whole(s["calls"]),
            minutes=minutes[i],
            cost_usd=cost[i],
            components_usd={c: components[c][i] for c in plan.components},
        )
        for i, ((center, team, assistant, allocation), s) in enumerate(zip(keys, sums, strict=True))
    ]


def _with_shared_pools(
    config: ChargebackConfig, plan: Plan, lines: list[ChargebackLine]
) -> tuple[list[ChargebackLine], dict[str, str]]:
    """Add one ``shared:<pool>`` line per receiving cost center, in pool order; with the
    pools' notes (see :attr:`Statement.pool_notes`).

    Proportional drivers are read from the rounded direct lines, so anyone can re-check a
    split from the statement alone. A ``calls-without-assistant`` pool takes the
    ``unallocated:no-assistant`` line out and spreads all of it — calls, minutes, cost and
    components, each with the same weights — so no column loses what the line carried.
    """
    direct = [line for line in lines if line.allocation == DIRECT]
    shared: list[ChargebackLine] = []
    notes: dict[str, str] = {}
    for pool in config.shared_costs:
        if pool.source == "calls-without-assistant":
            moved = [line for line in lines if line.allocation == NO_ASSISTANT_LINE]
            lines = [line for line in lines if line.allocation != NO_ASSISTANT_LINE]
            usage = _Usage.of(moved, plan.components)
            notes[pool.name] = RESPREAD_NOTE
        else:
            usage = _Usage.of([], plan.components, cost_usd=pool.amount or Decimal(0))
        if not usage:
            continue
        centers, weights = _weights(config, pool, direct)
        if not any(weights):
            weights = [Decimal(1)] * len(centers)
            fallback = _even_fallback(pool, plan, len(centers))
            notes[pool.name] = f"{notes[pool.name]} {fallback}" if pool.name in notes else fallback
        for center, part in zip(centers, usage.split(weights), strict=True):
            if part:
                shared.append(_shared_line(config, pool, center, part))
    return lines + shared, notes


@dataclass(frozen=True)
class _Usage:
    """The columns a pool moves to its cost centers: a fixed amount is cost alone."""

    calls: int
    minutes: Decimal
    cost_usd: Decimal
    components_usd: dict[str, Decimal]

    @classmethod
    def of(
        cls,
        lines: Sequence[ChargebackLine],
        components: Sequence[str],
        cost_usd: Decimal = Decimal(0),
    ) -> _Usage:
        return cls(
            calls=sum(line.calls for line in lines),
            minutes=sum((line.minutes for line in lines), Decimal(0)),
            cost_usd=sum((line.cost_usd for line in lines), cost_usd),
            components_usd={
                c: sum((line.components_usd[c] for line in lines), Decimal(0)) for c in components
            },
        )

    def __bool__(self) -> bool:
        return bool(
            self.calls or self.minutes or self.cost_usd or any(self.components_usd.values())
        )

    def split(self, weights: Sequence[Decimal]) -> list[_Usage]:
        """One part per weight; every column split on its own, so each adds up exactly."""
        calls = split_exact(Decimal(self.calls), weights, CALL_QUANTUM)
        minutes = split_exact(self.minutes, weights, MINUTES_QUANTUM)
        cost = split_exact(self.cost_usd, weights)
        components = {c: split_exact(v, weights) for c, v in self.components_usd.items()}
        return [
            _Usage(
                calls=int(calls[i]),
                minutes=minutes[i],
                cost_usd=cost[i],
                components_usd={c: parts[i] for c, parts in components.items()},
            )
            for i in range(len(weights))
        ]


def _weights(
    config: ChargebackConfig, pool: SharedPool, direct: list[ChargebackLine]
) -> tuple[list[str], list[Decimal]]:
    centers = config.cost_center_ids
    if pool.method == "fixed":
        percentages = pool.percentages or {}
        return centers, [percentages.get(center, Decimal(0)) for center in centers]
    if pool.method == "even":
        return centers, [Decimal(1)] * len(centers)
    totals = dict.fromkeys(centers, Decimal(0))
    for line in direct:
        if pool.driver == "cost":
            totals[line.cost_center_id] += line.cost_usd
        elif pool.driver == "minutes":
            totals[line.cost_center_id] += line.minutes
        else:
            totals[line.cost_center_id] += line.calls
    return centers, [max(totals[center], Decimal(0)) for center in centers]


def _even_fallback(pool: SharedPool, plan: Plan, centers: int) -> str:
    """Say, in the run log and for the workbook, that a proportional pool had nothing to go by.

    A zero driver (``minutes`` in a month without minutes) gives no proportions; an even
    split keeps the pool booked and reconciled, and saying so lets finance re-check it.
    """
    log.warning(
        "shared pool %r is proportional to %s, but %s is zero for every cost center in %s:"
        " split evenly over its %d cost centers instead",
        pool.name,
        pool.driver,
        pool.driver,
        plan.period.label,
        centers,
    )
    return (
        f"Proportional to {pool.driver}, but {pool.driver} was zero for every cost center"
        f" this month: split evenly over the {centers} cost centers instead."
    )


def _shared_line(
    config: ChargebackConfig, pool: SharedPool, center: str, part: _Usage
) -> ChargebackLine:
    return ChargebackLine(
        cost_center_id=center,
        cost_center_name=config.cost_center(center).name,
        team="",
        assistant_id="",
        allocation=f"shared:{pool.name}",
        calls=part.calls,
        minutes=part.minutes,
        cost_usd=part.cost_usd,
        components_usd=part.components_usd,
    )


class _LineOrder:
    """Cost centers in config order then UNALLOCATED; direct, shared (pool order), unallocated."""

    def __init__(self, config: ChargebackConfig) -> None:
        self._centers = {center: i for i, center in enumerate(config.cost_center_ids)}
        kinds = [DIRECT, *(f"shared:{pool.name}" for pool in config.shared_costs)]
        kinds += [f"unallocated:{reason}" for reason in REASONS]
        self._kinds = {kind: i for i, kind in enumerate(kinds)}

    def key(
        self, center: str, allocation: str, team: str, assistant: str
    ) -> tuple[int, int, str, str]:
        return (
            self._centers.get(center, len(self._centers)),
            self._kinds.get(allocation, len(self._kinds)),
            team,
            assistant,
        )


def _line_key(line: ChargebackLine) -> tuple[str, str, str, str]:
    return (line.cost_center_id, line.allocation, line.team, line.assistant_id)


def _local_day(value: object, zone: ZoneInfo, plan: Plan, where: str) -> date:
    """The org-zone calendar day of a row's day bucket, which must lie in the period."""
    day = _bucket_day(value, zone, plan, where)
    if not plan.period.contains_day(day):
        raise AnalyticsResultError(
            f"{where}: {DATE_KEY} {value!r} ({day}) is outside {plan.period.label};"
            " the response does not belong to this plan"
        )
    return day


def _bucket_day(value: object, zone: ZoneInfo, plan: Plan, where: str) -> date:
    """The org-zone calendar day a row's bucket starts, which must be the start of that day.

    Compared as UTC instants (PEP 495 makes a datetime inside a DST gap unequal to every
    other-zone datetime), so a day whose midnight falls in a gap, starting at 01:00, is
    still recognised.
    """
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value)
        except ValueError:
            raise AnalyticsResultError(
                f"{where}: {DATE_KEY} {value!r} is not an ISO-8601 instant"
            ) from None
    else:
        raise AnalyticsResultError(
            f"{where}: no {DATE_KEY!r}; the plan asks for a step, so every row needs one"
        )
    if instant.tzinfo is None:
        raise AnalyticsResultError(f"{where}: {DATE_KEY} {value!r} has no UTC offset")
    local = instant.astimezone(zone)
    day_start = datetime.combine(local.date(), time(0), tzinfo=zone).astimezone(UTC)
    if instant.astimezone(UTC) != day_start:
        raise AnalyticsResultError(
            f"{where}: {DATE_KEY} {value!r} is {local.isoformat()} in {plan.period.timezone},"
            " not a local midnight; the API did not bucket days in the requested time zone"
        )
    return local.date()


def _measure(row: Mapping[str, Any], alias: str, default: str, query: str, index: int) -> Decimal:
    """A measure's exact value: its alias, else the API's default key; null is 0."""
    raw = row[alias] if alias in row else row.get(default, _MISSING)
    if type(raw) is Decimal and raw.is_finite():
        return raw
    if type(raw) is int:
        return Decimal(raw)
    where = f"query {query!r} row {index}"
    if raw is _MISSING:
        raise AnalyticsResultError(
            f"{where}: no {alias!r} (nor {default!r}); keys are {sorted(row)}"
        )
    try:
        value = to_decimal(raw, field=f"{where}.{alias}")
    except InvalidNumberError as error:
        raise AnalyticsResultError(str(error)) from None
    return value if value is not None else Decimal(0)


_MISSING = object()


def _whole(value: Decimal) -> int:
    if value != value.to_integral_value():
        raise AnalyticsResultError(f"call count {value} is not a whole number")
    return int(value)


def _hashable(value: object) -> object:
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
