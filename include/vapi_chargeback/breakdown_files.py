"""Owners' breakdown tables kept beside the statement in the run's work folder, one file a
cost center, and read back one cost center at a time.

At 20,000 assistants and 400 cost centers the breakdowns ("cost by assistant by day" for
every owner who asks) are most of a statement: ~100 MB of JSON, well over 1 GiB as Python
objects. Handed inside the statement, every step after allocate would hold them all,
though reconcile and verify never look at them and publish needs one cost center's at a
time (its workbook, its validation). So they are written once, by the step that rounds
them (allocate, or the merge of a sharded allocate), one file per cost center under
``breakdowns/``; the statement JSON carries only their index (file and sha256 per cost
center, ``statement_json``), which reconcile, verify and publish hand on unchanged.

:class:`StoredBreakdowns` is that index as the ``Mapping`` ``Statement.breakdowns`` is: a
lookup reads the cost center's file, checks its sha256 and decodes it, and nothing is
kept, so the rest of the code (validation, the owner's workbook) reads breakdowns as it
always did and holds one cost center's at a time. Files per cost center rather than one
file with byte spans: each is one plain read (one GET on object storage), written as soon
as its tables are rounded, and none is larger than one owner's tables.

A cell is text, a count, an amount or a day: amounts and days are tagged as in the inline
form (``{"d": "12.34"}``, ``{"date": "2026-10-05"}``) so they come back as ``Decimal`` and
``date``; :func:`dumps_tables` and :func:`loads_tables` are the one encoding of tables,
inline or in a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from vapi_chargeback.errors import PermanentError
from vapi_chargeback.statement import Breakdown

StoragePath = Any
"""A ``upath.UPath`` or Airflow's ``ObjectStoragePath`` (a proxy with the same API)."""

BREAKDOWNS_DIR = "breakdowns"
DECIMAL_TAG = "d"
DATE_TAG = "date"


class BreakdownsFileError(PermanentError):
    """A cost center's breakdowns file no longer matches the statement that names it (changed
    after the step that wrote it, or missing): clear the run and plan it again."""


class StoredBreakdowns(Mapping[str, list[Breakdown]]):
    """Cost center id → its breakdowns, read from the work folder when looked up, not kept.

    ``files``: cost center → (file relative to the work folder, sha256), or ``None`` for a
    cost center without breakdowns; its order is the statement's order of cost centers.
    Each lookup reads the file again: callers look each cost center up once or twice
    (validation, then the workbook), and holding them would hold them all.
    """

    def __init__(self, work: StoragePath, files: Mapping[str, tuple[str, str] | None]) -> None:
        self._work = work
        self._files = dict(files)

    @property
    def files(self) -> dict[str, tuple[str, str] | None]:
        return dict(self._files)

    def __getitem__(self, center: str) -> list[Breakdown]:
        entry = self._files[center]
        if entry is None:
            return []
        name, sha256 = entry
        try:
            raw = bytes((self._work / name).read_bytes())
        except FileNotFoundError:
            raise BreakdownsFileError(
                f"{name} (breakdowns of {center!r}) is missing from the run's work folder"
            ) from None
        if hashlib.sha256(raw).hexdigest() != sha256:
            raise BreakdownsFileError(f"{name} changed since the step that wrote it")
        return loads_tables(raw)

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        return f"StoredBreakdowns({len(self._files)} cost centers in {self._work})"


def store_breakdowns(
    work: StoragePath,
    breakdowns: Mapping[str, Sequence[Breakdown]],
    make_folder: Callable[[StoragePath], None],
) -> StoredBreakdowns:
    """Write each cost center's breakdowns to its own file, one cost center at a time (a lazy
    ``breakdowns`` — ``BreakdownBuilder.tables`` — rounds each only now); their index.

    Breakdowns stored already in ``work`` are handed on as they are. Files are named by
    position (``breakdowns/0000.json`` …), so no id becomes a path.
    """
    if isinstance(breakdowns, StoredBreakdowns) and breakdowns._work == work:
        return breakdowns
    folder = work / BREAKDOWNS_DIR
    made = False
    files: dict[str, tuple[str, str] | None] = {}
    for position, (center, tables) in enumerate(breakdowns.items()):
        if not tables:
            files[center] = None
            continue
        if not made:
            make_folder(folder)
            made = True
        raw = dumps_tables(tables)
        name = f"{BREAKDOWNS_DIR}/{position:04d}.json"
        (work / name).write_bytes(raw)
        files[center] = (name, hashlib.sha256(raw).hexdigest())
    return StoredBreakdowns(work, files)


def dumps_tables(tables: Sequence[Breakdown]) -> bytes:
    """One cost center's tables as compact JSON, cells tagged (deterministic bytes)."""
    return json.dumps(encode_tables(tables), separators=(",", ":"), default=tag_cell).encode()


def encode_tables(tables: Sequence[Breakdown]) -> list[dict[str, Any]]:
    """Tables as JSON-ready dicts in field order; amounts and days are tagged by ``json``'s
    ``default`` hook when dumped (:func:`dumps_tables`), so cells are not copied here."""
    return [
        {
            "definition_id": table.definition_id,
            "title": table.title,
            "columns": table.columns,
            "rows": table.rows,
            "total": table.total,
        }
        for table in tables
    ]


def loads_tables(raw: bytes | str) -> list[Breakdown]:
    """Tables written by :func:`dumps_tables` (or inline by an older statement JSON)."""
    return decode_tables(json.loads(raw, object_hook=_untag))


def decode_tables(items: Sequence[Mapping[str, Any]]) -> list[Breakdown]:
    """Tables from JSON whose tagged cells were read back (``_untag``) already."""
    return [
        Breakdown(
            str(item["definition_id"]),
            str(item["title"]),
            list(item["columns"]),
            item["rows"],
            item.get("total", []),
        )
        for item in items
    ]


def tag_cell(value: object) -> object:
    """``json``'s hook for what it cannot write: an amount or a day, tagged."""
    if isinstance(value, Decimal):
        return {DECIMAL_TAG: str(value)}
    if isinstance(value, date):
        return {DATE_TAG: value.isoformat()}
    raise TypeError(f"{type(value).__name__} is not a breakdown cell")


def _untag(item: dict[str, Any]) -> Any:
    """A tagged cell back to its ``Decimal`` or ``date``; any other object as it is."""
    if len(item) == 1:
        if DECIMAL_TAG in item:
            return Decimal(item[DECIMAL_TAG])
        if DATE_TAG in item:
            return date.fromisoformat(item[DATE_TAG])
    return item
