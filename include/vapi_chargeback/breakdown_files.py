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
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from operator import itemgetter
from typing import Any, cast

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
    if isinstance(breakdowns, _SharedBreakdowns) and breakdowns.work == work:
        return breakdowns.stored()
    writer = _Writer(work, breakdowns, make_folder)
    files = dict(writer.write(position) for position in range(len(writer.centers)))
    return StoredBreakdowns(work, files)


class _Writer:
    """Writes cost center ``position``'s file (or finds it has no tables)."""

    def __init__(
        self,
        work: StoragePath,
        breakdowns: Mapping[str, Sequence[Breakdown]],
        make_folder: Callable[[StoragePath], None],
    ) -> None:
        self.work = work
        self.breakdowns = breakdowns
        self.centers = list(breakdowns)
        self._make_folder = make_folder
        self._made = False

    def write(self, position: int) -> tuple[str, tuple[str, str] | None]:
        center = self.centers[position]
        tables = self.breakdowns[center]
        if not tables:
            return center, None
        if not self._made:
            self._make_folder(self.work / BREAKDOWNS_DIR)
            self._made = True
        raw = dumps_tables(tables)
        name = f"{BREAKDOWNS_DIR}/{position:04d}.json"
        (self.work / name).write_bytes(raw)
        return center, (name, hashlib.sha256(raw).hexdigest())


@contextmanager
def forked_writer(
    work: StoragePath,
    make_folder: Callable[[StoragePath], None],
    tables_for: Callable[[Any], Mapping[str, Sequence[Breakdown]]],
) -> Iterator[ForkedWriter | None]:
    """Fork a worker process *now*, to write breakdowns later beside this process
    (:meth:`ForkedWriter.share`); ``None`` where it would not help or is not safe.

    Rounding, encoding and writing the tables is half the merge of a sharded allocate at
    20,000 assistants, and independent per cost center. The worker is forked before this
    process loads the month's sums: a fork shares pages only until either process writes
    them, and one forked from a process holding (or having freed) 600 MiB of sums came to
    copy 360 MiB of them, over the task's 1 GiB. Forked early, it holds little but what
    ``tables_for`` closes over (the config, the plan); later it is sent only what it lacks
    (``tables_for``'s argument: the direct lines' totals the tables round against) and
    makes the same tables as this process from the shards' groups files.

    ``None`` with one CPU, on object storage (a fork of its client is not safe), or as a
    daemonic process (which may not have children): the breakdowns are then written by
    this process alone, as ``store_breakdowns`` always did.
    """
    if not may_fork(work):
        yield None
        return
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    # A forked worker flushes the output buffers it inherited when it ends: empty them first.
    sys.stdout.flush()
    sys.stderr.flush()
    with ProcessPoolExecutor(
        1,
        mp_context=context,
        initializer=_inherit,
        initargs=(_Inherited(work, make_folder, tables_for, counter),),
    ) as pool:
        pool.submit(int)  # forks the worker now
        writer = ForkedWriter(pool, counter)
        try:
            yield writer
        finally:
            writer.stop()


def may_fork(work: StoragePath) -> bool:
    """Whether a step working in ``work`` may fork a worker process to share its work:
    with a second CPU, on a local filesystem (a fork of an object store's client is not
    safe), and not as a daemonic process (which may not have children)."""
    from vapi_chargeback.published import LOCAL_PROTOCOLS

    return (
        str(getattr(work, "protocol", "") or "") in LOCAL_PROTOCOLS
        and "fork" in multiprocessing.get_all_start_methods()
        and not multiprocessing.current_process().daemon
        and _usable_cpus() >= 2
    )


class ForkedWriter:
    """The worker of :func:`forked_writer`, and the counter both processes take cost
    centers from."""

    def __init__(self, pool: ProcessPoolExecutor, counter: Any) -> None:
        self._pool = pool
        self._counter = counter

    def share(
        self,
        work: StoragePath,
        breakdowns: Mapping[str, Sequence[Breakdown]],
        make_folder: Callable[[StoragePath], None],
        argument: Any,
    ) -> Mapping[str, list[Breakdown]]:
        """Set the worker writing its tables (``tables_for(argument)``, the same as
        ``breakdowns``) now; the mapping to hand on, which :func:`store_breakdowns`
        completes here, both processes taking cost centers in order from the counter, each
        reading the shards' groups files forward once (``shard_groups.MergedGroups``)."""
        writer = _Writer(work, breakdowns, make_folder)
        worker = self._pool.submit(_write_inherited, argument, writer.centers)
        return _SharedBreakdowns(writer, self._counter, worker)

    def stop(self) -> None:
        """Leave the worker nothing more to take (this process failed, or is done)."""
        with self._counter.get_lock():
            self._counter.value = _NONE_LEFT


_NONE_LEFT = 1 << 62
"""A counter past every cost center."""
Written = list[tuple[int, str, tuple[str, str] | None]]
"""(position, cost center, its file and sha256 or ``None``) for each cost center written."""


