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

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import chain, compress, repeat
from operator import is_, itemgetter, methodcaller
from typing import Any, Literal, NamedTuple, cast
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
    (assistant, variable value) pairs come back on every row.

    An attribution changes with the day only on a *cut*: the start, or the day after the
    end, of one of the assistant's mapping rows, or the day after the ``valid_to`` of a cost
    center the variable value names (of any cost center, under mapping rules) — the only
    ways :func:`attribute` reads the day. Between two cuts every day gets the same answer,
    so it is computed once per (assistant, variable value, stretch between cuts), and a
    pair with no cut inside a query's days is attributed without looking at the day at all
    (:func:`attributions`).
    """

    def __init__(
        self, config: ChargebackConfig, mapping: AssistantMapping, rules: RuleBook | None = None
    ) -> None:
        self._ends = {center.id: center.valid_to for center in config.cost_centers}
        self._mapping = mapping
        self._rules = rules
        self.seen: dict[tuple[object, object, date], Attribution] = {}
        """Attributions found so far by (assistant, variable value, day)."""
        self._center_cuts = {
            center: (cut,)
            for center, cut in ((c, _day_after(e)) for c, e in self._ends.items())
            if cut is not None
        }
        self._all_center_cuts = frozenset(cut for (cut,) in self._center_cuts.values())
        self._mapping_cuts: dict[str, set[date]] = {}
        for entry in mapping.entries:
            cuts = self._mapping_cuts.setdefault(entry.assistant_id, set())
            cuts.update(
                cut for cut in (entry.valid_from, _day_after(entry.valid_to)) if cut is not None
            )
        self._cuts: dict[tuple[object, object], tuple[date, ...]] = {}
        self._assistant_cuts: dict[object, tuple[date, ...]] = {}
        self._stretches: dict[tuple[object, object, int], Attribution] = {}
        self._horizons: dict[tuple[date, date], _HorizonMemo] = {}

    def __call__(self, assistant_id: object, variable_value: object, day: date) -> Attribution:
        key = (assistant_id, variable_value, day)
        try:
            found = self.seen.get(key)
        except TypeError:
            key = (_hashable(assistant_id), _hashable(variable_value), day)
            found = self.seen.get(key)
            if found is None:
                found = self.seen[key] = attribute(
                    self._ends, self._mapping, assistant_id, variable_value, day, self._rules
                )
            return found
        if found is None:
            found = self.seen[key] = self._in_stretch(assistant_id, variable_value, day)
        return found

    def over(self, horizon: tuple[date, date]) -> _HorizonMemo:
        """The memo of (assistant, variable value) → attribution on every day of ``horizon``
        (first and last day), for the pairs entered by :meth:`fill`."""
        memo = self._horizons.get(horizon)
        if memo is None:
            memo = self._horizons[horizon] = _HorizonMemo({}, set())
        return memo

    def fill(self, horizon: tuple[date, date], pairs: Iterable[tuple[object, object]]) -> None:
        """Enter ``pairs`` (hashable) into the memo of :meth:`over`: each pair's attribution
        on the horizon's first day when no cut of the pair falls after it within the horizon
        (every day is then in the first day's stretch); else the pair is one that *varies*."""
        first, last = horizon
        memo = self.over(horizon)
        constant = memo.constant
        for pair in pairs:
            assistant_id, variable_value = pair
            cuts = self._cuts_of(assistant_id, variable_value)
            after = bisect_right(cuts, first)
            if after < len(cuts) and cuts[after] <= last:
                memo.varies.add(pair)
                constant[pair] = None
            else:
                constant[pair] = self._stretch(assistant_id, variable_value, after, first)

    def _in_stretch(self, assistant_id: object, variable_value: object, day: date) -> Attribution:
        """The attribution shared by every day of ``day``'s stretch between two cuts
        (hashable arguments only)."""
        stretch = bisect_right(self._cuts_of(assistant_id, variable_value), day)
        return self._stretch(assistant_id, variable_value, stretch, day)

    def _stretch(
        self, assistant_id: object, variable_value: object, stretch: int, day: date
    ) -> Attribution:
        """The attribution of the pair's ``stretch`` (the number of its cuts on or before
        ``day``, a day inside it)."""
        key = (assistant_id, variable_value, stretch)
        found = self._stretches.get(key)
        if found is None:
            found = self._stretches[key] = attribute(
                self._ends, self._mapping, assistant_id, variable_value, day, self._rules
            )
        return found

    def _cuts_of(self, assistant_id: object, variable_value: object) -> tuple[date, ...]:
        """The first days on which :func:`attribute` may answer otherwise than the day
        before, for this pair (hashable): a start, or the day after an end, of one of the
        assistant's mapping rows (looked up as :func:`attribute` does), and the day after the
        ``valid_to`` of the cost center the variable value names — of every cost center
        under mapping rules, which may name any. A cut more than needed only costs a call.
        The assistant's own cuts are sorted once per assistant: most pairs add none."""
        pair = (assistant_id, variable_value)
        cuts = self._cuts.get(pair)
        if cuts is not None:
            return cuts
        own = self._assistant_cuts.get(assistant_id)
        if own is None:
            found = (
                self._mapping_cuts.get(canonical_assistant_id(assistant_id), ())
                if isinstance(assistant_id, str)
                else ()
            )
            own = self._assistant_cuts[assistant_id] = tuple(sorted(found))
        if self._rules is not None and self._rules.rules:
            extra: Iterable[date] = self._all_center_cuts
        elif isinstance(variable_value, str):
            extra = self._center_cuts.get(variable_value, ())
        else:
            extra = ()
        cuts = self._cuts[pair] = tuple(sorted({*own, *extra})) if extra else own
        return cuts


class _HorizonMemo(NamedTuple):
    constant: dict[tuple[object, object], Attribution | None]
    """Pair → its attribution on every day of the horizon; none for a pair that varies."""
    varies: set[tuple[object, object]]


def _day_after(day: date | None) -> date | None:
    """The day after ``day``; none after none or the last day there is."""
    return day + timedelta(days=1) if day is not None and day < date.max else None


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


class QueryColumns(NamedTuple):
    """One query's rows and, position for position, what :func:`attributed_rows` yields
    for each: what allocation sums a column at a time, in C, instead of a row at a time."""

    rows: Sequence[Mapping[str, Any]]
    pairs: list[tuple[object, object]]
    """(assistant, variable value) of each row: with its day, what an :class:`Attributor`
    reads."""
    days: list[date]
    attributions: list[Attribution]
    values: list[tuple[Decimal | int, ...]]
    horizon: tuple[date, date]
    """A first and last day between which every row's day lies: the statement month's, or
    wider when the query's window is (what :func:`attributions` is memoised over)."""


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
    """The rows of one compiled query, each with its local day, attribution and measures
    (:func:`attributed_columns`, a row at a time)."""
    columns = attributed_columns(
        config, mapping, plan, results, query_name, measures, attributor=attributor
    )
    yield from map(
        AttributedRow._make,
        zip(columns.days, columns.attributions, columns.rows, columns.values, strict=True),
    )


def attributed_columns(
    config: ChargebackConfig,
    mapping: AssistantMapping,
    plan: Plan,
    results: Mapping[str, AnalyticsQueryResult],
    query_name: str,
    measures: Sequence[str],
    *,
    attributor: Attributor | None = None,
) -> QueryColumns:
    """The rows of one compiled query with their local days, attributions and measures.

    Days and attributions repeat across rows and are computed once each (across queries
    too, when they share an ``attributor``). The columns are read with ``map`` over the
    rows, in C, as long as every row is plainly good — each bucket a text, each measure
    a JSON number; otherwise the query is read again a row at a time, which is the
    reference: it reads anything else value by value and names the first problem, in row
    order. Both give the same columns whenever both succeed.
    """
    result = results.get(query_name)
    if result is None:
        raise AnalyticsResultError(
            f"no result for query {query_name!r}; got {sorted(results)}. Fetch every batch of"
            " the plan before allocating"
        )
    reader = _QueryReader(plan, query_name, measures, result.result)
    attributor = attributor or Attributor(config, mapping)
    return reader.columns(attributor) or reader.row_by_row(attributor)


def attributions(
    attributor: Attributor,
    pairs: Sequence[tuple[object, object]],
    days: Sequence[date],
    horizon: tuple[date, date],
) -> list[Attribution]:
    """``attributor`` applied to each row's (assistant, variable value) of ``pairs`` and day
    of ``days``, every day inside ``horizon``: looked up by pair in C, in one pass when
    every pair is known to the horizon already (as for most queries after the first), each
    pair new to it worked out once (:meth:`Attributor.fill`); only the rows of a pair whose
    attribution changes inside the horizon are attributed by their day."""
    memo = attributor.over(horizon)
    constant = memo.constant
    try:
        found = list(map(constant.get, pairs))
    except TypeError:
        return [attributor(a, v, day) for (a, v), day in zip(pairs, days, strict=True)]
    if not any(map(is_, found, repeat(None))):
        return cast(list[Attribution], found)
    attributor.fill(
        horizon, set(compress(pairs, map(is_, found, repeat(None)))).difference(constant)
    )
    found = list(map(constant.__getitem__, pairs))
    if any(map(is_, found, repeat(None))):
        return [
            attributor(pair[0], pair[1], day) if a is None else a
            for a, pair, day in zip(found, pairs, days, strict=True)
        ]
    return cast(list[Attribution], found)


class _QueryReader:
    """What reading one query's rows needs: its days' window, its measures' keys."""

    def __init__(
        self,
        plan: Plan,
        query_name: str,
        measures: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
    ) -> None:
        self.rows = rows
        self._plan = plan
        self._name = query_name
        self._zone = ZoneInfo(plan.period.timezone)
        query = plan.query(query_name)
        self._step = query.time_range.step if query.time_range else "day"
        self._window = _window(query, plan, self._zone)
        month = _window(query.model_copy(update={"time_range": None}), plan, self._zone)
        self._horizon = (min(self._window[0], month[0]), max(self._window[1], month[1]))
        self._readers = [(measure_alias(m), measure_default_key(m)) for m in measures]
        self._pick = _picker([alias for alias, _ in self._readers])
        self._variable_key = plan.variable_key

    def columns(self, attributor: Attributor) -> QueryColumns | None:
        """The columns, read in C; none when a row needs reading :meth:`row_by_row`."""
        rows = self.rows
        days = self._days()
        values = self._values()
        if days is None or values is None:
            return None
        pairs = list(
            zip(
                map(methodcaller("get", ASSISTANT_KEY), rows),
                map(methodcaller("get", self._variable_key), rows),
                strict=True,
            )
        )
        found = attributions(attributor, pairs, days, self._horizon)
        return QueryColumns(rows, pairs, days, found, values, self._horizon)

    def _days(self) -> list[date] | None:
        """Each row's day: its bucket's, checked once per distinct bucket text (none at a
        bucket that is not a text, or not one of the query's days)."""
        if self._step is None:
            return [self._window[0]] * len(self.rows)
        stamps = list(map(methodcaller("get", DATE_KEY), self.rows))
        known: dict[str, date] = {}
        try:
            distinct = set(stamps)
        except TypeError:
            return None
        for stamp in distinct:
            if not isinstance(stamp, str):
                return None
            try:
                known[stamp] = _row_day(stamp, self._step, self._zone, self._plan, self._window, "")
            except AnalyticsResultError:
                return None
        return list(map(known.__getitem__, stamps))

    def _values(self) -> list[tuple[Decimal | int, ...]] | None:
        """Each row's measures, picked in C when every one is a JSON number, else a row at
        a time as :meth:`row_by_row` reads them (none at a measure it refuses)."""
        try:
            values = list(map(self._pick, self.rows))
            if _EXACT_TYPES.issuperset(map(type, chain.from_iterable(values))):
                return values
        except KeyError:
            pass
        try:
            return [self._row_values(index, row) for index, row in enumerate(self.rows)]
        except AnalyticsResultError:
            return None

    def _row_values(self, index: int, row: Mapping[str, Any]) -> tuple[Decimal | int, ...]:
        try:
            values = self._pick(row)
        except KeyError:
            values = None
        if values is None or not _EXACT_TYPES.issuperset(map(type, values)):
            values = tuple(
                _measure(row, alias, default, self._name, index) for alias, default in self._readers
            )
        return values

    def row_by_row(self, attributor: Attributor) -> QueryColumns:
        """The columns, a row at a time: the reference reader, raising on the first row that
        breaks the plan, in row order, with the row's index."""
        days: list[date] = []
        pairs: list[tuple[object, object]] = []
        found: list[Attribution] = []
        values: list[tuple[Decimal | int, ...]] = []
        known: dict[object, date] = {}
        first = self._window[0]
        for index, row in enumerate(self.rows):
            if self._step is None:
                day = first
            else:
                stamp = row.get(DATE_KEY)
                day_of = known.get(stamp) if isinstance(stamp, str) else None
                if day_of is None:
                    where = f"query {self._name!r} row {index}"
                    day_of = _row_day(
                        stamp, self._step, self._zone, self._plan, self._window, where
                    )
                    known[stamp] = day_of
                day = day_of
            pair = (row.get(ASSISTANT_KEY), row.get(self._variable_key))
            found.append(attributor(pair[0], pair[1], day))
            values.append(self._row_values(index, row))
            days.append(day)
            pairs.append(pair)
        return QueryColumns(self.rows, pairs, days, found, values, self._horizon)


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
