"""The analytics queries as DuckDB SQL: a resolved query compiled into one CTE pipeline.

Values always travel as bound parameters; the only identifiers spliced into SQL come
from the allow-lists in this module (``COLUMNS``, ``GROUP_BY_COLUMNS``, ``_STEP_TRUNC``),
never from a request. ``engine`` runs the SQL; ``render`` reads its rows back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from vapi_emulator.resolve import DATE_KEY, ResolvedQuery

ValueKind = Literal["id", "money", "integer", "seconds", "minutes", "concurrency"]


@dataclass(frozen=True)
class SpecColumn:
    """A spec column: the ``calls`` column it reads (None for concurrency) and its kind."""

    source: str | None
    kind: ValueKind


COLUMNS: dict[str, SpecColumn] = {
    "id": SpecColumn("id", "id"),
    "cost": SpecColumn("cost", "money"),
    "costBreakdown.llm": SpecColumn("llm", "money"),
    "costBreakdown.stt": SpecColumn("stt", "money"),
    "costBreakdown.tts": SpecColumn("tts", "money"),
    "costBreakdown.vapi": SpecColumn("vapi", "money"),
    "costBreakdown.transport": SpecColumn("transport", "money"),
    "costBreakdown.analysisBreakdown.summary": SpecColumn("analysis_summary", "money"),
    "costBreakdown.transcriber": SpecColumn("stt", "money"),
    "costBreakdown.ttsCharacters": SpecColumn("tts_characters", "integer"),
    "costBreakdown.llmPromptTokens": SpecColumn("llm_prompt_tokens", "integer"),
    "costBreakdown.llmCompletionTokens": SpecColumn("llm_completion_tokens", "integer"),
    "costBreakdown.llmCachedPromptTokens": SpecColumn("llm_cached_prompt_tokens", "integer"),
    "duration": SpecColumn("duration", "seconds"),
    "minutesUsed": SpecColumn("duration", "minutes"),
    "concurrency": SpecColumn(None, "concurrency"),
}
"""Every spec column. ``costBreakdown.transcriber`` is the Call's ``costBreakdown.stt`` and
``costBreakdown.analysisBreakdown.summary`` its ``costBreakdown.analysisCostBreakdown.summary``;
``minutesUsed`` aggregates ``duration`` and is divided by 60 afterwards."""

GROUP_BY_COLUMNS: dict[str, str] = {
    "type": "type",
    "assistantId": "assistant_id",
    "endedReason": "ended_reason",
    "analysis.successEvaluation": "success_evaluation",
    "status": "status",
}

_SUB_DAY_US = {"second": 1_000_000, "minute": 60_000_000, "hour": 3_600_000_000}
_STEP_TRUNC = {
    "day": "date_trunc('day', {ts})",
    "week": "date_trunc('week', {ts})",
    "month": "date_trunc('month', {ts})",
    "quarter": "date_trunc('quarter', {ts})",
    "year": "date_trunc('year', {ts})",
    "decade": "date_trunc('decade', {ts})",
    "century": "make_timestamp((year({ts}) - 1) // 100 * 100 + 1, 1, 1, 0, 0, 0)",
    "millennium": "make_timestamp((year({ts}) - 1) // 1000 * 1000 + 1, 1, 1, 0, 0, 0)",
}
"""Local-calendar truncation of a wall-clock TIMESTAMP; weeks start on Monday and
centuries/millennia start in year …01, as in PostgreSQL."""

HISTORY_DEFAULT_STEP = "day"
"""The series step of ``history`` when the query has no step of its own."""

BucketKind = Literal["none", "instant", "wall"]


def bucket_kind(step: str | None) -> BucketKind:
    """How a bucket value comes back from SQL: a UTC instant (sub-day steps) or local wall time."""
    if step is None:
        return "none"
    return "instant" if step in _SUB_DAY_US else "wall"


@dataclass(frozen=True)
class CompiledQuery:
    """SQL and its parameters. Result columns: the group keys, the bucket, then per
    operation one column (two for ``avg``: sum and count), as ``render`` reads them;
    ``as_json``: one row per bucket instead, ``(bucket, rows, JSON text of its rows as
    UTF-8 bytes, whether that text needs python_escapes)`` (:func:`json_rows_sql`)."""

    sql: str
    parameters: dict[str, object]
    as_json: bool = False


BUCKET_MARK = "\x01"
"""Stands for the ``date`` value in a row's JSON text written by SQL; ``render`` puts the
bucket's ISO instant there. JSON text never holds it raw: control characters are escaped."""

