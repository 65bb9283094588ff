"""Styled, deterministic and fast ``.xlsx`` writing on top of openpyxl.

openpyxl builds the package: named styles (registered once per workbook), column
widths, frozen header row, autofilter, document properties and all the parts Excel
needs. Sheet rows are streamed by this module into the sheets openpyxl wrote empty
(``_RowStreamingZip``): openpyxl's write-only mode spends most of its time in lxml calls
per cell, 2.5× slower than xlsxwriter's ``constant_memory`` on 100k statement lines,
while one string join per row makes the whole sheet about 2.7× faster than xlsxwriter
(``bench/writer.py --openpyxl-cells``).

Cell rules, identical on every sheet:

- ``str`` → an inline string, never a formula. Text starting with ``=``, ``+``, ``-``,
  ``@``, tab or CR also gets ``quotePrefix`` so Excel keeps it as text when edited.
- ``int`` → number ``#,##0``; ``Decimal`` → number ``#,##0.00`` written from its exact
  decimal digits (no float); in a percent column either → ``0.00%``; in a rate column
  (unit costs such as $/minute) ``#,##0.0000``: the cell keeps every digit, only the
  format rounds.
- ``date`` → a date serial with format ``yyyy-mm-dd``, so a day sorts and filters as a date.
- ``None`` or ``""`` → no cell.

Every sheet prints the same way: landscape, one page wide, the table header repeated on
each page, and a footer naming the statement (``DocumentInfo.footer``) with "page X of Y".

A sheet may open with a title block (the statement's title, status, id …) above its
table: a blank row separates the two, and the frozen pane sits below the table header so
the title block stays in view while scrolling.

The same sheets and document info give the same bytes: document properties and zip
entries carry ``DocumentInfo.moment``, never the wall clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import IO, Any, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.writer.excel import ExcelWriter

from vapi_chargeback.statements.cellxml import CellValue as CellValue
from vapi_chargeback.statements.cellxml import RowCells, StyleIds, text, text_cell
from vapi_chargeback.statements.cellxml import cell as xml_cell
from vapi_chargeback.statements.deterministic import DeterministicZipFile, zip_timestamp

ChartHook = Callable[[Any, "Sheet"], None]
"""Adds native charts to a sheet: called with the openpyxl worksheet (``add_chart``) and the
``Sheet`` (its ``header_row`` and rows say where the data a chart references sits)."""

MAX_SHEET_TITLE = 31
MIN_WIDTH = 8
MAX_WIDTH = 60
FILTER_BUTTON_WIDTH = 3
ROWS_PER_CHUNK = 1_000
SHEET_TITLE_FORBIDDEN = re.compile(r"[:\\/?*\[\]\x00-\x1f]")
RESERVED_SHEET_TITLES = {"history"}
ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
EMPTY_SHEET_DATA = (b"<sheetData></sheetData>", b"<sheetData/>")

HEADER_FILL = "DDEBF7"
INTEGER_FORMAT = "#,##0"
MONEY_FORMAT = "#,##0.00"
PERCENT_FORMAT = "0.00%"
RATE_FORMAT = "#,##0.0000"
DATE_FORMAT = "yyyy-mm-dd"
PAGE_FOOTER_RIGHT = "page &P of &N"
TITLE_SIZE = 14


@dataclass(frozen=True)
class Column:
    header: str
    percent: bool = False
    """Numbers in this column are fractions shown as percentages."""
    rate: bool = False
    """Numbers in this column are unit costs, kept exact and shown to four places."""


@dataclass(frozen=True)
class Figure:
    """A number in a title block that is a share (shown as a percentage) or a unit rate
    (shown to four places); plain money and counts go in as they are."""

    value: Decimal | None
    kind: Literal["share", "rate"]


TitleValue = CellValue | Figure


@dataclass(frozen=True)
class Sheet:
    title: str
    """Must already be Excel-safe and unique: see ``safe_sheet_titles``."""
    columns: Sequence[Column]
    rows: Sequence[Sequence[CellValue]]
    """The table body; header, frozen pane and autofilter cover exactly these rows."""
    footer: Sequence[Sequence[CellValue]] = ()
    """Bold rows below the table (totals), outside the autofilter so sorting leaves them."""
    title_block: Sequence[Sequence[TitleValue]] = ()
    """Rows above the table: the first row holds the title, each other row a bold label and
    its values. Labels count for the first column's width; the title and values overflow
    into the empty cells beside them."""
    charts: Sequence[ChartHook] = ()
    """Called once each after the sheet is laid out, to anchor native charts on it."""

    @property
    def header_row(self) -> int:
        """The table header's row number: 1, or below the title block and a blank row."""
        return len(self.title_block) + 2 if self.title_block else 1


