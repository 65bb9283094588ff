"""Owners' workbooks written by worker processes are the bytes one process writes, listed
in the same order; the memory guard decides whether workers start; a worker's refusal or
error refuses the whole set, and no worker outlives the rendering."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from vapi_chargeback.breakdown_files import BreakdownsFileError, store_breakdowns
from vapi_chargeback.statement import Breakdown, FxRate, PreviousMonth, Statement
from vapi_chargeback.statements import render, render_workers
from vapi_chargeback.statements.render import RenderedSet, render_statement
from vapi_chargeback.statements.validate import StatementError

from support.statement_samples import line, sample_statement

MIB = 1 << 20
EXTRA = 10
"""Cost centers added to the sample's two: more than ``render.PARALLEL_FROM``."""


def large_statement() -> Statement:
    """The sample with ten more cost centers of uneven sizes, a reporting currency whose
    rounding is spread over all lines together (a cost center's lines alone round
    otherwise: at 0.5 every odd cent is half a cent in EUR, and which lines round up depends
    on all of them) and a previous month (the Variance sheet's drivers)."""
    base = sample_statement()
    added, previous = [], []
    centers = list(base.cost_centers)
    for number in range(EXTRA):
        center = f"cc-{number:02d}"
        name = f"Center {number}"
        centers.append(replace(base.cost_centers[0], id=center, name=name))
        for item in range(1 + number * 3):
            cost = f"{number + 1}.{(2 * item + 1) % 100:02d}"  # odd cents: ½ cent in EUR
            assistant = f"asst-{number}-{item}"
            added.append(
                line(center, name, "t", assistant, "direct", 3, "4.5", cost, (cost, "0", "0"))
            )
            if item % 2:
                previous.append(
                    line(center, name, "t", assistant, "direct", 2, "3", "1.01", ("1", "0", "0"))
                )
    extra = sum((item.cost_usd for item in added), Decimal(0))
    assert base.reconciliation is not None
    reconciliation = replace(
        base.reconciliation,
        org_total_usd=base.reconciliation.org_total_usd + extra,
        lines_total_usd=base.reconciliation.lines_total_usd + extra,
    )
    fx = FxRate("EUR", Decimal("0.5"), date(2026, 10, 30), "month_end", "fx.csv sha256:ab", 2)
    return replace(
        base,
        cost_centers=centers,
        lines=[*base.lines, *added],
        reconciliation=reconciliation,
        fx=fx,
        previous=PreviousMonth("2026-09", previous, "VAPI-2026-09-ORG-v1", "final"),
        breakdowns={
            **base.breakdowns,
            "cc-03": [Breakdown("calls", "Calls by reason", ["reason", "calls"], [["x", 4]])],
        },
    )


def stored(statement: Statement, work: Path) -> Statement:
    tables = store_breakdowns(UPath(work), statement.breakdowns, _make_folder)
    return replace(statement, breakdowns=tables)


def _make_folder(path: UPath) -> None:
    path.mkdir(parents=True, exist_ok=True)


