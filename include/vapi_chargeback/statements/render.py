"""Render a month's whole statement set into one local directory.

Storage publishes only what was rendered here completely: validation runs first, then
the CSV, the FOCUS file, the journal (when the config has a ``gl:`` block), the finance
workbook, one workbook per cost center and finally the manifest that hashes them. If anything raises, the caller discards the directory and nothing
reaches the output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from vapi_chargeback.exports.focus import focus_name, write_focus
from vapi_chargeback.exports.journal import journal_name, write_journal
from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.csv import csv_name, write_csv
from vapi_chargeback.statements.manifest import (
    MANIFEST_NAME,
    FileEntry,
    build_manifest,
    file_entry,
    sha256_file,
)
from vapi_chargeback.statements.totals import summarize
from vapi_chargeback.statements.validate import validate_statement
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


def render_statement(statement: Statement, directory: Path) -> RenderedSet:
    """Validate ``statement`` and write its files and manifest into ``directory``."""
    validate_statement(statement)
    totals = summarize(statement)
    period = statement.period
    entries: list[FileEntry] = []

    def emit(relative: str, write: Callable[[Path], int]) -> None:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        entries.append(file_entry(directory, relative, write(path)))

    emit(csv_name(period), lambda path: write_csv(statement, path))
    emit(focus_name(period), lambda path: write_focus(statement, path))
    if statement.journal is not None:
        emit(journal_name(period), lambda path: write_journal(statement, path))
    emit(
        statement_workbook_name(period),
        lambda path: write_statement_workbook(statement, totals, path),
    )
    for center in statement.cost_centers:
        emit(
            cost_center_workbook_name(center.id, period),
            partial(
                write_cost_center_workbook, statement, center, totals.lines_by_center[center.id]
            ),
        )
    manifest = directory / MANIFEST_NAME
    manifest.write_bytes(build_manifest(statement, totals, entries))
    return RenderedSet(period, directory, tuple(entries), sha256_file(manifest))