@dataclass(frozen=True)
class DocumentInfo:
    title: str
    subject: str
    creator: str
    moment: datetime
    """Stamped as created, modified and on every zip entry, so reruns are byte-identical."""
    keywords: str = ""
    footer: str = ""
    """Printed at the left of every page's footer (the statement id)."""


@dataclass(frozen=True)
class _Styles:
    header: int
    title: int
    label: int
    body: StyleIds
    total: StyleIds


def write_workbook(target: Path | IO[bytes], sheets: Sequence[Sheet], info: DocumentInfo) -> None:
    """Write ``sheets`` as one workbook to ``target`` (a path or a binary file)."""
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    _check_titles([sheet.title for sheet in sheets])
    for sheet in sheets:
        _check_rows(sheet)
    workbook = Workbook(write_only=True)
    for style in _named_styles():
        workbook.add_named_style(style)
    worksheets = [workbook.create_sheet(sheet.title) for sheet in sheets]
    styles = _style_ids(worksheets[0])
    streams: dict[str, Callable[[], Iterable[bytes]]] = {}
    for index, (sheet, worksheet) in enumerate(zip(sheets, worksheets, strict=True), start=1):
        _lay_out(worksheet, sheet, info.footer)
        for add_charts in sheet.charts:
            add_charts(worksheet, sheet)
        streams[f"xl/worksheets/sheet{index}.xml"] = partial(_sheet_rows, sheet, styles)
    for worksheet in worksheets:
        _MemorySheetWriter.attach(worksheet)
    _pin_properties(workbook, info)
    with _RowStreamingZip(target, zip_timestamp(info.moment), streams) as archive:
        ExcelWriter(workbook, archive).save()
    if archive.unwritten:
        raise RuntimeError(
            f"openpyxl did not write sheet parts {archive.unwritten}; "
            "this openpyxl version is not supported by the row streamer"
        )


def safe_sheet_titles(wanted: Sequence[str], fallback: str = "Sheet") -> list[str]:
    """Excel-safe, unique titles in the same order: forbidden characters become spaces,
    at most 31 characters, no leading or trailing apostrophe, not ``History``, and a
    `` (2)`` suffix where two titles would collide (Excel compares them case-blind)."""
    taken: set[str] = set()
    titles = []
    for raw in wanted:
        base = " ".join(SHEET_TITLE_FORBIDDEN.sub(" ", raw).split()).strip("' ") or fallback
        if base.casefold() in RESERVED_SHEET_TITLES:
            base = f"{base} sheet"
        title = _fit(base, "")
        counter = 2
        while title.casefold() in taken:
            title = _fit(base, f" ({counter})")
            counter += 1
        taken.add(title.casefold())
        titles.append(title)
    return titles


def _fit(base: str, suffix: str) -> str:
    return base[: MAX_SHEET_TITLE - len(suffix)].rstrip("' ") + suffix


def _check_titles(titles: list[str]) -> None:
    if titles != safe_sheet_titles(titles):
        raise ValueError(
            f"sheet titles {titles} are not Excel-safe and unique; pass them through safe_sheet_titles"
        )