def files(rendered: RenderedSet) -> dict[str, str]:
    return {
        str(path.relative_to(rendered.directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(rendered.directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Workers on a 2-CPU machine with room for them; every worker started is recorded."""
    processes: list[subprocess.Popen[bytes]] = []
    start = render_workers._start

    def recorded(*arguments: Any) -> subprocess.Popen[bytes]:
        processes.append(start(*arguments))
        return processes[-1]

    monkeypatch.setattr(render_workers, "_start", recorded)
    monkeypatch.setattr(render, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(render, "status_bytes", lambda field: 300 * MIB)
    return processes


def alone(statement: Statement, directory: Path, monkeypatch: pytest.MonkeyPatch) -> RenderedSet:
    with monkeypatch.context() as patch:
        patch.setattr(render, "_workers_within_memory", lambda: 0)
        return render_statement(statement, directory)


@pytest.mark.parametrize(("tables", "cpus"), [("stored", 2), ("in memory", 2), ("stored", 3)])
def test_workers_write_the_bytes_and_the_manifest_of_one_process(
    tables: str,
    cpus: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[subprocess.Popen[bytes]],
) -> None:
    """One worker per CPU beyond this process's own; the cost centers dealt to this process
    and to each worker, and the entries still listed in cost-center order."""
    statement = large_statement()
    if tables == "stored":
        statement = stored(statement, tmp_path / "work")
    dealt: list[list[list[int]]] = []
    deal = render_workers.deal
    monkeypatch.setattr(render_workers, "deal", lambda *a: dealt.append(deal(*a)) or dealt[-1])
    monkeypatch.setattr(render, "_usable_cpus", lambda: cpus)

    expected = alone(statement, tmp_path / "alone", monkeypatch)
    assert not started
    rendered = render_statement(statement, tmp_path / "workers")

    assert len(started) == cpus - 1
    assert len(dealt) == 1 and len(dealt[0]) == cpus and all(dealt[0]), dealt
    assert all(process.returncode == 0 for process in started)
    assert rendered.files == expected.files, "same entries, in cost-center order"
    assert rendered.manifest_sha256 == expected.manifest_sha256
    assert files(rendered) == files(expected)
    assert len(files(rendered)) == 2 + 1 + len(statement.cost_centers) + 1


def test_no_worker_starts_where_two_would_not_fit_the_task_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[subprocess.Popen[bytes]]
) -> None:
    """Beside a process of 1 GiB − 1 worker + 1 byte, one worker of ``WORKER_BYTES``
    would pass ``TASK_MEMORY_BYTES``: this process writes everything."""
    limit = render.TASK_MEMORY_BYTES - render_workers.WORKER_BYTES
    monkeypatch.setattr(render, "status_bytes", lambda field: limit)
    assert render._workers_within_memory() == 1
    monkeypatch.setattr(render, "status_bytes", lambda field: limit + 1)
    assert render._workers_within_memory() == 0

    render_statement(large_statement(), tmp_path / "out")

    assert not started


def test_a_bad_table_a_worker_reads_refuses_the_set_as_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[subprocess.Popen[bytes]]
) -> None:
    bad = Breakdown("by-reason", "Minutes by reason", ["reason", "minutes"], [["x", 1.5]])
    statement = large_statement()
    statement = stored(
        replace(statement, breakdowns={**statement.breakdowns, "cc-07": [bad]}), tmp_path / "w"
    )
    with pytest.raises(StatementError) as one:
        alone(statement, tmp_path / "alone", monkeypatch)

    monkeypatch.setattr(render, "OWN_WORK_PER_LINE", 10_000)  # all to the worker
    with pytest.raises(StatementError) as workers:
        render_statement(statement, tmp_path / "workers")

    assert len(started) == 1
    assert workers.value.problems == one.value.problems
    assert "breakdowns['cc-07'][0].rows[0][1]: float is not" in str(workers.value)


def test_a_worker_error_is_raised_here_and_every_worker_has_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[subprocess.Popen[bytes]]
) -> None:
    """A stored table gone from the work folder fails the worker reading it; the error is
    the one a single process raises."""
    statement = stored(large_statement(), tmp_path / "work")
    for path in (tmp_path / "work").rglob("*.json"):
        path.unlink()
    monkeypatch.setattr(render, "OWN_WORK_PER_LINE", 10_000)  # all to the worker

    with pytest.raises(BreakdownsFileError, match="missing from the run's work folder"):
        render_statement(statement, tmp_path / "out")

    assert len(started) == 1
    assert all(process.poll() is not None for process in started)


def test_an_error_here_ends_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[subprocess.Popen[bytes]]
) -> None:
    def fails(*arguments: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(render, "write_focus", fails)

    with pytest.raises(OSError, match="disk full"):
        render_statement(large_statement(), tmp_path / "out")

    assert len(started) == 1
    assert all(process.poll() is not None for process in started)


def test_the_deal_evens_out_the_writers_work_head_starts_included() -> None:
    sizes = [18_500, 13, 18_400, 40, 90, 18_600, 7, 300] + [60] * 392
    head_starts = [50_000, 0, 0]
    dealt = render_workers.deal(sizes, head_starts)

    assert sorted(index for part in dealt for index in part) == list(range(len(sizes)))
    loads = [
        start + sum(sizes[index] + render_workers.PER_WORKBOOK for index in part)
        for start, part in zip(head_starts, dealt, strict=True)
    ]
    assert max(loads) - min(loads) <= render_workers.PER_WORKBOOK + 300, loads
    assert [sizes[part[0]] for part in dealt[1:]] == [18_600, 18_500]
    assert dealt == render_workers.deal(sizes, head_starts)
