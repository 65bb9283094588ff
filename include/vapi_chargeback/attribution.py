"""Who pays for each analytics row: the allocation rules, applied row by row.

A row of a compiled query is one (time bucket, assistant, variable value) group. Its
local day is read from its bucket in the org calendar and checked against the query's
window; its cost center is decided by the first rule that matches — the call-level
variable value naming a configured cost center, else the assistant's mapping valid that
day, else the first ``mapping_rules`` entry matching the run's assistants snapshot (its
metadata or name), else ``UNALLOCATED`` with a reason. ``allocate.py`` sums the core query's rows into
lines and ``breakdowns.py`` groups every definition's rows with these same rules, so a
breakdown can never attribute a call differently from the statement lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from vapi_chargeback.analytics.models import DATE_KEY, AnalyticsQuery, AnalyticsQueryResult
from vapi_chargeback.analytics.numbers import InvalidNumberError, to_decimal
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.mapping import AssistantMapping, canonical_assistant_id
from vapi_chargeback.mapping_rules import RuleBook
from vapi_chargeback.plan import ASSISTANT_KEY, Plan, measure_alias, measure_default_key
from vapi_chargeback.statement import UNALLOCATED

NO_ASSISTANT_ID = "00000000-0000-0000-0000-000000000000"
"""Transient assistants and squads show up with this id: treated as no assistant."""
DIRECT = "direct"
REASONS = ("no-assistant", "unknown-cost-center", "unmapped-assistant")
"""Why a line is unallocated, in order of precedence."""
ChargedBy = Literal["mapping", "variable", "rule:metadata", "rule:name", ""]
MAPPING_RULE: ChargedBy = "mapping"
VARIABLE_RULE: ChargedBy = "variable"
METADATA_RULE: ChargedBy = "rule:metadata"
NAME_RULE: ChargedBy = "rule:name"
_RULES: dict[str, ChargedBy] = {"metadata": METADATA_RULE, "name": NAME_RULE}
PRECEDENCE: tuple[ChargedBy, ...] = (VARIABLE_RULE, MAPPING_RULE, METADATA_RULE, NAME_RULE, "")
"""The rules in the order they are tried (a line summing rows of several shows the first)."""


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
    charged_by: ChargedBy = ""
    """On a direct row, why this cost center pays: ``variable`` when the call's variable
    names a cost center the assistant's mapping (or rule) does not give that day (none, or
    another); ``mapping`` when a CSV row gives it (whether or not the variable names it
    too); ``rule:metadata`` / ``rule:name`` when no CSV row covers the day and a mapping
    rule gives it (the variable naming none, or this one: a rule acts as the CSV row it
    would suggest, so ``mapping suggest`` round-trips). Empty on unallocated rows."""


def attribute(
    cost_center_ends: Mapping[str, date | None],
    mapping: AssistantMapping,
    assistant_id: object,
    variable_value: object,
    day: date,
    rules: RuleBook | None = None,
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
    hit = rules.match(assistant, cost_center_ends, day) if rules and mapped is None else None
    if named is not None:
        if mapped is not None and mapped.cost_center_id == named:
            return Attribution(named, mapped.team, assistant, DIRECT, MAPPING_RULE)
        if hit is not None and hit.cost_center_id == named:
            return Attribution(named, hit.team, assistant, DIRECT, _RULES[hit.kind])
        return Attribution(named, "", assistant, DIRECT, VARIABLE_RULE)
    if mapped is not None:
        return Attribution(mapped.cost_center_id, mapped.team, assistant, DIRECT, MAPPING_RULE)
    if hit is not None:
        return Attribution(hit.cost_center_id, hit.team, assistant, DIRECT, _RULES[hit.kind])
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

    def __init__(
        self, config: ChargebackConfig, mapping: AssistantMapping, rules: RuleBook | None = None
    ) -> None:
        self._ends = {center.id: center.valid_to for center in config.cost_centers}
        self._mapping = mapping
        self._rules = rules
        self.seen: dict[tuple[object, object, date], Attribution] = {}
        """Attributions found so far by (assistant, variable value, day): read directly by
        :func:`attributed_rows`, which saves a call per row."""

    def __call__(self, assistant_id: object, variable_value: object, day: date) -> Attribution:
        key = (assistant_id, variable_value, day)
        try:
            found = self.seen.get(key)
        except TypeError:
            key = (_hashable(assistant_id), _hashable(variable_value), day)
            found = self.seen.get(key)
        if found is None:
            found = attribute(
                self._ends, self._mapping, assistant_id, variable_value, day, self._rules
            )
            self.seen[key] = found
        return found


class AttributedRow(NamedTuple):
    """One analytics row with who pays for it; a tuple, as millions are made a month (a
    frozen dataclass costs four ``object.__setattr__`` calls each)."""

    day: date
    """A local day inside both the row's bucket and its query's window, so that the mapping,
    the cost centers still charged and every coarser bucket (week, month) read the same from
    it (the plan cuts coarse windows where either changes): the bucket's own day for
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
    seen = attributor.seen
    exact_types = _EXACT_TYPES
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
        assistant, value = row.get(ASSISTANT_KEY), row.get(variable_key)
        try:
            attribution = seen.get((assistant, value, day)) or attributor(assistant, value, day)
        except TypeError:
            attribution = attributor(assistant, value, day)
        try:
            values = pick(row)
        except KeyError:
            values = None
        if values is None or not exact_types.issuperset(map(type, values)):
            values = tuple(
                _measure(row, alias, default, query_name, index) for alias, default in readers
            )
        yield AttributedRow(day, attribution, row, values)


_EXACT_TYPES = frozenset({Decimal, int})
"""What a JSON number parses to with ``parse_float=Decimal``; ``bool`` is not among them."""


def _picker(aliases: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The values of ``aliases`` of a row, as a tuple, in one C call (``KeyError`` if one is missing)."""
    if len(aliases) == 1:
        alias = aliases[0]
        return lambda row: (row[alias],)
    return itemgetter(*aliases)


def _window(query: AnalyticsQuery, plan: Plan, zone: ZoneInfo) -> tuple[date, date]:
    """First and last local day a query covers: its own time range, else the period's. A
    range ends at a local midnight, or inside its last day when it is a slice of one."""
    time_range = query.time_range
    start = time_range.start if time_range and time_range.start else plan.period.start
    end = time_range.end if time_range and time_range.end else plan.period.end
    return start.astimezone(zone).date(), (end - _INSTANT).astimezone(zone).date()


_INSTANT = timedelta(microseconds=1)


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


def _hashable(value: object) -> object:
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