def _named_styles() -> list[NamedStyle]:
    """Fresh objects per workbook: openpyxl binds a NamedStyle to the workbook it joins."""
    bold = Font(bold=True)
    rule = Border(top=Side(style="thin"))
    return [
        NamedStyle(
            "Header",
            font=bold,
            fill=PatternFill("solid", fgColor=HEADER_FILL),
            border=Border(bottom=Side(style="thin")),
            alignment=Alignment(vertical="top", wrap_text=True),
        ),
        NamedStyle("Text"),
        NamedStyle("Integer", number_format=INTEGER_FORMAT),
        NamedStyle("Money", number_format=MONEY_FORMAT),
        NamedStyle("Share", number_format=PERCENT_FORMAT),
        NamedStyle("Rate", number_format=RATE_FORMAT),
        NamedStyle("Date", number_format=DATE_FORMAT),
        NamedStyle("Total Text", font=bold, border=rule),
        NamedStyle("Total Integer", font=bold, border=rule, number_format=INTEGER_FORMAT),
        NamedStyle("Total Money", font=bold, border=rule, number_format=MONEY_FORMAT),
        NamedStyle("Total Share", font=bold, border=rule, number_format=PERCENT_FORMAT),
        NamedStyle("Total Rate", font=bold, border=rule, number_format=RATE_FORMAT),
        NamedStyle("Total Date", font=bold, border=rule, number_format=DATE_FORMAT),
        NamedStyle("Statement Title", font=Font(bold=True, size=TITLE_SIZE)),
        NamedStyle("Statement Label", font=bold),
    ]


def _style_ids(worksheet: Any) -> _Styles:
    """Cell style ids (``s=``) as openpyxl registers them for our named styles."""

    def style_id(name: str, quoted: bool = False) -> int:
        cell = WriteOnlyCell(worksheet)
        cell.style = name
        if quoted:
            cell.quotePrefix = True
        return int(cell.style_id)

    def family(prefix: str) -> StyleIds:
        return StyleIds(
            text=style_id(f"{prefix}Text"),
            quoted=style_id(f"{prefix}Text", quoted=True),
            integer=style_id(f"{prefix}Integer"),
            money=style_id(f"{prefix}Money"),
            share=style_id(f"{prefix}Share"),
            rate=style_id(f"{prefix}Rate"),
            date=style_id(f"{prefix}Date"),
        )

    return _Styles(
        header=style_id("Header"),
        title=style_id("Statement Title"),
        label=style_id("Statement Label"),
        body=family(""),
        total=family("Total "),
    )


def _lay_out(worksheet: Any, sheet: Sheet, footer: str) -> None:
    last = get_column_letter(max(len(sheet.columns), 1))
    for index, width in enumerate(_widths(sheet), start=1):
        worksheet.column_dimensions[get_column_letter(index)].width = width
    header = sheet.header_row
    worksheet.freeze_panes = f"A{header + 1}"
    worksheet.auto_filter.ref = f"A{header}:{last}{header + len(sheet.rows)}"
    _print_setup(worksheet, header, footer)


def _print_setup(worksheet: Any, header: int, footer: str) -> None:
    """Landscape, one page wide (as many pages tall as needed), the table header on every
    page, and the footer a filed printout needs to be traced back to its statement."""
    worksheet.page_setup.orientation = "landscape"
    worksheet.page_setup.fitToWidth = 1
    worksheet.page_setup.fitToHeight = 0
    worksheet.sheet_properties.pageSetUpPr.fitToPage = True
    worksheet.print_title_rows = f"{header}:{header}"
    worksheet.oddFooter.left.text = footer.replace("&", "&&") or None
    worksheet.oddFooter.right.text = PAGE_FOOTER_RIGHT


