"""The emulator's DuckDB engine: writing generated calls, loading records, answering queries.

SQL lives here and in ``query_sql`` (which compiles the analytics queries), nowhere
else, as CTE pipelines. Values always travel as bound parameters; the only identifiers
spliced into SQL come from allow-lists (``COLUMNS``, ``GROUP_BY_COLUMNS``,
``_STEP_TRUNC`` in ``query_sql``), never from a request.
Money is ``DECIMAL`` from file to response: it is read with ``fetchall`` as text, never
through a pandas frame, which would make it float64.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from vapi_emulator.fields import CALL_FIELDS, CallField
from vapi_emulator.generate import (
    CUSTOMER_TIERS,
    ENDED_REASONS,
    STATUSES,
    TYPES,
    VARIABLE_COST_CENTERS,
    ZERO_ASSISTANT_ID,
    MonthCalls,
)
from vapi_emulator.org import DemoOrg
from vapi_emulator.query_sql import (
    MONEY_SCALE,
    CompiledQuery,
    compile_query,
    json_renderable,
    python_escapes,
)
from vapi_emulator.records import MalformedRecordError, read_json_records
from vapi_emulator.resolve import ResolvedQuery
from vapi_emulator.store import OpenedStore, StoreOptions, close_store, fill_store, open_store
from vapi_emulator.timezones import offset_segments

OutputFormat = Literal["parquet", "jsonl"]


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory database whose session zone is UTC, so zone-less timestamps mean UTC.

    The calls live in ``store``, an in-memory database with compression on: a checkpoint
    dictionary- and bit-packs them to about a quarter of their plain size, at no
    measurable cost to the scans the queries make.
    """
    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("ATTACH ':memory:' AS store (COMPRESS)")
    return connection


# ---------------------------------------------------------------------------------------
# Writing generated calls as Vapi Call records
# ---------------------------------------------------------------------------------------

_WRITE_MACROS = {
    "parquet": """
        CREATE OR REPLACE TEMP MACRO money(micro) AS
            CAST(CAST(micro AS DECIMAL(18, 0)) * 0.000001 AS DECIMAL(18, 6));
        CREATE OR REPLACE TEMP MACRO instant(ms) AS
            CASE WHEN ms >= 0 THEN make_timestamptz(ms * 1000) END;
    """,
    "jsonl": r"""
        CREATE OR REPLACE TEMP MACRO money(micro) AS
            json(regexp_replace(
                CAST(CAST(CAST(micro AS DECIMAL(18, 0)) * 0.000001 AS DECIMAL(18, 6)) AS VARCHAR),
                '\.?0+$', ''));
        CREATE OR REPLACE TEMP MACRO instant(ms) AS
            CASE WHEN ms >= 0 THEN strftime(make_timestamp(ms * 1000), '%Y-%m-%dT%H:%M:%S.%gZ') END;
    """,
}

