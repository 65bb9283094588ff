"""From a validated request to fully resolved queries: defaults filled, result keys named.

Pydantic (``AnalyticsQueryDTO``) has already checked the shape. What is left are the rules
that span fields — a range that ends before it starts, an aggregate that makes no
sense for its column, two aggregates that would land on the same key of a result row —
and the defaults the spec states: ``end`` = now, ``start`` = ``end`` − 7 days,
``timezone`` = UTC. Every problem becomes one message, as the real service reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from vapi_chargeback.analytics.models import AnalyticsQuery, AnalyticsQueryDTO
from vapi_emulator.timezones import iso_instant

DEFAULT_TIMEZONE = "UTC"
DEFAULT_RANGE = timedelta(days=7)
DATE_KEY = "date"
NON_NUMERIC_COLUMNS = frozenset({"id"})
NUMERIC_ONLY_OPERATIONS = frozenset({"sum", "avg"})

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
MIN_US = (datetime.min - _EPOCH) // _MICROSECOND
MAX_US = (datetime.max - _EPOCH) // _MICROSECOND


class QueryProblems(ValueError):
    """Requests that pass the schema but cannot be answered; one message per problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class ResolvedOperation:
    operation: str
    column: str
    key: str


@dataclass(frozen=True)
class ResolvedQuery:
    """One query with every default applied; instants as UTC epoch microseconds."""

    name: str
    table: str
    group_by: tuple[str, ...]
    variable_keys: tuple[str, ...]
    step: str | None
    timezone: str
    start_us: int
    end_us: int
    operations: tuple[ResolvedOperation, ...]

    def echo_time_range(self) -> dict[str, str]:
        """The effective ``timeRange`` the response carries."""
        echoed = {"step": self.step} if self.step else {}
        return {
            **echoed,
            "start": iso_instant(self.start_us),
            "end": iso_instant(self.end_us),
            "timezone": self.timezone,
        }


def resolve(dto: AnalyticsQueryDTO, now_us: int) -> list[ResolvedQuery]:
    """Resolve every query of the batch, or raise ``QueryProblems`` listing all problems."""
    problems: list[str] = []
    resolved = [
        _resolve_one(query, f"queries[{i}]", now_us, problems)
        for i, query in enumerate(dto.queries)
    ]
    if problems:
        raise QueryProblems(problems)
    return [query for query in resolved if query is not None]


def epoch_us(moment: datetime) -> int:
    """An aware datetime as UTC epoch microseconds, without overflowing at year 1 or 9999."""
    offset = moment.utcoffset() or timedelta(0)
    return (moment.replace(tzinfo=None) - _EPOCH) // _MICROSECOND - offset // _MICROSECOND


def _resolve_one(
    query: AnalyticsQuery, where: str, now_us: int, problems: list[str]
) -> ResolvedQuery | None:
    count_before = len(problems)
    time_range = query.time_range
    step = time_range.step if time_range else None
    timezone = (time_range.timezone if time_range else None) or DEFAULT_TIMEZONE
    end_us = _instant(
        time_range.end if time_range else None, now_us, f"{where}.timeRange.end", problems
    )
    default_start = end_us - DEFAULT_RANGE // _MICROSECOND if end_us is not None else None
    start_us = _instant(
        time_range.start if time_range else None,
        default_start,
        f"{where}.timeRange.start",
        problems,
    )
    if start_us is not None and end_us is not None and start_us > end_us:
        problems.append(
            f"{where}.timeRange: start {iso_instant(start_us)} is after end {iso_instant(end_us)}"
        )
    group_by: tuple[str, ...] = tuple(dict.fromkeys(query.group_by or ()))
    variable_keys = tuple(dict.fromkeys(item.key for item in query.group_by_variable_value or ()))
    taken: dict[str, str] = {name: f"groupBy {name!r}" for name in group_by}
    if step:
        taken[DATE_KEY] = "the bucket date"
    for index, key in enumerate(variable_keys):
        if key in taken:
            problems.append(
                f"{where}.groupByVariableValue[{index}].key: {key!r} collides with {taken[key]} "
                "in the result rows"
            )
        taken[key] = f"groupByVariableValue {key!r}"
    operations = _operations(query, where, taken, problems)
    if len(problems) > count_before or start_us is None or end_us is None:
        return None
    return ResolvedQuery(
        name=query.name,
        table=query.table,
        group_by=group_by,
        variable_keys=variable_keys,
        step=step,
        timezone=timezone,
        start_us=start_us,
        end_us=end_us,
        operations=operations,
    )


def _instant(
    given: datetime | None, default_us: int | None, where: str, problems: list[str]
) -> int | None:
    """The instant in epoch µs, cut to whole milliseconds like a JavaScript ``Date``: the
    service parses ``start``/``end`` into one, so ``…00.0005Z`` means ``…00.000Z``."""
    value = epoch_us(given) if given is not None else default_us
    if value is None:
        return None
    value -= value % 1000
    if not MIN_US <= value <= MAX_US:
        told = given.isoformat() if given is not None else "the default (end − 7 days)"
        problems.append(
            f"{where}: {told} is outside 0001-01-01T00:00:00Z … 9999-12-31T23:59:59.999999Z in UTC"
        )
        return None
    return value


def _operations(
    query: AnalyticsQuery, where: str, taken: dict[str, str], problems: list[str]
) -> tuple[ResolvedOperation, ...]:
    """Resolved operations in request order; an exact repeat (same key, same meaning) is dropped."""
    resolved: dict[str, ResolvedOperation] = {}
    for index, item in enumerate(query.operations):
        here = f"{where}.operations[{index}]"
        if item.operation in NUMERIC_ONLY_OPERATIONS and item.column in NON_NUMERIC_COLUMNS:
            problems.append(
                f"{here}: {item.operation!r} of {item.column!r} is undefined (call ids are not "
                "numbers); use 'count', 'min', 'max' or 'history'"
            )
            continue
        operation = ResolvedOperation(item.operation, item.column, item.result_key)
        if operation.key in taken:
            problems.append(
                f"{here}: result key {operation.key!r} collides with {taken[operation.key]}; "
                "set a different alias"
            )
            continue
        existing = resolved.get(operation.key)
        if existing is not None and existing != operation:
            problems.append(
                f"{here}: result key {operation.key!r} is already used by "
                f"{existing.operation} of {existing.column}; set a different alias"
            )
            continue
        resolved[operation.key] = operation
    return tuple(resolved.values())
