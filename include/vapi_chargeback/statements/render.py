"""Render a month's whole statement set into one local directory.

Storage publishes only what was rendered here completely: validation runs first (a
cost center's stored breakdown tables are checked as its workbook reads them, so they are
read and decoded once; any problem fails the rendering, so nothing is published), then
the CSV, the FOCUS file, the journal (when the config has a ``gl:`` block), the finance
workbook, one workbook per cost center and finally the manifest that hashes them. If
anything raises, the caller discards the directory and nothing reaches the output.

The workbooks are most of the work (finance's and one per cost center: 41 at 1.5M calls,
401 in a large org) and independent of each other, so with several CPUs worker processes
(``render_workers``: fresh interpreters, each sent only its cost centers' lines) write
some owners' workbooks while this one writes the CSV, the exports, finance's workbook
(which read every line) and then the other owners' workbooks; as many workers as the
task's memory allows (:data:`TASK_MEMORY_BYTES`). Each workbook is written whole by one
process with the same code, so the bytes and the manifest's order do not depend on the
workers.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from vapi_chargeback.breakdown_files import StoredBreakdowns
from vapi_chargeback.exports.focus import focus_name, write_focus
from vapi_chargeback.exports.journal import journal_name, write_journal
from vapi_chargeback.process_memory import status_bytes
from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.csv import csv_name, write_csv
from vapi_chargeback.statements.manifest import (
    MANIFEST_NAME,
    FileEntry,
    build_manifest,
    file_entry,
    sha256_file,
)
from vapi_chargeback.statements.render_workers import (
    WORKER_BYTES,
    Written,
    can_share,
    written_by_workers,
)
from vapi_chargeback.statements.totals import StatementTotals, summarize
from vapi_chargeback.statements.validate import StatementError, table_problems, validate_statement
from vapi_chargeback.statements.xlsx import (
    cost_center_workbook_name,
    statement_workbook_name,
    write_cost_center_workbook,
    write_statement_workbook,
)


@dataclass(frozen=True)
class RenderedSet:
    period: str
    directory: Path
    """Holds every file under its published relative path, and ``manifest.json``."""
    files: tuple[FileEntry, ...]
    """Data files in the order they were written; the manifest is not among them."""
    manifest_sha256: str

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST_NAME


PARALLEL_FROM = 8
"""Cost centers from which owners' workbooks are also written in worker processes: for
fewer, starting a worker costs more than it saves."""
FINANCE = -1
"""The workbook task of finance's workbook; tasks 0, 1 … are the cost centers'."""


def render_statement(statement: Statement, directory: Path) -> RenderedSet:
    """Validate ``statement`` and write its files and manifest into ``directory``."""
    with _long_lived_objects_frozen():
        return _render(statement, directory)


def _render(statement: Statement, directory: Path) -> RenderedSet:
    validate_statement(statement, tables=not isinstance(statement.breakdowns, StoredBreakdowns))
    totals = summarize(statement)
    gc.freeze()
    period = statement.period
    entries: list[FileEntry] = []

    def emit(relative: str, write: Callable[[Path], int]) -> None:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        entries.append(file_entry(directory, relative, write(path)))

    with _workbooks(statement, totals, directory) as workbook_entries:
        emit(csv_name(period), lambda path: write_csv(statement, path))
        emit(focus_name(period), lambda path: write_focus(statement, path))
        if statement.journal is not None:
            emit(journal_name(period), lambda path: write_journal(statement, path))
        written = workbook_entries()
    problems = [problem for _, found in written for problem in found]
    if problems:
        raise StatementError(problems)
    entries.extend(entry for entry, _ in written if entry is not None)
    manifest = directory / MANIFEST_NAME
    manifest.write_bytes(build_manifest(statement, totals, entries))
    return RenderedSet(period, directory, tuple(entries), sha256_file(manifest))


@contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the statement (and the totals, once summed) out of the garbage collector's
    scans while rendering: writing 401 workbooks allocates enough containers to start ~20
    full collections, each walking the statement's millions of objects, which cost 8 of 21
    CPU seconds for 20 large cost centers' workbooks and validation (2.5 s frozen). Frozen
    objects are only exempt from scans, never freed while frozen; the rendering's own
    garbage is collected as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _workbooks(
    statement: Statement, totals: StatementTotals, directory: Path
) -> Iterator[Callable[[], list[Written]]]:
    """Start writing every cost center's workbook; yields a function that writes finance's,
    waits for the others and returns what each wrote, finance's first, then in cost-center
    order.

    With several CPUs, at least :data:`PARALLEL_FROM` cost centers and room for a worker
    within :data:`TASK_MEMORY_BYTES`, one CPU's worth is this process (the CSV, the
    exports and finance's workbook read every line, then its share of the owners'
    workbooks) and each other CPU's a worker process (``render_workers``) writing its
    share; else this process writes them all, when the entries are asked for.
    """
    centers = range(len(statement.cost_centers))
    workers = 0
    if len(statement.cost_centers) >= PARALLEL_FROM and can_share(statement):
        workers = min(_usable_cpus() - 1, len(statement.cost_centers), _workers_within_memory())
    if workers < 1:
        yield lambda: [
            _write_workbook(statement, totals, directory, task) for task in (FINANCE, *centers)
        ]
        return
    here = (
        int(len(statement.lines) * OWN_WORK_PER_LINE),
        partial(_write_workbook, statement, totals, directory),
    )
    with written_by_workers(statement, totals.lines_by_center, directory, workers, here) as owners:
        yield lambda: [_write_workbook(statement, totals, directory, FINANCE), *owners()]


OWN_WORK_PER_LINE = 0.75
"""This process's own files (CSV, FOCUS, journal, finance's workbook) in owners'-workbook
lines' worth per statement line, so it is dealt fewer cost centers. Measured at 20,000
assistants: 10.6 CPU-s for its files against 30 CPU-s for 95,665 lines in 400 owners'
workbooks (``render_workers.PER_WORKBOOK`` lines' worth each), plus what it spends handing
the worker its part while the worker starts; at 0.5 this process ended ~4 CPU-s after its
one worker, at 0.75 within 1 CPU-s."""


def _write_workbook(
    statement: Statement, totals: StatementTotals, directory: Path, task: int
) -> Written:
    """Write finance's workbook (``task`` :data:`FINANCE`) or cost center ``task``'s.

    A cost center's stored breakdown tables are read once, checked (validation left them
    to this point) and handed to its workbook; tables with problems write no workbook."""
    write: Callable[[Path], int]
    if task == FINANCE:
        relative = statement_workbook_name(statement.period)
        write = partial(write_statement_workbook, statement, totals)
    else:
        center = statement.cost_centers[task]
        relative = cost_center_workbook_name(center.id, statement.period)
        lines = totals.lines_by_center[center.id]
        tables = statement.breakdowns.get(center.id, [])
        if isinstance(statement.breakdowns, StoredBreakdowns):
            problems = list(table_problems(center.id, tables))
            if problems:
                return None, problems
        write = lambda path: write_cost_center_workbook(statement, center, lines, path, tables)  # noqa: E731
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return file_entry(directory, relative, write(path)), []


TASK_MEMORY_BYTES = 1 << 30
"""What the publish task may hold with its workers (process tree PSS)."""


def _workers_within_memory() -> int:
    """Workers that fit :data:`TASK_MEMORY_BYTES` beside this process as large as it is now
    (it grows by its workbooks, counted in :data:`WORKER_BYTES`) if each came to
    :data:`WORKER_BYTES`: 2 at 410–512 MiB (20,000 assistants), 0 above 768 MiB."""
    resident = status_bytes("VmRSS")
    if resident <= 0:
        return 0
    return max(0, (TASK_MEMORY_BYTES - resident) // WORKER_BYTES)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, as a container or taskset limits it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