_CALL_RECORDS = """
WITH coded AS (
    SELECT
        *,
        lower(format('{:016x}{:016x}', id_high, id_low)) AS id_hex,
        CASE WHEN cost_center_code >= 0 THEN $cost_centers[cost_center_code + 1] END
            AS cost_center,
        CASE WHEN tier_code >= 0 THEN $tiers[tier_code + 1] END AS tier,
        transport_micro + stt_micro + llm_micro + tts_micro + vapi_micro
            + summary_micro + structured_data_micro + success_evaluation_micro
            + voicemail_detection_micro + knowledge_base_micro AS total_micro,
        round((ended_ms - started_ms) / 60000, 4) AS minutes
    FROM generated_calls
),

variables AS (
    SELECT
        *,
        CASE
            WHEN cost_center IS NOT NULL AND tier IS NOT NULL
                THEN json_object('costCenter', cost_center, 'customerTier', tier)
            WHEN cost_center IS NOT NULL THEN json_object('costCenter', cost_center)
            WHEN tier IS NOT NULL THEN json_object('customerTier', tier)
        END AS variable_values
    FROM coded
)

SELECT
    concat_ws('-', id_hex[1:8], id_hex[9:12], id_hex[13:16], id_hex[17:20], id_hex[21:32]) AS id,
    $org_id AS orgId,
    $types[type_code + 1] AS type,
    $statuses[status_code + 1] AS status,
    CASE WHEN reason_code >= 0 THEN $reasons[reason_code + 1] END AS endedReason,
    CASE
        WHEN assistant_code >= 0 THEN $assistants[assistant_code + 1]
        WHEN assistant_code = -1 THEN $zero_assistant
    END AS assistantId,
    CASE WHEN variable_values IS NOT NULL THEN {'variableValues': variable_values} END
        AS assistantOverrides,
    instant(created_ms) AS createdAt,
    instant(updated_ms) AS updatedAt,
    instant(started_ms) AS startedAt,
    instant(ended_ms) AS endedAt,
    CASE WHEN has_cost THEN money(total_micro) END AS cost,
    CASE WHEN has_cost THEN {
        'transport': money(transport_micro),
        'stt': money(stt_micro),
        'llm': money(llm_micro),
        'tts': money(tts_micro),
        'vapi': money(vapi_micro),
        'total': money(total_micro),
        'llmPromptTokens': prompt_tokens,
        'llmCompletionTokens': completion_tokens,
        'llmCachedPromptTokens': cached_prompt_tokens,
        'ttsCharacters': tts_characters,
        'analysisCostBreakdown': {
            'summary': money(summary_micro),
            'structuredData': money(structured_data_micro),
            'successEvaluation': money(success_evaluation_micro)
        },
        'voicemailDetectionCost': money(voicemail_detection_micro),
        'knowledgeBaseCost': money(knowledge_base_micro)
    } END AS costBreakdown,
    CASE WHEN has_cost THEN {
        'successEvaluation': CASE success_code WHEN 1 THEN 'true' WHEN 0 THEN 'false' END
    } END AS analysis,
    CASE WHEN has_cost THEN to_json(list_filter([
        cost_item(transport_micro, json_object(
            'type', 'transport', 'provider', 'twilio', 'minutes', minutes)),
        cost_item(stt_micro, json_object(
            'type', 'transcriber', 'transcriber', json_object('provider', 'deepgram'),
            'minutes', minutes)),
        cost_item(llm_micro, json_object(
            'type', 'model', 'model', json_object('provider', 'openai', 'model', 'gpt-4o'),
            'promptTokens', prompt_tokens, 'completionTokens', completion_tokens)),
        cost_item(tts_micro, json_object(
            'type', 'voice', 'voice', json_object('provider', '11labs'),
            'characters', tts_characters)),
        cost_item(vapi_micro, json_object(
            'type', 'vapi', 'subType', 'normal', 'minutes', minutes)),
        cost_item(voicemail_detection_micro, json_object(
            'type', 'voicemail-detection', 'model', json_object('provider', 'openai'),
            'provider', 'openai', 'promptTextTokens', 0, 'promptAudioTokens', 0,
            'completionTextTokens', 0, 'completionAudioTokens', 0)),
        cost_item(summary_micro, analysis_item('summary')),
        cost_item(structured_data_micro, analysis_item('structuredData')),
        cost_item(success_evaluation_micro, analysis_item('successEvaluation')),
        cost_item(knowledge_base_micro, json_object(
            'type', 'knowledge-base', 'model', json_object('provider', 'openai'),
            'promptTokens', 0, 'completionTokens', 0))
    ], lambda item: item IS NOT NULL)) END AS costs
FROM variables
"""

_COST_ITEM_MACROS = r"""
    CREATE OR REPLACE TEMP MACRO cost_item(micro, item) AS
        CASE WHEN micro > 0 THEN json_merge_patch(item, json_object('cost', json(regexp_replace(
            CAST(CAST(CAST(micro AS DECIMAL(18, 0)) * 0.000001 AS DECIMAL(18, 6)) AS VARCHAR),
            '\.?0+$', '')))) END;
    CREATE OR REPLACE TEMP MACRO analysis_item(kind) AS json_object(
        'type', 'analysis', 'analysisType', kind, 'model', json_object('provider', 'openai'),
        'promptTokens', 0, 'completionTokens', 0);
"""

_COPY_OPTIONS = {
    "parquet": "FORMAT parquet, COMPRESSION zstd",
    "jsonl": "FORMAT json",
}


