"""Owners' workbooks written by fresh worker processes, each handed only its cost centers.

Publishing a large org is mostly its owners' workbooks (400 of them at 20,000 assistants,
35 of 60 CPU seconds), independent of each other. Forked workers could not share the
work within a task's memory: a fork's allocations land in the free slots of the parent's
heap pages (a statement decoded from 41 MB of JSON leaves 300 MiB of them) and its reads
write reference counts, so each page it touched was copied: two forked workers came to
270 MiB private each beside a 390 MiB parent (1.02 GiB process tree PSS, measured).

So each worker is a new interpreter (``python -m`` this module: nothing of the parent's
heap, and no ``__main__`` re-imported as ``multiprocessing``'s spawn would do with an
Airflow or bench script). The parent deals the cost centers between itself and the
workers (:func:`deal`) and writes each worker's part, pickled, to a scratch file:

- first :class:`Shared`: the statement without its lines (cost centers, names, pools,
  daily costs …) and what the owners' workbooks derive from all lines, computed by the
  parent: the conversion into the reporting currency (rounded over every line together,
  so a cost center's lines alone would round otherwise) and the month-over-month drivers;
- then per cost center: its lines, its lines of the previous month and, unless the worker
  can read them from the work folder itself, its breakdown tables.

The worker builds the statement restricted to each cost center, hands the shared figures
to the modules that keep them per statement object (``InCurrency.of``,
``month_over_month``) and writes the workbook with the same code as the parent would:
every byte is the same (tests compare both ways). It answers, into another scratch file
the parent reads once it ended, each file's entry (or the problems of its tables), or the
error that stopped it.
"""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import vapi_chargeback
from vapi_chargeback import variance as variance_module
from vapi_chargeback.breakdown_files import StoredBreakdowns
from vapi_chargeback.statement import Breakdown, ChargebackLine, Statement
from vapi_chargeback.statements import cells
from vapi_chargeback.statements.cells import InCurrency
from vapi_chargeback.statements.manifest import FileEntry, file_entry
from vapi_chargeback.statements.validate import table_problems
from vapi_chargeback.statements.xlsx import cost_center_workbook_name, write_cost_center_workbook
from vapi_chargeback.variance import Variance, month_over_month

Written = tuple[FileEntry | None, list[str]]
"""A workbook task's file, or ``None`` and the problems of the breakdown tables it refused."""

WORKER_BYTES = 256 << 20
"""What one worker may add to the task's memory (PSS): itself, ~60 MiB of interpreter and
imports, the shared part of the statement and the largest cost center's workbook being
made, plus a share of what the parent still grows by writing finance's workbook. Measured
at 20,000 assistants (names and drivers of all, 18,500 lines in the largest cost center):
workers 160–190 MiB each, the parent 410 MiB when they start and 510 MiB at most after."""


@dataclass(frozen=True)
class Shared:
    """What every worker receives once: the statement without lines, the figures the
    owners' workbooks take from all lines, and where to write."""

    statement: Statement
    money: InCurrency | None
    variance: Variance | None
    directory: Path
    tables_read_here: bool
    """The worker reads each cost center's stored tables from the work folder itself
    (``StoredBreakdowns`` in a local folder); else the parent sends them."""


@dataclass(frozen=True)
class Task:
    index: int
    """The cost center's position in ``statement.cost_centers``."""
    lines: list[ChargebackLine]
    previous_lines: list[ChargebackLine]
    tables: list[Breakdown] | None
    """``None``: read by the worker (:attr:`Shared.tables_read_here`)."""


def can_share(statement: Statement) -> bool:
    """Whether workers can write this statement's owners' workbooks: its stored tables, if
    stored, are in a folder of this machine (a worker reads them; an in-memory or remote
    filesystem of this process is not theirs). Tables not stored are sent. Never where
    this interpreter cannot be started again (no ``sys.executable``, as when embedded)."""
    if not sys.executable:
        return False
    if not isinstance(statement.breakdowns, StoredBreakdowns):
        return True
    return _local(statement.breakdowns)


def _local(breakdowns: StoredBreakdowns) -> bool:
    work = breakdowns._work
    return isinstance(work, Path) or str(getattr(work, "protocol", "")) in ("", "file", "local")


def shared_part(statement: Statement, directory: Path) -> Shared:
    """The parent's side of :class:`Shared` (computing the conversion and the drivers here,
    where the whole statement is, once)."""
    stored = isinstance(statement.breakdowns, StoredBreakdowns)
    previous = statement.previous
    lean = replace(
        statement,
        lines=[],
        previous=None if previous is None else replace(previous, lines=[]),
        breakdowns=statement.breakdowns if stored else {},
    )
    return Shared(lean, InCurrency.of(statement), month_over_month(statement), directory, stored)


def deal(sizes: Sequence[int], head_starts: Sequence[int]) -> list[list[int]]:
    """Cost centers dealt to writers that start with ``head_starts`` lines' worth of other
    work, so each ends with about as much: largest first, each to the writer with the least
    so far (a workbook costs about its lines, plus :data:`PER_WORKBOOK` for its fixed
    sheets). Each writer's list is in that order, its largest first. The same sizes always
    deal the same way."""
    loads = list(head_starts)
    dealt: list[list[int]] = [[] for _ in loads]
    for index in sorted(range(len(sizes)), key=lambda task: (-sizes[task], task)):
        least = min(range(len(loads)), key=lambda writer: (loads[writer], writer))
        dealt[least].append(index)
        loads[least] += sizes[index] + PER_WORKBOOK
    return dealt


PER_WORKBOOK = 100
"""A workbook's fixed sheets (summary, charts, variance, about) in lines' worth of work."""


