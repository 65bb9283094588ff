"""Open workbooks with a real spreadsheet program: LibreOffice headless, and poppler.

``soffice --headless --convert-to pdf`` loads each workbook as Calc would show and print it
(charts, page setup, fit to width) and fails loudly on a file it cannot read. One call
converts a whole list of workbooks, because starting LibreOffice costs seconds and each
further file a fraction of that. Each call uses a private profile in a temporary folder
(``-env:UserInstallation``), so it neither reads a person's settings nor collides with a
LibreOffice already running. poppler's ``pdfinfo``, ``pdftotext`` and ``pdftoppm`` read
the PDF back: pages, page size, the text of a page, and the first page as a PNG kept in
``test-artifacts/libreoffice/`` (gitignored) for a person to look at.

Missing programs skip the tests locally and fail them under ``CI`` (``.ci/run`` installs
Debian's ``libreoffice-calc-nogui`` and ``poppler-utils``), as the browser tests do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "libreoffice"
CONVERT_TIMEOUT = 600
"""Seconds for one soffice call; a month's workbooks take a few on an idle machine."""
POPPLER_TIMEOUT = 60
PNG_RESOLUTION = 60
"""Dots per inch of the kept first pages: enough to see layout and charts, small files."""
INSTALL = "apt-get install -y libreoffice-calc-nogui poppler-utils"
PAGE_SIZE = re.compile(r"^Page size:\s+([\d.]+) x ([\d.]+) pts", re.MULTILINE)
PAGES = re.compile(r"^Pages:\s+(\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Tools:
    soffice: str
    pdfinfo: str
    pdftotext: str
    pdftoppm: str


@dataclass(frozen=True)
class Conversion:
    pdfs: dict[Path, Path]
    """Workbook → its PDF."""
    seconds: float
    """Wall time of the one soffice call."""


def require_tools() -> Tools:
    """The programs, or a skip (locally) / failure (``CI`` set) naming what to install."""
    found = {name: shutil.which(name) for name in ("soffice", "pdfinfo", "pdftotext", "pdftoppm")}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        message = f"LibreOffice and poppler are needed to open the workbooks ({', '.join(missing)} not found): {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Tools(**{name: path for name, path in found.items() if path is not None})


def convert_to_pdf(tools: Tools, workbooks: Sequence[Path], out: Path) -> Conversion:
    """Every workbook to PDF in one soffice call; each must come out as a readable PDF.

    The files are copied under unique names first (``a/x.xlsx`` and ``b/x.xlsx`` would give
    one ``x.pdf``), then converted from that folder."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="soffice-") as scratch:
        staged = Path(scratch) / "in"
        staged.mkdir()
        names: dict[Path, Path] = {}
        for index, workbook in enumerate(workbooks):
            copy = staged / f"{index:03d}-{workbook.name}"
            shutil.copyfile(workbook, copy)
            names[workbook] = copy
        profile = (Path(scratch) / "profile").as_uri()
        command = [
            tools.soffice,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            *(str(copy) for copy in names.values()),
        ]
        started = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CONVERT_TIMEOUT, check=False
        )
        seconds = time.perf_counter() - started
    said = f"soffice exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, said
    pdfs = {workbook: out / f"{copy.stem}.pdf" for workbook, copy in names.items()}
    for workbook, pdf in pdfs.items():
        assert pdf.is_file() and pdf.stat().st_size, f"{workbook}: no PDF written\n{said}"
        assert page_count(tools, pdf) >= 1, f"{workbook}: an empty PDF"
    return Conversion(pdfs, seconds)


def page_count(tools: Tools, pdf: Path) -> int:
    match = PAGES.search(_run([tools.pdfinfo, str(pdf)]))
    assert match, f"{pdf}: pdfinfo reports no page count"
    return int(match.group(1))


def page_size(tools: Tools, pdf: Path, page: int = 1) -> tuple[float, float]:
    """Width and height of ``page`` in points, as printed (orientation applied)."""
    info = _run([tools.pdfinfo, "-f", str(page), "-l", str(page), str(pdf)])
    match = re.search(rf"^Page\s+{page} size:\s+([\d.]+) x ([\d.]+) pts", info, re.MULTILINE)
    match = match or PAGE_SIZE.search(info)
    assert match, f"{pdf}: pdfinfo reports no page size"
    return float(match.group(1)), float(match.group(2))


def page_text(tools: Tools, pdf: Path, page: int) -> str:
    return _run([tools.pdftotext, "-f", str(page), "-l", str(page), "-layout", str(pdf), "-"])


def keep_first_page(tools: Tools, pdf: Path, name: str) -> Path:
    """The first page as ``test-artifacts/libreoffice/{name}.png``; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = ARTIFACTS / name
    _run(
        [
            tools.pdftoppm,
            "-png",
            "-f",
            "1",
            "-l",
            "1",
            "-r",
            str(PNG_RESOLUTION),
            "-singlefile",
            str(pdf),
            str(base),
        ]
    )
    png = base.with_name(f"{name}.png")
    assert png.is_file() and png.read_bytes().startswith(b"\x89PNG"), f"{pdf}: no PNG rendered"
    return png


@dataclass(frozen=True)
class SummaryRow:
    """One Summary table row as printed: its first cell and its rightmost filled cell."""

    first: str
    last: str
    last_header: str


def summary_row(workbook: Path) -> SummaryRow:
    """The first Summary body row whose rightmost filled cell is a number, shown as Calc
    shows it: if one line of page 1 of the PDF holds both ends of that row, the table was
    printed one page wide (a sheet wider than its page continues on a later page)."""
    book = openpyxl.load_workbook(workbook)
    try:
        sheet = book.worksheets[0]
        assert sheet.title == "Summary", f"{workbook}: the first sheet is {sheet.title!r}"
        header = next(
            row
            for row in sheet.iter_rows()
            if row[0].value is not None and row[0].style == "Header"
        )
        titles = {cell.column: cell.value for cell in header}
        for row in sheet.iter_rows(min_row=header[0].row + 1):
            filled = [cell for cell in row if cell.value is not None]
            if not filled or not isinstance(row[0].value, str):
                continue
            last = filled[-1]
            if isinstance(last.value, int | float):
                return SummaryRow(
                    row[0].value, shown(last.value, last.number_format), str(titles[last.column])
                )
        raise AssertionError(f"{workbook}: no Summary row ending in a number")
    finally:
        book.close()


def shown(value: Any, number_format: str) -> str:
    """A number as Calc prints it in an en-US locale, for the formats the writer uses."""
    number = Decimal(str(value))
    if number_format.endswith("%"):
        places = len(number_format.split(".")[1].rstrip("%")) if "." in number_format else 0
        return f"{number * 100:,.{places}f}%"
    places = len(number_format.split(".")[1]) if "." in number_format else 0
    return f"{number:,.{places}f}"


def _run(command: list[str]) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=POPPLER_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}: exit {done.returncode}\n{done.stderr}"
    return done.stdout