_JSON_OPERATIONS = frozenset({"count", "sum", "min", "max"})
_JSON_KINDS = frozenset({"id", "money", "integer", "seconds"})


def json_renderable(query: ResolvedQuery) -> bool:
    """Whether SQL can write this query's rows as the JSON ``render`` would: counts, and
    sums, minimums and maximums of stored values. Averages, minutes (divided by 60 in
    ``Decimal``), histories and concurrency are written by ``render`` from the rows."""
    return all(
        operation.operation in _JSON_OPERATIONS and COLUMNS[operation.column].kind in _JSON_KINDS
        for operation in query.operations
    )


_UPPER_HEX_ESCAPE = re.compile(r"\\\\|\\u00[0-9A-F]{2}")
"""An escaped backslash (kept whole, so the ``u00..`` text after it is never read as an
escape) or a ``\\u00XX`` escape: the two things :func:`python_escapes` can meet."""


def python_escapes(text: str) -> str:
    """JSON text written by DuckDB's ``to_json`` as ``json.dumps`` writes it: the same
    escapes, but the hex digits of ``\\u00XX`` in lower case, as Python writes them.

    DuckDB escapes exactly the characters Python does, the same way, except for that case
    (``\\u001F`` vs ``\\u001f``); only control characters are written so, and rarely, so
    SQL flags the buckets holding one and only those are rewritten here. (Fixing them in
    SQL took a chain of 34 ``replace`` per string key, which cost about 11 ms to plan on
    every query whether or not any string needed it.)
    """
    return _UPPER_HEX_ESCAPE.sub(lambda match: match.group().lower(), text)


def _trimmed_sql(value: str) -> str:
    """A stored value's text (VARCHAR) as ``render.exact`` begins to write it: with a
    point, its trailing zeros dropped, and the point if nothing follows it
    (``rstrip("0").rstrip(".")`` of a text with one point)."""
    return (
        f"CASE WHEN contains({value}, '.') THEN regexp_replace({value}, '\\.?0*$', '')"
        f" ELSE {value} END"
    )


def _json_number_sql(trimmed: str) -> str:
    """``render.exact``'s text of a stored value, given its :func:`_trimmed_sql`, or ``null``."""
    return (
        f"CASE WHEN {trimmed} IS NULL THEN 'null'"
        f" WHEN {trimmed} IN ('-0', '') THEN '0' ELSE {trimmed} END"
    )


