from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vapi_chargeback.statements.workbook import (
    Column,
    DocumentInfo,
    Sheet,
    safe_sheet_titles,
    write_workbook,
)

INFO = DocumentInfo(
    "Title", "Subject", "vapi-chargeback", datetime(2026, 11, 1, 5, 6, 7, tzinfo=UTC)
)


def _table() -> Sheet:
    return Sheet(
        "Detail",
        [Column("Name"), Column("Calls"), Column("Cost (USD)"), Column("Share", percent=True)],
        [
            ["alpha", 1200, Decimal("1234.50"), Decimal("0.25")],
            [" spaced & <b> ", None, Decimal("-0.01"), None],
        ],
        footer=[["Total", 1200, Decimal("1234.49"), Decimal("1")]],
    )


def _open(sheets: list[Sheet]) -> openpyxl.Workbook:
    buffer = io.BytesIO()
    write_workbook(buffer, sheets, INFO)
    buffer.seek(0)
    return openpyxl.load_workbook(buffer)


def test_cells_keep_type_value_and_number_format() -> None:
    sheet = _open([_table()])["Detail"]

    assert [cell.value for cell in sheet[1]] == ["Name", "Calls", "Cost (USD)", "Share"]
    assert [(c.value, c.data_type, c.number_format) for c in sheet[2]] == [
        ("alpha", "s", "General"),
        (1200, "n", "#,##0"),
        (1234.5, "n", "#,##0.00"),
        (0.25, "n", "0.00%"),
    ]
    assert sheet["A3"].value == " spaced & <b> "
    assert sheet["B3"].value is None
    assert sheet["C3"].value == -0.01


def test_header_frozen_filtered_and_totals_bold_outside_the_filter() -> None:
    sheet = _open([_table()])["Detail"]

    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:D3"
    assert sheet["A1"].style == "Header"
    assert sheet["A4"].value == "Total"
    assert all(cell.font.b for cell in sheet[4])
    assert sheet["C4"].style == "Total Money"


def test_a_title_block_sits_above_the_table_which_keeps_its_filter_and_frozen_header() -> None:
    table = _table()
    titled = Sheet(
        table.title,
        table.columns,
        table.rows,
        table.footer,
        title_block=[
            ["Chargeback statement 2026-10, a title longer than any column"],
            ["Statement ID", "VAPI-2026-10-ORG-v1"],
            ["Version", 2],
        ],
    )
    sheet = _open([titled])["Detail"]

    assert titled.header_row == 5
    assert [sheet.cell(row, 1).value for row in range(1, 9)] == [
        "Chargeback statement 2026-10, a title longer than any column",
        "Statement ID",
        "Version",
        None,
        "Name",
        "alpha",
        " spaced & <b> ",
        "Total",
    ]
    assert (sheet["A1"].style, sheet["A2"].style, sheet["B2"].style) == (
        "Statement Title",
        "Statement Label",
        "Text",
    )
    assert sheet["A1"].font.b and sheet["A1"].font.sz == 14
    assert (sheet["B3"].value, sheet["B3"].number_format) == (2, "#,##0")
    assert sheet.freeze_panes == "A6", "title block and header stay in view"
    assert sheet.auto_filter.ref == "A5:D7", "the filter covers the table only"
    assert sheet["A5"].style == "Header"
    assert sheet["C8"].style == "Total Money"
    width = sheet.column_dimensions["A"].width
    assert len("Statement ID") < width < len(str(sheet["A1"].value)), (
        "labels count for the width; the title overflows into the empty cells beside it"
    )


def test_keywords_are_pinned_with_the_other_properties() -> None:
    buffer = io.BytesIO()
    info = DocumentInfo("T", "S", "vapi-chargeback", INFO.moment, keywords="DRAFT, X-1")
    write_workbook(buffer, [_table()], info)
    buffer.seek(0)

    assert openpyxl.load_workbook(buffer).properties.keywords == "DRAFT, X-1"
    assert _open([_table()]).properties.keywords is None, "none unless given"


def test_named_styles_registered_once() -> None:
    workbook = _open([_table(), Sheet("Other", [Column("A")], [["x"]])])

    assert sorted(workbook.named_styles) == sorted(set(workbook.named_styles))
    assert {"Header", "Money", "Integer", "Share", "Total Money"} <= set(workbook.named_styles)


def test_column_widths_fit_the_widest_shown_value() -> None:
    sheet = _open([_table()])["Detail"]

    assert sheet.column_dimensions["A"].width == len(" spaced & <b> ") + 1
    assert sheet.column_dimensions["C"].width == len("Cost (USD)") + 3 + 1


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("=1+1", id="equals"),
        pytest.param('=HYPERLINK("http://x","y")', id="hyperlink"),
        pytest.param("+41 44", id="plus"),
        pytest.param("-2+3", id="minus"),
        pytest.param("@SUM(A1:A2)", id="at"),
        pytest.param("\t=1", id="tab"),
        pytest.param("\r=1", id="carriage-return"),
    ],
)
def test_formula_like_text_is_stored_as_quoted_text(text: str) -> None:
    buffer = io.BytesIO()
    write_workbook(buffer, [Sheet("S", [Column("Team")], [[text]])], INFO)
    xml = zipfile.ZipFile(buffer).read("xl/worksheets/sheet1.xml")
    buffer.seek(0)
    cell = openpyxl.load_workbook(buffer)["S"]["A2"]

    assert b"<f>" not in xml
    assert cell.data_type == "s"
    assert cell.value == text
    assert cell.quotePrefix is True