def _widths(sheet: Sheet) -> list[int]:
    """Widest shown value per column (header plus filter button, text, formatted numbers)."""
    rows = [*sheet.rows, *sheet.footer]
    by_column = list(zip(*rows, strict=True)) if rows else [()] * len(sheet.columns)
    labels = tuple(row[0] for row in sheet.title_block[1:] if row)
    widths = []
    for index, column in enumerate(sheet.columns):
        values = by_column[index] + labels if index == 0 else by_column[index]
        kinds = set(map(type, values))
        shown = [len(column.header) + FILTER_BUTTON_WIDTH]
        if any(issubclass(kind, str) for kind in kinds):
            shown.append(max(map(len, _of_kind(values, kinds, str))))
        if any(issubclass(kind, date) for kind in kinds):
            shown.append(len(DATE_FORMAT))
        if any(issubclass(kind, int | Decimal) for kind in kinds):
            numbers = _of_kind(values, kinds, int | Decimal)
            shown += [_shown_length(max(numbers), column), _shown_length(min(numbers), column)]
        if index:
            shown += _title_numbers(sheet, index)
        widths.append(min(max(max(shown) + 1, MIN_WIDTH), MAX_WIDTH))
    return widths


def _of_kind(values: Sequence[Any], kinds: set[type], wanted: Any) -> Sequence[Any]:
    """The ``values`` that are instances of ``wanted``, in order: ``values`` themselves when
    all are (``kinds`` holds their types), so a column of one type is not filtered."""
    if all(issubclass(kind, wanted) for kind in kinds):
        return values
    return [value for value in values if isinstance(value, wanted)]


def _title_numbers(sheet: Sheet, index: int) -> list[int]:
    """Shown lengths of the title block's numbers in column ``index``: a number does not
    overflow into the next cell as text does, so its column must fit it."""
    lengths = []
    for row in sheet.title_block[1:]:
        value = row[index] if index < len(row) else None
        kind = value.kind if isinstance(value, Figure) else ""
        number = value.value if isinstance(value, Figure) else value
        if isinstance(number, int | Decimal):
            column = Column("", percent=kind == "share", rate=kind == "rate")
            lengths.append(_shown_length(number, column))
    return lengths


def _shown_length(value: int | Decimal, column: Column) -> int:
    if column.percent:
        return len(f"{value * 100:,.2f}%")
    if column.rate:
        return len(f"{value:,.4f}")
    if isinstance(value, int):
        return len(f"{value:,}")
    return len(f"{value:,.2f}")


def _pin_properties(workbook: Any, info: DocumentInfo) -> None:
    moment = info.moment.astimezone(UTC).replace(tzinfo=None) if info.moment.tzinfo else info.moment
    properties = workbook.properties
    properties.title = info.title
    properties.subject = info.subject
    properties.creator = info.creator
    properties.keywords = info.keywords or None
    properties.lastModifiedBy = info.creator
    properties.created = moment
    properties.modified = moment


def _sheet_rows(sheet: Sheet, styles: _Styles) -> Iterator[bytes]:
    letters = [get_column_letter(index) for index in range(1, len(sheet.columns) + 1)]
    kinds = [_kind(column) for column in sheet.columns]
    number = sheet.header_row
    header = "".join(
        f'<c r="{letter}{number}" s="{styles.header}" t="inlineStr">'
        f"<is>{text(column.header)}</is></c>"
        for letter, column in zip(letters, sheet.columns, strict=True)
    )
    chunk = [*_title_block(sheet, styles), f'<row r="{number}">{header}</row>']
    for family, rows in ((styles.body, sheet.rows), (styles.total, sheet.footer)):
        cells = RowCells(sheet.title, letters, kinds, family)
        start = 0
        while start < len(rows):
            part = rows[start : start + max(ROWS_PER_CHUNK - len(chunk), 1)]
            chunk += cells.rows(number + 1, part)
            number += len(part)
            start += len(part)
            if len(chunk) >= ROWS_PER_CHUNK:
                yield _encode(chunk, sheet.title)
                chunk = []
    yield _encode(chunk, sheet.title)


