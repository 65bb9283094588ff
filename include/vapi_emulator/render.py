"""Turning raw query rows into the response body, with money as exact JSON numbers.

SQL hands decimals over as text (``'12.340000000000'``). They are written into the JSON
as that same decimal — trailing zeros dropped — never through a float, so a sum of
0.1 and 0.2 reads ``0.3``. With ``numbers_as_strings`` every aggregate is a JSON string
instead, as Node serialises Postgres numerics and bigints in the real service.

Only the few values that need arithmetic are finalised here, per result row: ``avg``
(sum ÷ count) and ``minutesUsed`` (seconds ÷ 60), rounded half-even to
``DERIVED_PLACES`` decimal places.

Rows are written straight to JSON text, one small writer per result column: a batch
can carry thousands of rows, and building dicts to serialise them afterwards costs more
than the SQL that produced them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from vapi_emulator.engine import QueryRows
from vapi_emulator.query_sql import (
    BUCKET_MARK,
    COLUMNS,
    HISTORY_DEFAULT_STEP,
    SpecColumn,
    bucket_kind,
)
from vapi_emulator.resolve import DATE_KEY, ResolvedOperation, ResolvedQuery
from vapi_emulator.timezones import iso_instant, local_wall_to_instant_us

DERIVED_PLACES = 10
_QUANTUM = Decimal(1).scaleb(-DERIVED_PLACES)
_CONTEXT = Context(prec=80, rounding=ROUND_HALF_EVEN)
_SECONDS_PER_MINUTE = Decimal(60)

Writer = Callable[[tuple[Any, ...]], str]


def exact(text: str) -> str:
    """A decimal's text without trailing fractional zeros: ``'12.340000'`` → ``12.34``."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _derived(value: Decimal) -> str:
    return exact(format(value.quantize(_QUANTUM, context=_CONTEXT), "f"))


def _minutes(seconds: Any) -> str:
    return _derived(_CONTEXT.divide(Decimal(str(seconds)), _SECONDS_PER_MINUTE))


def _average(column: SpecColumn, total: Any, count: int) -> str | None:
    if not count or total is None:
        return None
    mean = _CONTEXT.divide(Decimal(str(total)), Decimal(count))
    if column.kind == "minutes":
        mean = _CONTEXT.divide(mean, _SECONDS_PER_MINUTE)
    return _derived(mean)


class _Text:
    """JSON text of strings and numbers for one response, memoised (keys and dates repeat)."""

    def __init__(self, numbers_as_strings: bool) -> None:
        self._quote_numbers = numbers_as_strings
        self._strings: dict[str, str] = {}

    def string(self, value: str | None) -> str:
        if value is None:
            return "null"
        text = self._strings.get(value)
        if text is None:
            text = self._strings[value] = json.dumps(value, ensure_ascii=False)
        return text

    def number(self, text: str | None) -> str:
        if text is None:
            return "null"
        return f'"{text}"' if self._quote_numbers else text


class _Buckets:
    """Bucket values of one query as quoted ISO instants, memoised (few distinct buckets)."""

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
            rendered = self._seen[value] = f'"{iso_instant(instant)}"'
        return rendered


def _scalar(column: SpecColumn, text: _Text) -> Callable[[Any], str]:
    """One SQL value of ``column`` (sum, min, max or a history point) as JSON text."""
    if column.kind == "minutes":
        return lambda value: "null" if value is None else text.number(_minutes(value))
    return lambda value: "null" if value is None else text.number(exact(str(value)))


def _count(text: _Text) -> Callable[[Any], str]:
    return lambda value: text.number(str(value))


def _operation_writer(
    operation: ResolvedOperation, at: int, text: _Text, series: _Buckets
) -> Writer:
    """Writes the operation whose slots start at column ``at`` (1 slot, or 2 for avg).

    ``min``/``max`` of ``id`` are ids (strings); a ``history`` point of ``id`` is a count.
    """
    column = COLUMNS[operation.column]
    kind = operation.operation
    if kind == "avg":
        return lambda row: text.number(_average(column, row[at], int(row[at + 1])))
    if kind == "count":
        return lambda row: text.number(str(row[at]))
    if kind == "history":
        point = _count(text) if column.kind == "id" else _scalar(column, text)
        return lambda row: (
            "["
            + ",".join(f'{{"date":{series(p["d"])},"value":{point(p["v"])}}}' for p in row[at])
            + "]"
        )
    if column.kind == "id":
        return lambda row: text.string(row[at])
    scalar = _scalar(column, text)
    return lambda row: scalar(row[at])


def _key_writer(index: int, text: _Text) -> Writer:
    return lambda row: text.string(row[index])


def _writers(query: ResolvedQuery, text: _Text) -> list[tuple[str, Writer]]:
    """(``"key":`` prefix, writer) per result column: date, group keys, variable keys, aggregates."""
    rows_bucket = _Buckets(query, query.step)
    series_bucket = _Buckets(query, query.step or HISTORY_DEFAULT_STEP)
    key_names = [*query.group_by, *query.variable_keys]
    bucket_at = len(key_names)
    writers: list[tuple[str, Writer]] = []
    if query.step:
        writers.append((DATE_KEY, lambda row: rows_bucket(row[bucket_at])))
    for index, name in enumerate(key_names):
        writers.append((name, _key_writer(index, text)))
    at = bucket_at + 1
    for operation in query.operations:
        writers.append((operation.key, _operation_writer(operation, at, text, series_bucket)))
        at += 2 if operation.operation == "avg" else 1
    return [(json.dumps(name, ensure_ascii=False) + ":", writer) for name, writer in writers]


def _rows_json(result: QueryRows, numbers_as_strings: bool) -> str:
    """The ``result`` array of one query written from its fetched rows."""
    writers = _writers(result.query, _Text(numbers_as_strings))
    rows = (
        "{" + ",".join(prefix + write(row) for prefix, write in writers) + "}"
        for row in result.rows
    )
    return "[" + ",".join(rows) + "]"


def _result_parts(result: QueryRows, numbers_as_strings: bool) -> list[bytes]:
    """The ``result`` array of one query as UTF-8 pieces, in order.

    Rows SQL wrote come as one text per bucket; only the bucket's date is put in (one
    copy of the text), and the pieces are joined once, with the whole body.
    """
    if result.json_rows is None:
        return [_rows_json(result, numbers_as_strings).encode("utf-8")]
    if numbers_as_strings:
        raise ValueError("rows written as JSON by SQL carry numbers as numbers")
    bucket = _Buckets(result.query, result.query.step)
    parts = [b"["]
    for index, (value, text) in enumerate(result.json_rows):
        if index:
            parts.append(b",")
        parts.append(text if value is None else text.replace(_MARK, bucket(value).encode()))
    parts.append(b"]")
    return parts


_MARK = BUCKET_MARK.encode()


def response_body(results: list[QueryRows], numbers_as_strings: bool = False) -> bytes:
    """The JSON array the API answers: per query its name, effective timeRange and rows.

    Built as a list of byte strings joined once: a body of the 5M-call bench is ~16 MB,
    and each concatenation or ``encode`` of the whole would copy it again.
    """
    parts = [b"["]
    for index, result in enumerate(results):
        head = (
            ("," if index else "")
            + '{"name":'
            + json.dumps(result.query.name, ensure_ascii=False)
            + ',"timeRange":'
            + json.dumps(result.query.echo_time_range(), separators=(",", ":"))
            + ',"result":'
        )
        parts.append(head.encode("utf-8"))
        parts += _result_parts(result, numbers_as_strings)
        parts.append(b"}")
    parts.append(b"]")
    return b"".join(parts)