def test_same_input_gives_the_same_bytes_whatever_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = io.BytesIO()
    write_workbook(first, [_table()], INFO)
    monkeypatch.setattr("time.time", lambda: 2_000_000_000.0)
    second = io.BytesIO()
    write_workbook(second, [_table()], INFO)

    assert first.getvalue() == second.getvalue()
    archive = zipfile.ZipFile(first)
    assert {info.date_time for info in archive.infolist()} == {(2026, 11, 1, 5, 6, 6)}
    core = archive.read("docProps/core.xml").decode()
    assert core.count("2026-11-01T05:06:07Z") == 2
    assert "vapi-chargeback" in core


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        pytest.param(["a/b:c*d?e[f]g\\h"], ["a b c d e f g h"], id="forbidden-characters"),
        pytest.param(["x" * 40], ["x" * 31], id="truncated-to-31"),
        pytest.param(["Summary", "summary"], ["Summary", "summary (2)"], id="case-blind-duplicate"),
        pytest.param(
            ["y" * 40, "y" * 40], ["y" * 31, "y" * 27 + " (2)"], id="duplicate-after-truncation"
        ),
        pytest.param(["'quoted'"], ["quoted"], id="no-edge-apostrophes"),
        pytest.param(["History"], ["History sheet"], id="reserved-name"),
        pytest.param(["///"], ["Sheet"], id="nothing-left"),
        pytest.param(["a\tb\nc"], ["a b c"], id="control-characters"),
    ],
)
def test_safe_sheet_titles(wanted: list[str], expected: list[str]) -> None:
    assert safe_sheet_titles(wanted) == expected


@pytest.mark.parametrize(
    ("sheets", "error", "message"),
    [
        pytest.param([], ValueError, "at least one sheet", id="no-sheets"),
        pytest.param(
            [Sheet("a/b", [Column("A")], [])], ValueError, "Excel-safe", id="unsafe-title"
        ),
        pytest.param(
            [Sheet("S", [Column("A")], [["x", "y"]])],
            ValueError,
            "2 values for 1 columns",
            id="ragged-row",
        ),
        pytest.param(
            [Sheet("S", [Column("A")], [["bad\x01"]])],
            ValueError,
            r"row 2: control character U\+0001",
            id="control-character",
        ),
        pytest.param([Sheet("S", [Column("A")], [[1.5]])], TypeError, "float", id="float-refused"),
        pytest.param(
            [Sheet("S", [Column("A")], [[Decimal("NaN")]])], ValueError, "finite", id="nan-refused"
        ),
    ],
)
def test_bad_sheets_are_refused_naming_the_place(
    sheets: list[Sheet], error: type[Exception], message: str, tmp_path: Path
) -> None:
    with pytest.raises(error, match=message):
        write_workbook(tmp_path / "x.xlsx", sheets, INFO)


ESCAPE_LOOKALIKE = re.compile("_x[0-9A-Fa-f]{4}_")
WORKBOOK_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\ufffe\uffff",
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(WORKBOOK_TEXT, min_size=1, max_size=5))
def test_any_text_reads_back_unchanged(texts: list[str]) -> None:
    assume(not any(ESCAPE_LOOKALIKE.search(text) for text in texts))
    rows = [[text] for text in texts]
    sheet = _open([Sheet("S", [Column("Text")], rows)])["S"]

    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == texts


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        pytest.param("_x0041_", b"<t>_x005F_x0041_</t>", id="escape-lookalike"),
        pytest.param("a_x000D_b_x", b"<t>a_x005F_x000D_b_x</t>", id="cr-lookalike"),
        pytest.param("tax_xyz", b"<t>tax_xyz</t>", id="not-a-lookalike"),
    ],
)
def test_ooxml_escape_lookalikes_are_stored_escaped(text: str, stored: bytes) -> None:
    """Excel decodes ``_xHHHH_`` in cell text (ECMA-376 ST_Xstring); openpyxl does not."""
    buffer = io.BytesIO()
    write_workbook(buffer, [Sheet("S", [Column("Team")], [[text]])], INFO)

    assert stored in zipfile.ZipFile(buffer).read("xl/worksheets/sheet1.xml")


def test_a_chart_hook_anchors_a_native_chart_that_references_the_sheet_rows() -> None:
    from openpyxl.chart import BarChart, Reference

    def bar(worksheet: object, sheet: Sheet) -> None:
        chart = BarChart()
        first, last = sheet.header_row + 1, sheet.header_row + len(sheet.rows)
        chart.add_data(Reference(worksheet, min_col=3, min_row=first, max_row=last))
        worksheet.add_chart(chart, "F2")  # type: ignore[attr-defined]

    table = _table()
    buffer = io.BytesIO()
    write_workbook(buffer, [Sheet(table.title, table.columns, table.rows, charts=[bar])], INFO)

    names = zipfile.ZipFile(buffer).namelist()
    chart_xml = zipfile.ZipFile(buffer).read("xl/charts/chart1.xml").decode()
    assert "xl/drawings/drawing1.xml" in names
    assert "'Detail'!$C$2:$C$3" in chart_xml
    assert _open([table])["Detail"]["C2"].value == 1234.5