@contextmanager
def written_by_workers(
    statement: Statement,
    lines_by_center: dict[str, list[ChargebackLine]],
    directory: Path,
    workers: int,
    here: tuple[int, Callable[[int], Written]],
) -> Iterator[Callable[[], list[Written]]]:
    """Start ``workers`` processes writing cost centers' workbooks; yields a function that
    writes the rest here and waits for the workers, returning what each wrote in
    cost-center order. ``here``: the lines' worth of work this process does before (the
    CSV, the exports, finance's workbook), and how it writes cost center ``index``'s
    workbook. Leaving early (an error here) ends the workers.

    Each worker's part is written to a scratch file it reads task by task, and its answers
    to another, read once it ended: this process, busy with its own files, never has to
    serve a worker (threads feeding them through pipes waited for the interpreter lock
    between tasks and left the workers idle half the time)."""
    head_start, write_here = here
    sizes = [len(lines_by_center[center.id]) for center in statement.cost_centers]
    mine, *parts = deal(sizes, [head_start, *[0] * workers])
    shared = shared_part(statement, directory)
    previous: dict[str, list[ChargebackLine]] = {}
    if statement.previous is not None:
        for line in statement.previous.lines:
            previous.setdefault(line.cost_center_id, []).append(line)
    send_tables = not shared.tables_read_here

    def task(index: int) -> Task:
        center = statement.cost_centers[index].id
        tables = list(statement.breakdowns.get(center, [])) if send_tables else None
        return Task(index, lines_by_center[center], previous.get(center, []), tables)

    processes: list[tuple[subprocess.Popen[bytes], Path, list[int]]] = []
    with tempfile.TemporaryDirectory(prefix="render-workers-") as scratch:
        try:
            for number, indexes in enumerate(parts):
                part, answers = Path(scratch, f"{number}.part"), Path(scratch, f"{number}.answers")
                with part.open("wb") as stream:
                    pickle.dump(shared, stream, pickle.HIGHEST_PROTOCOL)
                    for index in indexes:
                        pickle.dump(task(index), stream, pickle.HIGHEST_PROTOCOL)
                processes.append((_start(part, answers), answers, indexes))

            def collect() -> list[Written]:
                results = {index: write_here(index) for index in mine}
                for process, answers, indexes in processes:
                    process.wait()
                    results.update(_answers(answers, indexes, process.returncode))
                return [results[index] for index in range(len(statement.cost_centers))]

            yield collect
        finally:
            for process, _, _ in processes:
                if process.poll() is None:
                    process.kill()
                process.wait()


def _start(part: Path, answers: Path) -> subprocess.Popen[bytes]:
    """A worker: this interpreter running this module, finding this package where the
    parent found it (an Airflow worker puts ``include/`` on ``sys.path``, not on
    ``PYTHONPATH``)."""
    package_root = str(Path(vapi_chargeback.__file__).resolve().parent.parent)
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.Popen(
        [sys.executable, "-m", __name__, str(part), str(answers)],
        stdin=subprocess.DEVNULL,
        env=environment,
    )


def _answers(answers: Path, indexes: list[int], returncode: int) -> dict[int, Written]:
    """A worker's answers, one per task in its order; its error raised here."""
    found: dict[int, Written] = {}
    with suppress(FileNotFoundError), answers.open("rb") as stream:
        for index in indexes:
            try:
                kind, value = pickle.load(stream)
            except EOFError:
                break
            if kind == "error":
                raise value if isinstance(value, BaseException) else RuntimeError(str(value))
            found[index] = value
    if len(found) < len(indexes):
        raise RuntimeError(
            f"a workbook worker ended (exit status {returncode}) after {len(found)} of"
            f" its {len(indexes)} workbooks"
        )
    return found


def write_task(shared: Shared, task: Task) -> Written:
    """Write one cost center's workbook as ``render._write_workbook`` does in the parent:
    its stored tables read and checked first (tables with problems write no workbook)."""
    base = shared.statement
    center = base.cost_centers[task.index]
    previous = base.previous
    statement = replace(
        base,
        lines=task.lines,
        previous=None if previous is None else replace(previous, lines=task.previous_lines),
    )
    # The figures taken from all lines, kept for this statement object by their modules
    # as they keep them for the whole statement in the parent.
    cells._CONVERTED[:] = [(weakref.ref(statement, cells._forget_converted), shared.money)]
    with variance_module._LAST_LOCK:
        variance_module._LAST[:] = [(statement, shared.variance)]
    tables = task.tables
    if tables is None:
        tables = base.breakdowns.get(center.id, [])
        problems = list(table_problems(center.id, tables))
        if problems:
            return None, problems
    relative = cost_center_workbook_name(center.id, base.period)
    path = shared.directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    count = write_cost_center_workbook(statement, center, task.lines, path, tables)
    return file_entry(shared.directory, relative, count), []


def main(part: str, answers: str) -> None:
    """A worker: the shared part, then each task of ``part`` in turn, answering each into
    ``answers``; the first error is answered and ends it."""
    with open(part, "rb") as requests, open(answers, "wb") as replies:
        shared: Shared = pickle.load(requests)
        gc.freeze()
        while True:
            try:
                task: Task = pickle.load(requests)
            except EOFError:
                return
            try:
                answer: tuple[str, Any] = ("written", write_task(shared, task))
            except Exception as error:
                pickle.dump(("error", _picklable(error)), replies, pickle.HIGHEST_PROTOCOL)
                raise
            pickle.dump(answer, replies, pickle.HIGHEST_PROTOCOL)


def _picklable(error: Exception) -> BaseException | str:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return "".join(traceback.format_exception(error))
    return error


if __name__ == "__main__":
    main(*sys.argv[1:3])
