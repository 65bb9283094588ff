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

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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
from vapi_chargeback.config import AssistantMapping, ChargebackConfig, SharedPool
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.plan import ASSISTANT_KEY, Plan, measure_alias, measure_default_key
from vapi_chargeback.split import MINUTES_QUANTUM, exact_context, round_to_total, split_exact
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
    cost_center_ids: Collection[str],
    mapping: AssistantMapping,
    assistant_id: object,
    variable_value: object,
    day: date,
) -> Attribution:
    """Who pays for calls of ``assistant_id`` with ``variable_value`` on local ``day``."""
    assistant = assistant_id if isinstance(assistant_id, str) else ""
    if assistant == NO_ASSISTANT_ID:
        assistant = ""
    mapped = mapping.lookup(assistant, day) if assistant else None
    has_value = variable_value is not None and variable_value != ""
    if isinstance(variable_value, str) and variable_value in cost_center_ids:
        team = mapped.team if mapped and mapped.cost_center_id == variable_value else ""
        return Attribution(variable_value, team, assistant, DIRECT)
    if mapped is not None:
        return Attribution(mapped.cost_center_id, mapped.team, assistant, DIRECT)
    if not assistant:
        reason = "no-assistant"
    elif has_value:
        reason = "unknown-cost-center"
    else:
        reason = "unmapped-assistant"
    return Attribution(UNALLOCATED, "", assistant, f"unallocated:{reason}")


class Attributor:
    """:func:`attribute`, memoised for one run: across queries, the same few thousand
    (assistant, variable value, day) triples come back on every row."""

    def __init__(self, config: ChargebackConfig, mapping: AssistantMapping) -> None:
        self._ids = frozenset(config.cost_center_ids)
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
            found = attribute(self._ids, self._mapping, assistant_id, variable_value, day)
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
    Each query's rows are read once and aggregated as they stream by.
    """
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
    lines = _with_shared_pools(config, plan, lines)
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
) -> list[ChargebackLine]:
    """Add one ``shared:<pool>`` line per receiving cost center, in pool order.

    Proportional drivers are read from the rounded direct lines, so anyone can re-check a
    split from the statement alone. A ``calls-without-assistant`` pool takes the
    ``unallocated:no-assistant`` lines out and spreads their (already rounded) cost.
    """
    direct = [line for line in lines if line.allocation == DIRECT]
    shared: list[ChargebackLine] = []
    for pool in config.shared_costs:
        if pool.source == "calls-without-assistant":
            amount = sum(
                (line.cost_usd for line in lines if line.allocation == NO_ASSISTANT_LINE),
                Decimal(0),
            )
            lines = [line for line in lines if line.allocation != NO_ASSISTANT_LINE]
        else:
            amount = pool.amount or Decimal(0)
        centers, weights = _weights(config, pool, direct)
        for center, part in zip(centers, split_exact(amount, weights), strict=True):
            if part:
                shared.append(_shared_line(config, plan, pool, center, part))
    return lines + shared


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


def _shared_line(
    config: ChargebackConfig, plan: Plan, pool: SharedPool, center: str, amount: Decimal
) -> ChargebackLine:
    return ChargebackLine(
        cost_center_id=center,
        cost_center_name=config.cost_center(center).name,
        team="",
        assistant_id="",
        allocation=f"shared:{pool.name}",
        calls=0,
        minutes=Decimal("0.00"),
        cost_usd=amount,
        components_usd={c: Decimal("0.00") for c in plan.components},
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