def json_rows_sql(
    query: ResolvedQuery, keys: list[str], outputs: list[str], parameters: dict[str, object]
) -> str:
    """The end of an ``as_json`` query over ``grouped``: per bucket, its rows' JSON objects
    joined by commas in key order, each as ``render`` writes one — ``date`` (as
    :data:`BUCKET_MARK`), group keys, variable keys, then the operations' keys.

    Key names travel as bound parameters (aliases and variable keys come from the request).
    Fetching 770k rows as Python tuples and writing them one at a time took more time
    than the SQL that produced them; this way a result arrives as a few strings.
    ``json_values`` converts each value once (``to_json``, trimming); ``json_rows`` writes
    and joins them (``concat`` of all parts at once: chained ``||`` copied each row
    several times). The last column says whether a bucket's text needs
    :func:`python_escapes`.
    """
    names = [*query.group_by, *query.variable_keys, *(op.key for op in query.operations)]
    converted = [f"grouped.{key} AS {key}" for key in keys]
    converted += [f"CAST(to_json(grouped.{key}) AS VARCHAR) AS v{i}" for i, key in enumerate(keys)]
    strings = [f"v{i}" for i in range(len(keys))]
    written = [f"coalesce({value}, 'null')" for value in strings]
    for index, (operation, output) in enumerate(zip(query.operations, outputs, strict=True)):
        value = f"v{len(keys) + index}"
        if operation.operation == "count":
            converted.append(f"CAST({output} AS VARCHAR) AS {value}")
            written.append(value)
        elif COLUMNS[operation.column].kind == "id":
            converted.append(f"CAST(to_json({output}) AS VARCHAR) AS {value}")
            written.append(f"coalesce({value}, 'null')")
            strings.append(value)
        else:
            converted.append(f"{_trimmed_sql(output)} AS {value}")
            written.append(_json_number_sql(value))
    upper_hex = " OR ".join(f"contains({value}, '\\u00')" for value in strings) or "false"
    parts = ["'{'"]
    if query.step:
        parts.append(f"'{json.dumps(DATE_KEY)}:', chr(1)")
    for index, text in enumerate(written):
        parameters[f"json_key_{index}"] = (
            ("," if index or query.step else "")
            + json.dumps(names[index], ensure_ascii=False)
            + ":"
        )
        parts += [f"$json_key_{index}", text]
    parts.append("'}'")
    order = ", ".join(f"{key} ASC NULLS LAST" for key in keys)
    return f"""json_values AS (
    SELECT grouped.b AS b, {", ".join(converted)}
    FROM grouped
    LIMIT $row_limit
),

json_rows AS (
    SELECT b, {"".join(f"{key}, " for key in keys)}concat({", ".join(parts)}) AS row_json,
        {upper_hex} AS upper_hex
    FROM json_values
)

SELECT b, count(*), encode(string_agg(row_json, ','{" ORDER BY " + order if order else ""})),
    coalesce(bool_or(upper_hex), false)
FROM json_rows
GROUP BY b
ORDER BY b ASC NULLS LAST"""


_BEFORE_ANY_CALL = -(2**62)
"""The floor of the first segment: no bucket there is ever raised."""


def _bucket_sql(step: str, segments: Sequence[tuple[int, int]]) -> str:
    """Bucket start of a row of ``located``; sub-day steps as UTC instants, longer as wall time.

    A sub-day bucket is the wall-clock unit in the offset in force at the call. Where an
    offset change is not a whole number of units (Lord Howe's 30-minute DST against an
    hour step), the first unit after the change would begin before it and overlap the
    last unit before it; such a bucket starts at the change instead (``floor_us``), so
    buckets never overlap and each call lands in exactly one.
    """
    if step in _SUB_DAY_US:
        unit = _SUB_DAY_US[step]
        bucket = f"(local_us - (((local_us % {unit}) + {unit}) % {unit}) - offset_us)"
        return f"greatest({bucket}, floor_us)" if _unaligned(segments, unit) else bucket
    truncated = _STEP_TRUNC[step].format(ts="make_timestamp(local_us)")
    return f"epoch_us({truncated})"


def _unaligned(segments: Sequence[tuple[int, int]], unit: int) -> bool:
    """Whether some offset change falls inside a wall-clock unit of the offset it starts."""
    return any((change + offset) % unit for change, offset in segments[1:])


def _floor_sql(segments: Sequence[tuple[int, int]], parameters: dict[str, object]) -> str:
    """The start of the offset segment of ``created_us`` (bound ``change_i`` of ``_offset_sql``)."""
    parameters["floor_0"] = _BEFORE_ANY_CALL
    if len(segments) == 1:
        return "$floor_0"
    branches = ["WHEN created_us < $change_1 THEN $floor_0"]
    branches += [
        f"WHEN created_us < $change_{index + 1} THEN $change_{index}"
        for index in range(1, len(segments) - 1)
    ]
    return f"CASE {' '.join(branches)} ELSE $change_{len(segments) - 1} END"