class _SharedBreakdowns(Mapping[str, list[Breakdown]]):
    """Breakdowns a forked worker is writing; :meth:`stored` writes the rest here."""

    def __init__(self, writer: _Writer, counter: Any, worker: Future[Written]) -> None:
        self._writer = writer
        self._counter = counter
        self._worker = worker

    @property
    def work(self) -> StoragePath:
        return self._writer.work

    def __getitem__(self, center: str) -> list[Breakdown]:
        return list(self._writer.breakdowns[center])

    def __iter__(self) -> Iterator[str]:
        return iter(self._writer.centers)

    def __len__(self) -> int:
        return len(self._writer.centers)

    def stored(self) -> StoredBreakdowns:
        """Write what the worker has not taken, wait for the worker, and index it all."""
        written = _take(self._writer, self._counter) + self._worker.result()
        centers = self._writer.centers
        if sorted(position for position, _, _ in written) != list(range(len(centers))) or any(
            centers[position] != center for position, center, _ in written
        ):
            raise RuntimeError("the breakdowns worker wrote other cost centers than this process")
        files: dict[str, tuple[str, str] | None] = dict.fromkeys(centers)
        for _, center, entry in written:
            files[center] = entry
        return StoredBreakdowns(self.work, files)


def _take(writer: _Writer, counter: Any) -> Written:
    """Write cost centers, the next not yet taken each time, until none is left."""
    written: Written = []
    while True:
        with counter.get_lock():
            position = int(counter.value)
            if position >= len(writer.centers):
                return written
            counter.value = position + 1
        written.append((position, *writer.write(position)))


class _Inherited:
    """What the worker is forked with (not pickled: a fork copies it)."""

    def __init__(
        self,
        work: StoragePath,
        make_folder: Callable[[StoragePath], None],
        tables_for: Callable[[Any], Mapping[str, Sequence[Breakdown]]],
        counter: Any,
    ) -> None:
        self.work = work
        self.make_folder = make_folder
        self.tables_for = tables_for
        self.counter = counter


_inherited: _Inherited | None = None


def _inherit(inherited: _Inherited) -> None:
    global _inherited
    _inherited = inherited


def _write_inherited(argument: Any, centers: Sequence[str]) -> Written:
    """In the worker: make the tables and write the cost centers it takes."""
    if _inherited is None:
        raise RuntimeError("not a breakdowns worker: _inherit did not run")
    writer = _Writer(_inherited.work, _inherited.tables_for(argument), _inherited.make_folder)
    if writer.centers != list(centers):
        raise RuntimeError("the breakdowns worker made tables of other cost centers")
    return _take(writer, _inherited.counter)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, as a container or taskset limits it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def dumps_tables(tables: Sequence[Breakdown]) -> bytes:
    """One cost center's tables as compact JSON, cells tagged (deterministic bytes): the
    bytes of ``json.dumps(encode_tables(tables), separators=(",", ":"), default=tag_cell)``.

    Made a column at a time (:func:`_table_json`): ``json`` calls its ``default`` hook in
    Python for every amount and day, two million cells at 20,000 assistants, which was
    most of the time the merge spent writing the breakdowns.
    """
    return f"[{','.join(map(_table_json, tables))}]".encode()


def _table_json(table: Breakdown) -> str:
    """One table as :func:`encode_tables` lays it out, dumped as ``json`` dumps it."""
    return (
        f'{{"definition_id":{_json(table.definition_id)},"title":{_json(table.title)},'
        f'"columns":{_json(table.columns)},"rows":{_rows_json(table.rows)},'
        f'"total":{_json(table.total)}}}'
    )


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), default=tag_cell)


def _rows_json(rows: Sequence[Sequence[object]]) -> str:
    """Rows as ``json`` writes them, made by one ``str.format`` call per row whose template
    writes each column's cells as their kind is written (:func:`_column_format`); rows not
    all lists (or tuples) of one length, or of no cells, go to ``json`` whole."""
    if not rows:
        return "[]"
    if not _ROW_TYPES.issuperset(map(type, rows)) or len(set(map(len, rows))) != 1:
        return _json(rows)
    if not rows[0]:
        return _json(rows)
    pieces: list[str] = []
    arguments: list[Iterable[object]] = []
    for position in range(len(rows[0])):
        piece, argument = _column_format(list(map(itemgetter(position), rows)))
        pieces.append(piece)
        if argument is not None:
            arguments.append(argument)
    row = f"[{','.join(pieces)}]".format
    return f"[{','.join(map(row, *arguments))}]" if arguments else _json(rows)


def _column_format(cells: list[object]) -> tuple[str, Iterable[object] | None]:
    """A column's part of the row template and what fills it (``None``: nothing, the part
    is the column's one text): cells all of one kind written by the template itself,
    texts escaped by ``json``'s C function, a mixed column a cell at a time."""
    kinds = set(map(type, cells))
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind is Decimal:
        return '{{"' + DECIMAL_TAG + '":"{!s}"}}', cells
    if kind is date:
        return '{{"' + DATE_TAG + '":"{!s}"}}', cells
    if kind is int:
        return "{!r}", cells
    if kind is str:
        return "{}", map(_text_json, cast(list[str], cells))
    if kind is type(None):
        return "null", None
    return "{}", map(_cell_json, cells)


def _cell_json(cell: object) -> str:
    """One cell as ``json.dumps(cell, default=tag_cell)`` writes it."""
    if type(cell) is str:
        return _text_json(cell)
    return _json(cell)


_ROW_TYPES = frozenset({list, tuple})
_text_json: Callable[[str], str] = json.encoder.encode_basestring_ascii
"""What ``json.dumps`` (``ensure_ascii``) writes for a text, in C. An amount's text
(``str(Decimal)``) and a day's (``str(date)``, its ISO form) are digits, signs, dots and
letters: the template writes them with nothing to escape, as ``json`` would."""


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