def _check_rows(sheet: Sheet) -> None:
    """Every table and footer row has one value per column (before anything is laid out)."""
    expected = len(sheet.columns)
    for number, values in enumerate([*sheet.rows, *sheet.footer], start=sheet.header_row + 1):
        if len(values) != expected:
            raise ValueError(
                f"sheet {sheet.title!r} row {number}: {len(values)} values for {expected} columns"
            )


def _title_block(sheet: Sheet, styles: _Styles) -> Iterator[str]:
    """The title block's rows: the first cell of the first row in the title style, the first
    cell of each other row (its label) bold, values in the body styles."""
    for number, values in enumerate(sheet.title_block, start=1):
        lead, *rest = values or [None]
        style = styles.title if number == 1 else styles.label
        cells = (
            [] if not isinstance(lead, str) or not lead else [text_cell(f"A{number}", lead, style)]
        )
        for index, value in enumerate(rest, start=2):
            kind = value.kind if isinstance(value, Figure) else ""
            plain = value.value if isinstance(value, Figure) else value
            reference = f"{get_column_letter(index)}{number}"
            cell = xml_cell(reference, plain, kind, styles.body, sheet.title)
            if cell:
                cells.append(cell)
        yield f'<row r="{number}">{"".join(cells)}</row>'


def _kind(column: Column) -> str:
    return "share" if column.percent else "rate" if column.rate else ""


def _encode(chunk: list[str], title: str) -> bytes:
    xml = "".join(chunk)
    bad = ILLEGAL_XML.search(xml)
    if bad:
        start = xml.rfind('<row r="', 0, bad.start()) + len('<row r="')
        row = xml[start : xml.index('"', start)]
        raise ValueError(
            f"sheet {title!r} row {row}: control character U+{ord(bad.group()):04X} cannot be "
            "stored in a workbook; remove it at the source"
        )
    return xml.encode("utf-8")


class _MemorySheetWriter(WorksheetWriter):  # type: ignore[misc]
    """openpyxl's writer of a write-only sheet's XML, into memory: by default it writes each
    sheet (here only its scaffold, a few hundred bytes) to a temporary file that the zip
    then reads back and removes, a file created and deleted per sheet, 400 sheets a run."""

    def __init__(self, worksheet: Any) -> None:
        super().__init__(worksheet, out=BytesIO())

    @classmethod
    def attach(cls, worksheet: Any) -> None:
        """What ``WriteOnlyWorksheet._get_writer`` does when the sheet is saved (after its
        layout and charts), with this writer: its XML is the same."""
        worksheet._writer = cls(worksheet)
        worksheet._writer.write_top()

    def cleanup(self) -> None:
        """Nothing to remove."""


class _RowStreamingZip(DeterministicZipFile):
    """Fills each empty ``<sheetData>`` openpyxl wrote with the rows of its ``Sheet``."""

    def __init__(
        self,
        file: Path | IO[bytes],
        date_time: tuple[int, int, int, int, int, int],
        streams: dict[str, Callable[[], Iterable[bytes]]],
    ) -> None:
        super().__init__(file, date_time)
        self._streams = dict(streams)

    @property
    def unwritten(self) -> list[str]:
        return sorted(self._streams)

    def content(self, name: str, source: IO[bytes]) -> Iterable[bytes]:
        stream = self._streams.pop(name, None)
        if stream is None:
            yield from super().content(name, source)
            return
        scaffold = source.read()
        for marker in EMPTY_SHEET_DATA:
            head, found, tail = scaffold.partition(marker)
            if found and marker not in tail:
                break
        else:
            raise RuntimeError(
                f"{name}: no single empty <sheetData> to fill; unsupported openpyxl output"
            )
        yield head + b"<sheetData>"
        yield from stream()
        yield b"</sheetData>" + tail
