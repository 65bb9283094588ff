"""Reading Vapi ``Call`` records from JSON (an array, as ``GET /call`` returns) or JSON Lines.

The reader only checks shape — an object per record, the fields it needs with the right
JSON types — and hands every value on as text, with the line it came from. Parsing
timestamps and decimals happens in SQL (``engine.load_calls``), vectorised; numbers keep
their exact text because they are never parsed as binary floats (``RawNumber``), also
inside objects and arrays: ``{"n":1.10}`` is stored as ``{"n":1.10}``, never ``{"n":"1.10"}``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from vapi_emulator.fields import CALL_FIELDS, CallField

CHUNK_RECORDS = 100_000
LINE_COLUMN = "_line"


class RawNumber(str):
    """A JSON number as written in the record (``1.10``, ``1e5``), so its text survives."""


_DECODER = json.JSONDecoder(parse_float=RawNumber, parse_int=RawNumber)
_WHITESPACE = " \t\r\n"


class MalformedRecordError(ValueError):
    """A record that cannot be loaded; the message names the file, the line and the field."""


def read_json_records(path: Path, chunk_records: int = CHUNK_RECORDS) -> Iterator[pd.DataFrame]:
    """Staging frames of ``path``: ``_line`` plus one text column per field of ``CALL_FIELDS``.

    A file whose first character is ``[`` is a JSON array, anything else JSON Lines
    (blank lines skipped).
    """
    rows: list[list[Any]] = []
    for line, record in _records(path):
        rows.append([line, *_extract(path, line, record)])
        if len(rows) >= chunk_records:
            yield _frame(rows)
            rows = []
    if rows:
        yield _frame(rows)


def _frame(rows: list[list[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=[LINE_COLUMN, *(f.column for f in CALL_FIELDS)], dtype=object
    )
    frame[LINE_COLUMN] = frame[LINE_COLUMN].astype("int64")
    return frame


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as handle:
        head = handle.read(4096).removeprefix(codecs.BOM_UTF8)
        if head.lstrip(_WHITESPACE.encode()).startswith(b"["):
            handle.seek(0)
            yield from _array_records(path, _decode(path, handle.read()))
            return
        handle.seek(0)
        for line, raw in enumerate(handle, start=1):
            text = _decode(path, raw, line)
            if not text.strip(_WHITESPACE):
                continue
            try:
                yield line, _DECODER.decode(text)
            except json.JSONDecodeError as error:
                raise MalformedRecordError(
                    f"{path}:{line}: not valid JSON ({error.msg} at column {error.colno}); "
                    "each line of a JSON Lines file must be one Vapi Call object"
                ) from None


def _decode(path: Path, raw: bytes, line: int | None = None) -> str:
    """UTF-8 text; a byte-order mark at the start of the file is dropped."""
    try:
        return raw.decode("utf-8-sig" if line in (None, 1) else "utf-8")
    except UnicodeDecodeError as error:
        at = line if line is not None else 1 + raw.count(b"\n", 0, error.start)
        raise MalformedRecordError(f"{path}:{at}: not UTF-8 text ({error.reason})") from None


def _array_records(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """Elements of a top-level JSON array, each with the line it starts on."""
    position = _skip_whitespace(text, text.index("[") + 1)
    line = 1 + text.count("\n", 0, position)
    if position < len(text) and text[position] == "]":
        return
    while True:
        try:
            record, end = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise MalformedRecordError(
                f"{path}:{error.lineno}: not valid JSON ({error.msg} at column {error.colno})"
            ) from None
        yield line, record
        after = _skip_whitespace(text, end)
        if after >= len(text) or text[after] not in ",]":
            at = line + text.count("\n", position, after)
            raise MalformedRecordError(
                f"{path}:{at}: expected ',' or ']' after a record of the JSON array"
            )
        if text[after] == "]":
            if text[after + 1 :].strip(_WHITESPACE):
                raise MalformedRecordError(f"{path}: unexpected text after the closing ']'")
            return
        next_position = _skip_whitespace(text, after + 1)
        line += text.count("\n", position, next_position)
        position = next_position


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position


_EXPECTED = {
    "text": "a string",
    "object": "an object",
    "variables": "an object",
    "instant": "an ISO-8601 timestamp string",
    "money": "a number",
    "integer": "an integer",
}


def _extract(path: Path, line: int, record: Any) -> list[str | None]:
    if not isinstance(record, dict):
        raise MalformedRecordError(
            f"{path}:{line}: expected a JSON object (a Vapi Call), got {_json_type(record)}"
        )
    return [_value(path, line, record, field) for field in CALL_FIELDS]


def _value(path: Path, line: int, record: dict[str, Any], field: CallField) -> str | None:
    value: Any = record
    for depth, key in enumerate(field.path):
        if value is None:
            break
        if not isinstance(value, dict):
            parent = ".".join(field.path[:depth])
            raise MalformedRecordError(
                f"{path}:{line}: {parent}: expected an object, got {_json_type(value)}"
            )
        value = value.get(key)
    if value is None or (field.required and value == ""):
        if field.required:
            raise MalformedRecordError(
                f"{path}:{line}: {field.dotted} is missing; every Vapi Call has one"
            )
        return None
    if isinstance(value, str):
        if field.kind in ("object", "variables"):
            raise _wrong_type(path, line, field, value)
        return str(value)
    if isinstance(value, bool) and field.kind == "text":
        return "true" if value else "false"
    if isinstance(value, dict) and field.kind == "object":
        return json_text(value)
    if isinstance(value, dict) and field.kind == "variables":
        return json.dumps(
            {key: _group_text(item) for key, item in value.items()},
            separators=(",", ":"),
            ensure_ascii=False,
        )
    raise _wrong_type(path, line, field, value)


def json_text(value: Any) -> str:
    """Compact JSON of a decoded value, every number exactly as it was written."""
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                json.dumps(key, ensure_ascii=False) + ":" + json_text(item)
                for key, item in value.items()
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _group_text(value: Any) -> str | None:
    """A variable value as a group key: a string as itself, anything else as its JSON text."""
    if value is None:
        return None
    if isinstance(value, str) and not isinstance(value, RawNumber):
        return value
    return json_text(value)


def _wrong_type(path: Path, line: int, field: CallField, value: Any) -> MalformedRecordError:
    return MalformedRecordError(
        f"{path}:{line}: {field.dotted}: expected {_EXPECTED[field.kind]}, got {_json_type(value)}"
    )


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return f"{value!r}"