def _offset_sql(segments: Sequence[tuple[int, int]], parameters: dict[str, object]) -> str:
    """The UTC offset (µs) of ``created_us`` as a CASE over the segments, values bound."""
    parameters["offset_0"] = segments[0][1]
    if len(segments) == 1:
        return "$offset_0"
    branches = []
    for index in range(1, len(segments)):
        parameters[f"change_{index}"] = segments[index][0]
        parameters[f"offset_{index}"] = segments[index][1]
        branches.append(f"WHEN created_us < $change_{index} THEN $offset_{index - 1}")
    return f"CASE {' '.join(branches)} ELSE $offset_{len(segments) - 1} END"


def json_pointer(key: str) -> str:
    """RFC 6901 pointer to a top-level key, so any key text is safe as a bound parameter."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _value(column: SpecColumn) -> str:
    if column.source is None:
        raise ValueError("concurrency has no stored column; it is computed by _concurrency_ctes")
    return column.source


MONEY_SCALE = 12
"""Decimal places of stored money (``engine.MONEY_TYPE``)."""
NARROW_TYPES: dict[ValueKind, str] = {
    "money": f"DECIMAL(18, {MONEY_SCALE})",
    "seconds": "DECIMAL(18, 6)",
    "minutes": "DECIMAL(18, 6)",
    "integer": "BIGINT",
}
"""Per kind, the 64-bit type of the same scale as the kind's aggregates (a sum of
``DECIMAL(38, 12)`` or ``DECIMAL(18, 6)`` is ``DECIMAL(38, s)``, of ``BIGINT`` a ``HUGEINT``)."""


def _text_sql(value: str, column: SpecColumn) -> str:
    """``CAST(value AS VARCHAR)``, written from 64 bits when the value fits: the same
    digits (the scale is kept), but DuckDB writes a 128-bit number's text about three
    times slower, and a response writes millions of them."""
    narrow = NARROW_TYPES.get(column.kind)
    if narrow is None:
        return f"CAST({value} AS VARCHAR)"
    return f"coalesce(CAST(TRY_CAST({value} AS {narrow}) AS VARCHAR), CAST({value} AS VARCHAR))"


def _row_aggregate(operation: str, column: SpecColumn) -> list[str]:
    """SQL aggregates for one non-concurrency operation over ``scoped`` rows."""
    value = _value(column)
    if operation == "count":
        return [f"count({value})"]
    if operation == "sum":
        return [_text_sql(f"coalesce(sum({value}), 0)", column)]
    if operation == "avg":
        return [_text_sql(f"sum({value})", column), f"count({value})"]
    return [_text_sql(f"{operation}({value})", column)]


def _step_value(column: SpecColumn) -> str:
    """The per-step value a ``history`` series carries for ``column``."""
    if column.kind == "id":
        return f"count({_value(column)})"
    return f"coalesce(sum({_value(column)}), 0)"


_ZERO_LENGTH_SEEN = "CASE WHEN zero_length > 0 THEN 1 ELSE 0 END"
_ALL_ZERO_LENGTH = "CASE WHEN zero_length = starts THEN 1 ELSE 0 END"


def _concurrency_aggregate(operation: str) -> list[tuple[str, str | None]]:
    """(SQL over the start instants of ``_concurrency_ctes``, value for a group without any).

    At one start instant ``starts`` calls begin, all with concurrency ``v`` except the
    ``zero_length`` ones, which count themselves on top (``v + 1``).
    """
    total = "sum(starts * v + zero_length)"
    if operation == "count":
        return [("sum(starts)", "0")]
    if operation == "sum":
        return [(total, "0")]
    if operation == "avg":
        return [(f"CAST({total} AS VARCHAR)", None), ("sum(starts)", "0")]
    if operation == "max":
        return [(f"max(v + {_ZERO_LENGTH_SEEN})", None)]
    return [(f"min(v + {_ALL_ZERO_LENGTH})", None)]


def _concurrency_ctes(name: str, partition: list[str]) -> str:
    """Concurrency at every call start: the calls of the partition active at that instant.

    A sweep over start (+1) and end (−1) events, ordered by partition, time, and ends
    before starts at equal times: after the last start at instant ``t`` the running sum
    is ``#(startedAt <= t) − #(endedAt <= t)`` of the partition — the calls with
    ``startedAt <= t < endedAt``, the concurrency ``v`` of every call starting at ``t``.
    One running sum over all partitions suffices (each call adds +1 and −1 to its own
    partition, so every partition starts from 0) and is much cheaper in DuckDB than one
    per partition. A zero-length call is not active by the rule and counts itself on top.
    Calls without both instants take no part. One row per (partition, start instant).
    """
    columns = ", ".join(partition)
    valid = "started_us IS NOT NULL AND ended_us IS NOT NULL AND ended_us >= started_us"
    return f"""{name}_events AS (
    SELECT {columns}, started_us AS t, 1 AS delta,
        CASE WHEN ended_us = started_us THEN 1 ELSE 0 END AS zero_length
    FROM scoped WHERE {valid}
    UNION ALL
    SELECT {columns}, ended_us AS t, -1 AS delta, 0 AS zero_length
    FROM scoped WHERE {valid}
),

