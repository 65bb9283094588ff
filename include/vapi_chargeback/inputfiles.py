"""What every input file finance edits shares: one error listing every problem, one CSV reader.

The mapping, the config and ``invoices.csv`` are edited by people, often in a spreadsheet
program: a run must name every problem at once, as ``file:line: …``, rather than stop at
the first one and make the fix a loop.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from vapi_chargeback.errors import PermanentError


class InputFileError(PermanentError):
    """Every problem found in one input file, each a self-contained sentence."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        heading = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n  - ".join([heading, *self.problems]))


def read_bounded(
    path: Path, limit: int, what: str, error: type[InputFileError], *, missing: str | None
) -> bytes:
    """The file's bytes, refusing to read more than ``limit`` of them (``what``: ``a mapping
    CSV``, named in that refusal). A missing file is ``error`` saying ``missing``, or, with
    ``missing=None``, ``FileNotFoundError`` for a caller to whom no file is an answer."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        if missing is None:
            raise
        raise error(str(path), [f"{path}: {missing}"]) from None
    except OSError as problem:
        raise error(str(path), [f"{path}: cannot read ({problem.strerror})"]) from None
    if len(raw) > limit:
        raise error(
            str(path),
            [
                f"{path}: larger than {limit:,} bytes, the limit for {what}; check that the"
                " path names the right file"
            ],
        )
    return raw


def csv_rows(
    raw: bytes, source: str, header: tuple[str, ...], optional: tuple[str, ...] = ()
) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """The non-blank data rows with their line numbers, or the problem with the file itself.

    The header must be exactly ``header``, or ``header`` followed by the first of the
    ``optional`` columns (in that order); a byte-order mark (as Excel writes it) is fine.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return [], [f"{source}: not UTF-8 ({error}); save it as UTF-8"]
    rows = csv.reader(io.StringIO(text, newline=""))
    found = next(rows, None)
    allowed = [header + optional[:count] for count in range(len(optional) + 1)]
    if found is None or tuple(cell.strip() for cell in found) not in allowed:
        shown = ",".join(found) if found else "an empty file"
        wanted = " or ".join(repr(",".join(columns)) for columns in allowed)
        delimiter = _other_delimiter(found)
        if delimiter is not None:
            return [], [
                f"{source}:1: header {shown!r} looks {delimiter!r}-separated; the file must be"
                " comma-separated: save it as CSV with commas (Excel: 'CSV UTF-8 (Comma"
                f" delimited)') with the header {wanted}"
            ]
        return [], [f"{source}:1: header is {shown!r}; it must be exactly {wanted}"]
    return [
        (line_no, row)
        for line_no, row in enumerate(rows, start=2)
        if any(cell.strip() for cell in row)
    ], []


OTHER_DELIMITERS = (";", "\t", "|")
"""What spreadsheet programs write instead of commas, e.g. Excel where the decimal mark is a
comma (most of Europe): a "CSV" with ``;``."""


def _other_delimiter(header: list[str] | None) -> str | None:
    """The delimiter a one-cell header is split by, when it is not a comma: the file was
    saved with another one, and every row would fail for the same reason."""
    if header is None or len(header) != 1:
        return None
    return next((mark for mark in OTHER_DELIMITERS if mark in header[0]), None)
