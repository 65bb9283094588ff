"""Turning raw query rows into the response body, with money as exact JSON numbers.

SQL hands decimals over as text (``'12.340000000000'``). They are written into the JSON
as that same decimal — trailing zeros dropped — never through a float, so a sum of
0.1 and 0.2 reads ``0.3``. With ``numbers_as_strings`` every aggregate is a JSON string
instead, as Node serialises Postgres numerics and bigints in the real service.

Only the few values that need arithmetic are finalised here, per result row: ``avg``
(sum ÷ count) and ``minutesUsed`` (seconds ÷ 60), rounded half-even to
``DERIVED_PLACES`` decimal places.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from vapi_emulator.engine import COLUMNS, HISTORY_DEFAULT_STEP, QueryRows, SpecColumn, bucket_kind
from vapi_emulator.resolve import DATE_KEY, ResolvedOperation, ResolvedQuery
from vapi_emulator.timezones import iso_instant, local_wall_to_instant_us

DERIVED_PLACES = 10
_QUANTUM = Decimal(1).scaleb(-DERIVED_PLACES)
_CONTEXT = Context(prec=80, rounding=ROUND_HALF_EVEN)
_SECONDS_PER_MINUTE = Decimal(60)


class Number(str):
    """The exact text of a JSON number; written bare, or quoted with ``numbers_as_strings``."""


def exact(text: str) -> Number:
    """A decimal's text without trailing fractional zeros: ``'12.340000'`` → ``12.34``."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Number("0" if text in ("-0", "") else text)


def _derived(value: Decimal) -> Number:
    return exact(format(value.quantize(_QUANTUM, context=_CONTEXT), "f"))


def _minutes(seconds: str) -> Number:
    return _derived(_CONTEXT.divide(Decimal(seconds), _SECONDS_PER_MINUTE))


def _scalar(column: SpecColumn) -> Callable[[Any], Any]:
    """How one SQL value of ``column`` (sum, min, max or a history point) becomes a JSON value."""

    def convert(value: Any) -> Any:
        if value is None:
            return None
        if column.kind == "id" and isinstance(value, str):
            return value
        if column.kind == "minutes":
            return _minutes(str(value))
        return exact(str(value))

    return convert


def _average(column: SpecColumn, total: str | None, count: int) -> Number | None:
    if not count or total is None:
        return None
    mean = _CONTEXT.divide(Decimal(total), Decimal(count))
    if column.kind == "minutes":
        mean = _CONTEXT.divide(mean, _SECONDS_PER_MINUTE)
    return _derived(mean)


class _Buckets:
    """Renders bucket values of one query as ISO instants, memoised (few distinct buckets)."""

    def __init__(self, query: ResolvedQuery, step: str | None) -> None:
        self._kind = bucket_kind(step)
        self._zone = query.timezone
        self._seen: dict[int, str] = {}

    def __call__(self, value: int) -> str:
        rendered = self._seen.get(value)
        if rendered is None:
            instant = (
                value if self._kind == "instant" else local_wall_to_instant_us(self._zone, value)
            )
            rendered = self._seen[value] = iso_instant(instant)
        return rendered


def _operation_reader(
    operation: ResolvedOperation, series: _Buckets
) -> Callable[[tuple[Any, ...]], Any]:
    """Reads one operation's slots (1, or 2 for avg) into its JSON value.

    A ``history`` point of ``id`` is a count of calls, so a number, unlike ``min``/``max`` of id.
    """
    column = COLUMNS[operation.column]
    scalar = _scalar(column)
    if operation.operation == "avg":
        return lambda slots: _average(column, slots[0], int(slots[1]))
    if operation.operation == "count":
        return lambda slots: Number(str(slots[0]))
    if operation.operation == "history":
        point = (lambda value: exact(str(value))) if column.kind == "id" else scalar
        return lambda slots: [{"date": series(p["d"]), "value": point(p["v"])} for p in slots[0]]
    return lambda slots: scalar(slots[0])


def result_rows(result: QueryRows) -> list[dict[str, Any]]:
    """The ``result`` list of one query: date, group keys, variable keys, then aggregates."""
    query = result.query
    rows_bucket = _Buckets(query, query.step)
    series_bucket = _Buckets(query, query.step or HISTORY_DEFAULT_STEP)
    key_names = [*query.group_by, *query.variable_keys]
    readers = [_operation_reader(operation, series_bucket) for operation in query.operations]
    widths = [2 if operation.operation == "avg" else 1 for operation in query.operations]
    rendered = []
    for row in result.rows:
        item: dict[str, Any] = {}
        if query.step:
            item[DATE_KEY] = rows_bucket(row[len(key_names)])
        item.update(zip(key_names, row[: len(key_names)], strict=True))
        position = len(key_names) + 1
        for operation, reader, width in zip(query.operations, readers, widths, strict=True):
            item[operation.key] = reader(row[position : position + width])
            position += width
        rendered.append(item)
    return rendered


def response_body(results: list[QueryRows], numbers_as_strings: bool = False) -> bytes:
    """The JSON array the API answers, as UTF-8 bytes."""
    body = [
        {
            "name": result.query.name,
            "timeRange": result.query.echo_time_range(),
            "result": result_rows(result),
        }
        for result in results
    ]
    return encode(body, numbers_as_strings).encode("utf-8")


def encode(value: Any, numbers_as_strings: bool = False) -> str:
    """Compact JSON in which ``Number`` values keep their exact text."""
    if value is None:
        return "null"
    if isinstance(value, Number):
        return json.dumps(str(value)) if numbers_as_strings else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        members = (
            f"{json.dumps(key, ensure_ascii=False)}:{encode(item, numbers_as_strings)}"
            for key, item in value.items()
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(item, numbers_as_strings) for item in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