{name}_running AS (
    SELECT {columns}, t, delta, zero_length,
        sum(delta) OVER (
            ORDER BY {columns}, t, delta ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS running
    FROM {name}_events
),

{name} AS (
    SELECT {columns}, t, max(running) AS v, count(*) AS starts, sum(zero_length) AS zero_length
    FROM {name}_running
    WHERE delta = 1
    GROUP BY {columns}, t
)"""


def _match(left: str, right: str, columns: list[str]) -> str:
    return " AND ".join(f"{left}.{c} IS NOT DISTINCT FROM {right}.{c}" for c in columns) or "TRUE"


def compile_query(
    query: ResolvedQuery,
    segments: Sequence[tuple[int, int]],
    row_limit: int,
    *,
    as_json: bool = False,
) -> CompiledQuery:
    """Build the CTE pipeline answering ``query``.

    ``scoped`` holds the calls of the range with their group keys ``k0…``, row bucket
    ``b`` and history series bucket ``s``; ``grouped`` aggregates per (keys, b);
    concurrency and each ``history`` get CTEs of their own, left-joined on (keys, b).
    ``as_json`` (for a :func:`json_renderable` query) ends in :func:`json_rows_sql`.
    """
    parameters: dict[str, object] = {
        "start_us": query.start_us,
        "end_us": query.end_us,
        "row_limit": row_limit,
    }
    key_sql = [GROUP_BY_COLUMNS[name] for name in query.group_by]
    for index, key in enumerate(query.variable_keys):
        parameters[f"variable_{index}"] = json_pointer(key)
        key_sql.append(f"json_extract_string(variable_values, $variable_{index})")
    keys = [f"k{index}" for index in range(len(key_sql))]
    offset = _offset_sql(segments, parameters)
    row_bucket = _bucket_sql(query.step, segments) if query.step else "NULL::BIGINT"
    series_bucket = _bucket_sql(query.step or HISTORY_DEFAULT_STEP, segments)
    floor = (
        f", {_floor_sql(segments, parameters)} AS floor_us"
        if "floor_us" in (row_bucket + series_bucket)
        else ""
    )
    key_columns = "".join(f"{sql} AS {key}, " for sql, key in zip(key_sql, keys, strict=True))
    row_keys = [*keys, "b"]

    ctes = [
        f"""located AS (
    SELECT *, {offset} AS offset_us, created_us + {offset} AS local_us{floor}
    FROM calls
    WHERE created_us >= $start_us AND created_us < $end_us
)""",
        f"""scoped AS (
    SELECT *, {key_columns}{row_bucket} AS b, {series_bucket} AS s
    FROM located
)""",
    ]
    grouped_columns: list[str] = []
    concurrency_columns: list[str] = []
    outputs: list[str] = []
    joins: list[str] = []
    for index, operation in enumerate(query.operations):
        column = COLUMNS[operation.column]
        if operation.operation == "history":
            history = f"history_{index}"
            group = ", ".join([*row_keys, "s"])
            if column.kind == "concurrency":
                starts = f"{history}_concurrency"
                bucket = "s" if query.step is None else "b"
                ctes.append(_concurrency_ctes(starts, [*keys, bucket]))
                bucket_of_row = "NULL::BIGINT" if query.step is None else "b"
                steps = f"""SELECT {", ".join([*keys, f"{bucket_of_row} AS b", f"{bucket} AS s"])},
        max(v + {_ZERO_LENGTH_SEEN}) AS v
    FROM {starts}
    GROUP BY {", ".join([*keys, bucket])}"""
            else:
                steps = f"""SELECT {group}, {_step_value(column)} AS v
    FROM scoped
    GROUP BY {group}"""
            ctes.append(
                f"""{history}_steps AS (
    {steps}
),

{history} AS (
    SELECT {", ".join(row_keys)}, list({{'d': s, 'v': CAST(v AS VARCHAR)}} ORDER BY s) AS series
    FROM {history}_steps
    GROUP BY {", ".join(row_keys)}
)"""
            )
            joins.append(f"LEFT JOIN {history} ON {_match('grouped', history, row_keys)}")
            outputs.append(f"coalesce({history}.series, [])")
            continue
        if column.kind == "concurrency":
            aggregates = _concurrency_aggregate(operation.operation)
            for slot, (sql, when_empty) in enumerate(aggregates):
                name = f"c{index}_{slot}"
                concurrency_columns.append(f"{sql} AS {name}")
                output = f"concurrency.{name}"
                outputs.append(f"coalesce({output}, {when_empty})" if when_empty else output)
            continue
        expressions = _row_aggregate(operation.operation, column)
        names = [f"a{index}_{n}" for n in range(len(expressions))]
        grouped_columns += [
            f"{sql} AS {name}" for sql, name in zip(expressions, names, strict=True)
        ]
        outputs += [f"grouped.{name}" for name in names]

    ctes.append(
        f"""grouped AS (
    SELECT {", ".join([*row_keys, "count(*) AS calls", *grouped_columns])}
    FROM scoped
    GROUP BY {", ".join(row_keys)}
)"""
    )
    if concurrency_columns:
        ctes.append(_concurrency_ctes("concurrency_starts", row_keys))
        ctes.append(
            f"""concurrency AS (
    SELECT {", ".join([*row_keys, *concurrency_columns])}
    FROM concurrency_starts
    GROUP BY {", ".join(row_keys)}
)"""
        )
        joins.insert(0, f"LEFT JOIN concurrency ON {_match('grouped', 'concurrency', row_keys)}")
    if as_json:
        if not json_renderable(query):
            raise ValueError(f"query {query.name!r} cannot be written as JSON in SQL")
        ctes.append(json_rows_sql(query, keys, outputs, parameters))
        return CompiledQuery("WITH\n" + ",\n\n".join(ctes), parameters, as_json=True)
    order = ", ".join(f"grouped.{column} ASC NULLS LAST" for column in ["b", *keys])
    selected = ", ".join([*(f"grouped.{column}" for column in row_keys), *outputs])
    sql = (
        "WITH\n"
        + ",\n\n".join(ctes)
        + f"\n\nSELECT {selected}\nFROM grouped\n"
        + "\n".join(joins)
        + f"\nORDER BY {order}\nLIMIT $row_limit"
    )
    return CompiledQuery(sql, parameters)