def write_calls(calls: MonthCalls, org: DemoOrg, out: Path, output_format: OutputFormat) -> None:
    """Write ``calls`` as Vapi ``Call`` records: JSON Lines, or Parquet with the same nesting.

    In Parquet, timestamps are ``TIMESTAMP WITH TIME ZONE``, money ``DECIMAL(18,6)`` and
    ``assistantOverrides.variableValues`` a JSON string; JSON Lines carries ISO-8601
    strings with milliseconds and exact decimal numbers, as ``GET /call`` does. ``costs``
    itemises ``costBreakdown`` as Vapi's ``costs[]`` does (one item per non-zero part, the
    analysis by ``analysisType``; Parquet holds it as a JSON string). Rows keep
    their creation order, so the same input writes the same bytes.
    """
    connection = connect()
    try:
        connection.execute(_WRITE_MACROS[output_format])
        connection.execute(_COST_ITEM_MACROS)
        connection.register("generated_calls", pd.DataFrame(calls.columns))
        parameters = {
            "org_id": org.org_id,
            "assistants": [assistant.id for assistant in org.assistants],
            "zero_assistant": ZERO_ASSISTANT_ID,
            "types": list(TYPES),
            "statuses": list(STATUSES),
            "reasons": list(ENDED_REASONS),
            "cost_centers": list(VARIABLE_COST_CENTERS),
            "tiers": list(CUSTOMER_TIERS),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        connection.execute(
            f"COPY ({_CALL_RECORDS}) TO '{_quote_path(out)}' ({_COPY_OPTIONS[output_format]})",
            parameters,
        )
    finally:
        connection.close()


def _first_row(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: dict[str, object] | None = None
) -> tuple[Any, ...] | None:
    """The first row or None; the whole result is fetched so the connection is free again."""
    rows = connection.execute(sql, parameters).fetchall()
    return rows[0] if rows else None


def _quote_path(path: Path) -> str:
    """A file path as the body of a SQL string literal (COPY TO takes no bound parameter)."""
    return str(path).replace("'", "''")


# ---------------------------------------------------------------------------------------
# Loading Call records into the ``calls`` table
# ---------------------------------------------------------------------------------------

MONEY_TYPE = f"DECIMAL(38, {MONEY_SCALE})"
"""Exact for any amount with up to 12 decimal places; more places are rounded half away from zero."""

_PROBLEMS = {
    "text": "is missing",
    "object": "is not a JSON object",
    "variables": "is not a JSON object",
    "instant": "is not an ISO-8601 timestamp",
    "money": "is not a decimal number",
    "integer": "is not an integer",
}


def _stored_name(field: CallField) -> str:
    """Instants are stored as epoch microseconds: ``created_at`` → ``created_us``."""
    return field.column.removesuffix("_at") + "_us" if field.kind == "instant" else field.column


def _typed(field: CallField, raw: str, raw_type: str) -> str:
    """SQL turning the staged value ``raw`` (of DuckDB type ``raw_type``) into its stored type."""
    if field.kind == "text":
        return raw if raw_type == "VARCHAR" else f"CAST({raw} AS VARCHAR)"
    if field.kind in ("object", "variables"):
        if raw_type.startswith(("STRUCT", "MAP")):
            return f"CAST(to_json({raw}) AS JSON)"
        return f"TRY_CAST({raw} AS JSON)"
    if field.kind == "instant":
        return f"epoch_us(TRY_CAST({raw} AS TIMESTAMPTZ))"
    if field.kind == "money":
        return f"TRY_CAST({raw} AS {MONEY_TYPE})"
    return f"TRY_CAST(TRY_CAST({raw} AS DECIMAL(38, 6)) AS BIGINT)"


def _bad(field: CallField, raw: str, typed: str) -> str:
    """SQL that is true when the staged value cannot be loaded."""
    if field.required:
        condition = f"{typed} IS NULL" + (f" OR {typed} = ''" if field.kind == "text" else "")
    else:
        condition = f"{raw} IS NOT NULL AND {typed} IS NULL"
    if field.kind in ("object", "variables"):
        condition += f" OR ({typed} IS NOT NULL AND json_type({typed}) <> 'OBJECT')"
    if field.kind == "integer":
        condition += f" OR {typed} <> TRY_CAST({raw} AS DECIMAL(38, 6))"
    return condition


_STORED_COLUMNS = ", ".join(_stored_name(f) for f in CALL_FIELDS if not f.served_only)
_DETAIL_COLUMNS = ", ".join(_stored_name(f) for f in CALL_FIELDS if f.served_only)

_CREATE_DETAILS = """
CREATE OR REPLACE TABLE store.call_details AS
SELECT created_us, id, {columns}
FROM ({typed_sources})
ORDER BY created_us, id
"""

_CREATE_CALLS = """
CREATE OR REPLACE TABLE store.calls AS
SELECT
    {columns},
    CASE WHEN started_us IS NOT NULL AND ended_us IS NOT NULL
        THEN CAST(CAST(ended_us - started_us AS DECIMAL(18, 0)) * 0.000001 AS DECIMAL(18, 6))
    END AS duration
FROM ({typed_sources})
ORDER BY created_us, id
"""

_FIRST_DUPLICATE = """
SELECT id FROM calls GROUP BY id HAVING count(*) > 1 ORDER BY min(created_us), id LIMIT 1
"""


@dataclass(frozen=True)
class Source:
    """One input file staged as relation ``name``; ``where(line)`` renders a record's position."""

    path: Path
    name: str

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix.lower() == ".parquet"

    def where(self, line: int) -> str:
        return f"{self.path}: row {line}" if self.is_parquet else f"{self.path}:{line}"


def load_calls(connection: duckdb.DuckDBPyConnection, paths: Sequence[Path]) -> int:
    """Create the ``calls`` table from Parquet, JSON or JSON Lines files of Vapi Calls.

    Every value is checked before anything is served; the first problem raises
    ``MalformedRecordError`` naming the file, the line (or Parquet row) and the field.
    Call ids must be unique across all files, since an export loaded twice would double
    every cost. Parquet is read in place (a view) and typed once, straight into the
    sorted, compressed table; JSON is staged as text first. Returns the number of calls.
    """
    sources = [Source(Path(path), f"source_{index}") for index, path in enumerate(paths)]
    if not sources:
        raise MalformedRecordError("no call records given (pass --calls PATH at least once)")
    for source in sources:
        if not source.path.is_file():
            raise MalformedRecordError(f"{source.path}: no such file (give --calls PATH)")
    typed_sources = []
    for source in sources:
        if source.is_parquet:
            _stage_parquet(connection, source)
        else:
            _stage_json(connection, source)
        typed = _typed_columns(connection, source)
        _check(connection, source, typed)
        typed_sources.append(
            "SELECT "
            + ", ".join(
                f"{sql} AS {_stored_name(f)}" for f, sql in zip(CALL_FIELDS, typed, strict=True)
            )
            + f" FROM {source.name} AS s"
        )
    connection.execute(
        _CREATE_CALLS.format(
            columns=_STORED_COLUMNS, typed_sources="\nUNION ALL\n".join(typed_sources)
        )
    )
    connection.execute(
        _CREATE_DETAILS.format(
            columns=_DETAIL_COLUMNS, typed_sources="\nUNION ALL\n".join(typed_sources)
        )
    )
    connection.execute("CHECKPOINT store")
    connection.execute("CREATE OR REPLACE VIEW calls AS SELECT * FROM store.calls")
    duplicate = _first_row(connection, _FIRST_DUPLICATE)
    if duplicate:
        raise MalformedRecordError(_duplicate_message(connection, sources, duplicate[0]))
    for source in sources:
        kind = "VIEW" if source.is_parquet else "TABLE"
        connection.execute(f"DROP {kind} {source.name}")
    count = _first_row(connection, "SELECT count(*) FROM calls")
    return int(count[0]) if count else 0


def _duplicate_message(
    connection: duckdb.DuckDBPyConnection, sources: list[Source], call_id: str
) -> str:
    places = []
    for source in sources:
        rows = connection.execute(
            f"SELECT _line FROM {source.name} WHERE CAST(id AS VARCHAR) = $id ORDER BY _line",
            {"id": call_id},
        ).fetchall()
        places += [source.where(int(line)) for (line,) in rows]
    first, second = places[0], places[1]
    return f"{second}: id {call_id!r} was already loaded from {first}; load each call once (overlapping exports?)"


def _stage_parquet(connection: duckdb.DuckDBPyConnection, source: Source) -> None:
    """A view over the file with ``_line`` and one column per field; absent fields are NULL.

    A field is found nested (``"costBreakdown"."llm"``, as ``generate`` writes it) or
    flattened under its dotted name (``"costBreakdown.llm"``).
    """
    file = f"read_parquet('{_quote_path(source.path)}', file_row_number = true)"
    try:
        connection.execute(f"DESCRIBE SELECT file_row_number FROM {file}")
    except duckdb.Error as error:
        raise MalformedRecordError(
            f"{source.path}: not a readable Parquet file ({error})"
        ) from None
    selected = ["file_row_number + 1 AS _line"]
    for field in CALL_FIELDS:
        found = _parquet_path(connection, file, field)
        if found is None and field.required:
            raise MalformedRecordError(
                f"{source.path}: no column {field.dotted!r}; every Vapi Call has one"
            )
        selected.append(f"{found or 'NULL'} AS {field.column}")
    connection.execute(
        f"CREATE OR REPLACE TEMP VIEW {source.name} AS SELECT {', '.join(selected)} FROM {file}"
    )


def _stage_json(connection: duckdb.DuckDBPyConnection, source: Source) -> None:
    """A temp table of the file's records as text (``records.read_json_records``)."""
    columns = ", ".join(f"{f.column} VARCHAR" for f in CALL_FIELDS)
    connection.execute(f"CREATE OR REPLACE TEMP TABLE {source.name} (_line BIGINT, {columns})")
    for frame in read_json_records(source.path):
        connection.register("json_chunk", frame)
        connection.execute(f"INSERT INTO {source.name} SELECT * FROM json_chunk")
        connection.unregister("json_chunk")


def _parquet_path(connection: duckdb.DuckDBPyConnection, file: str, field: CallField) -> str | None:
    candidates = (
        ".".join(_quote_identifier(part) for part in field.path),
        _quote_identifier(field.dotted),
    )
    for candidate in candidates:
        try:
            connection.execute(f"DESCRIBE SELECT {candidate} FROM {file}")
        except duckdb.Error:
            continue
        return candidate
    return None


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed_columns(connection: duckdb.DuckDBPyConnection, source: Source) -> list[str]:
    """Per field, the SQL typing its staged column (which depends on the column's type)."""
    raw_types = dict(
        connection.execute(
            f"SELECT column_name, column_type FROM (DESCRIBE {source.name})"
        ).fetchall()
    )
    return [_typed(f, f"s.{f.column}", raw_types[f.column]) for f in CALL_FIELDS]


def _check(connection: duckdb.DuckDBPyConnection, source: Source, typed: list[str]) -> None:
    """Raise ``MalformedRecordError`` for the first record of ``source`` that cannot load."""
    flags = ", ".join(
        f"CASE WHEN {_bad(f, f's.{f.column}', sql)} THEN '{f.column}' END"
        for f, sql in zip(CALL_FIELDS, typed, strict=True)
    )
    problem = _first_row(
        connection,
        f"SELECT _line, bad FROM (SELECT s._line, concat_ws(',', {flags}) AS bad "
        f"FROM {source.name} AS s) WHERE bad <> '' ORDER BY _line LIMIT 1",
    )
    if not problem:
        return
    line, columns = problem
    field = next(f for f in CALL_FIELDS if f.column == columns.split(",")[0])
    (raw,) = _first_row(
        connection,
        f"SELECT CAST({field.column} AS VARCHAR) FROM {source.name} WHERE _line = $line",
        {"line": line},
    ) or (None,)
    what = "is missing" if raw is None or raw == "" else f"{raw!r} {_PROBLEMS[field.kind]}"
    raise MalformedRecordError(f"{source.where(line)}: {field.dotted} {what}")


# ---------------------------------------------------------------------------------------
# Answering analytics queries
# ---------------------------------------------------------------------------------------

MAX_RESULT_ROWS = 100_000
"""A query with more rows than this is refused: ask for a coarser step or a shorter range."""


class ResultTooLarge(ValueError):
    """A query whose answer would exceed ``MAX_RESULT_ROWS`` rows."""


@dataclass(frozen=True)
class QueryRows:
    """The raw rows of one query, as ``compile_query`` laid them out, or its rows as JSON
    text already (``json_rows``: per bucket, the bucket and its rows' objects joined by
    commas, written by SQL as UTF-8 bytes; see ``query_sql.json_rows_sql``)."""

    query: ResolvedQuery
    rows: list[tuple[Any, ...]]
    json_rows: list[tuple[int | None, bytes]] | None = None


class Engine:
    """The loaded calls and the queries over them: one DuckDB database, a cursor per request.

    A batch's queries run one after the other on the request's cursor; DuckDB already
    spreads each query over the cores. Running them side by side on separate cursors was
    measured slower on two CPUs (436 vs 270 ms for the benchmark batch).
    """

    def __init__(self, paths: Sequence[Path], store: StoreOptions | None = None) -> None:
        self._paths = tuple(Path(path) for path in paths)
        self._store_options = store or StoreOptions()
        self._connection = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        self._loaded = False
        self.calls = 0
        self.store: OpenedStore | None = None
        self._created_range: tuple[int, int] | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        """The call files served, in the order given."""
        return self._paths

    def load(self) -> int:
        """Load the files once (later calls return at once); raises ``MalformedRecordError``."""
        with self._lock:
            if not self._loaded:
                self.store = open_store(self._connection, self._store_options, self._paths)
                self.calls = fill_store(
                    self._connection, self.store, lambda: load_calls(self._connection, self._paths)
                )
                bounds = _first_row(
                    self._connection, "SELECT min(created_us), max(created_us) FROM calls"
                )
                if bounds and bounds[0] is not None:
                    self._created_range = (int(bounds[0]), int(bounds[1]))
                self._loaded = True
        return self.calls

    def close(self) -> None:
        close_store(self._connection, self.store)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the loaded database, for running compiled SQL directly (benchmarks)."""
        return self._connection.cursor()

    def compile(self, query: ResolvedQuery, *, as_json: bool = False) -> CompiledQuery | None:
        """The SQL for ``query``, or None when no loaded call can fall in its range;
        ``as_json`` (for a ``json_renderable`` query): its rows as JSON text."""
        if self._created_range is None:
            return None
        low = max(query.start_us, self._created_range[0])
        high = min(query.end_us, self._created_range[1] + 1)
        if low >= high:
            return None
        segments = offset_segments(query.timezone, low, high)
        return compile_query(query, segments, MAX_RESULT_ROWS + 1, as_json=as_json)

    def run(
        self, queries: Sequence[ResolvedQuery], *, numbers_as_strings: bool = False
    ) -> list[QueryRows]:
        """Answer a batch on a cursor of its own, so concurrent requests do not share state.

        A query SQL can write as JSON comes back as text (``QueryRows.json_rows``); with
        ``numbers_as_strings`` every query comes back as rows for ``render`` to write.
        """
        if not self._loaded:
            raise RuntimeError("Engine.load() must run before queries are answered")
        cursor = self._connection.cursor()
        try:
            results = []
            for query in queries:
                as_json = not numbers_as_strings and json_renderable(query)
                compiled = self.compile(query, as_json=as_json)
                fetched = (
                    cursor.execute(compiled.sql, compiled.parameters).fetchall() if compiled else []
                )
                count = sum(row[1] for row in fetched) if as_json else len(fetched)
                if count > MAX_RESULT_ROWS:
                    raise ResultTooLarge(
                        f"query {query.name!r} would return more than {MAX_RESULT_ROWS:,} rows; "
                        "use a coarser timeRange.step or a shorter range"
                    )
                if as_json:
                    json_rows = [
                        (row[0], python_escapes(row[2].decode()).encode() if row[3] else row[2])
                        for row in fetched
                    ]
                    results.append(QueryRows(query, [], json_rows))
                else:
                    results.append(QueryRows(query, fetched))
            return results
        finally:
            cursor.close()
