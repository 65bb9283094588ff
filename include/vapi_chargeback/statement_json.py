"""A lossless JSON form of :class:`Statement`, so tasks on different workers can hand it on.

JSON has no decimal type: money travels as strings and comes back as ``Decimal``. Breakdown
cells mix text, numbers and dates, so amounts and dates are tagged (``{"d": "12.34"}``,
``{"date": "2026-10-05"}``) — otherwise a cost or a day would come back as text and land in
a workbook as a string.

The owners' breakdowns travel in one of two forms. A statement whose breakdowns are stored
in the run's work folder (``breakdown_files.StoredBreakdowns``: what every pipeline step
hands on) carries only their index, under ``breakdown_files``: cost center → file and
sha256; :func:`loads` then needs that work folder, and reads no table until one is looked
up. Any other statement carries them inline, under ``breakdowns``, as statements did
before the index existed: statement JSON written by an older version (a published draft
awaiting approval, a run picked up mid-way) reads back as it always did.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
from pydantic import TypeAdapter

from vapi_chargeback.breakdown_files import (
    DATE_TAG,
    DECIMAL_TAG,
    StoragePath,
    StoredBreakdowns,
    decode_tables,
    encode_tables,
    tag_cell,
)
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.statement import Statement

_ADAPTER = TypeAdapter(Statement)


class _Envelope(msgspec.Struct):
    """The two keys of a statement's JSON that are not fields of :class:`Statement`."""

    breakdown_files: dict[str, Any] | None = None
    breakdowns: dict[str, Any] | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
"""Decodes those two keys alone, passing over the rest of the bytes (in C)."""
FILES_KEY = "breakdown_files"
"""Where a statement with stored breakdowns keeps their index (in place of ``breakdowns``)."""


class StatementJsonError(PermanentError, ValueError):
    """A statement JSON whose breakdowns are stored, read without the work folder holding them."""


def dumps(statement: Statement) -> bytes:
    """Deterministic bytes: the same statement always gives the same JSON.

    Keys keep their order (no ``sort_keys``): the order of ``components_usd`` is the order of
    the statement's columns, and a dict carries it. Stored breakdowns are written as their
    index, after the statement's fields, which pydantic writes in one pass (compact JSON,
    UTF-8); inline ones as :func:`encode_tables` lays them out.
    """
    breakdowns = statement.breakdowns
    if not isinstance(breakdowns, StoredBreakdowns):
        data = _ADAPTER.dump_python(replace(statement, breakdowns={}), mode="json")
        data["breakdowns"] = {center: encode_tables(items) for center, items in breakdowns.items()}
        return json.dumps(data, separators=(",", ":"), default=tag_cell).encode()
    # Every pipeline step hands on a statement of this kind: dump_json writes the 5M-call
    # month's 41 MB in 0.2 s, dump_python and json.dumps took 1.1-1.5 s, three times a run.
    fields = _ADAPTER.dump_json(replace(statement, breakdowns={}))
    index = {
        center: None if entry is None else {"file": entry[0], "sha256": entry[1]}
        for center, entry in breakdowns.files.items()
    }
    files = json.dumps({FILES_KEY: index}, separators=(",", ":")).encode()
    return fields[:-1] + b"," + files[1:]


def loads(raw: bytes, work: StoragePath | None = None) -> Statement:
    """The statement of :func:`dumps`; ``work`` is the run's work folder, needed when its
    breakdowns are stored there (they are read when looked up, not now)."""
    envelope = _ENVELOPE.decode(raw)
    files, inline = envelope.breakdown_files, envelope.breakdowns
    if inline:
        data: dict[str, Any] = json.loads(raw)
        data.pop(FILES_KEY, None)
        data.pop("breakdowns", None)
        statement = _ADAPTER.validate_python(data)
    else:
        # No inline tables: pydantic reads the fields straight from the bytes (the index
        # key is not a field and is passed over), 0.35 s sooner for the 5M-call month.
        statement = _ADAPTER.validate_json(raw)
    if files is not None:
        if work is None:
            raise StatementJsonError(
                "this statement's breakdowns are stored in its run's work folder: read it"
                " with that folder (workfolder.load_statement)"
            )
        index = {
            str(center): None if entry is None else (str(entry["file"]), str(entry["sha256"]))
            for center, entry in files.items()
        }
        return replace(statement, breakdowns=StoredBreakdowns(work, index))
    if not inline:
        return statement
    breakdowns = {
        center: decode_tables([_decoded(item) for item in items])
        for center, items in inline.items()
    }
    return replace(statement, breakdowns=breakdowns)


def _decoded(table: dict[str, Any]) -> dict[str, Any]:
    """An inline table's tagged cells read back (tags only ever stand for cells there)."""
    return table | {
        "rows": [[_decode_cell(cell) for cell in row] for row in table["rows"]],
        "total": [_decode_cell(cell) for cell in table.get("total", [])],
    }


def _decode_cell(cell: Any) -> Any:
    if isinstance(cell, dict):
        if DATE_TAG in cell:
            return date.fromisoformat(cell[DATE_TAG])
        return Decimal(cell[DECIMAL_TAG])
    return cell
