"""Issue 18 on the workbooks: names beside ids, the charging rule, exact unit rates, the
reporting currency, print settings and query sheets, on hand-made statements."""

from __future__ import annotations

import weakref
import zipfile
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from vapi_chargeback.fx import convert
from vapi_chargeback.statement import Breakdown, FxRate, NamesSnapshot, Statement
from vapi_chargeback.statements.cells import VARIABLE_NOTE
from vapi_chargeback.statements.totals import summarize
from vapi_chargeback.statements.xlsx import write_cost_center_workbook, write_statement_workbook

from support.statement_samples import sample_statement

D = Decimal
EUR = FxRate("EUR", D("0.9123"), date(2026, 10, 30), "month_end", "rates.csv (sha256 ab12)", 2)


def _write(statement: Statement, tmp_path: Path, center: int | None = None) -> Path:
    if center is None:
        path = tmp_path / "finance.xlsx"
        write_statement_workbook(statement, summarize(statement), path)
        return path
    info = statement.cost_centers[center]
    path = tmp_path / f"{info.id}.xlsx"
    write_cost_center_workbook(statement, info, summarize(statement).lines_by_center[info.id], path)
    return path


def _rows(path: Path, sheet: str) -> list[list[object]]:
    return [[cell.value for cell in row] for row in openpyxl.load_workbook(path)[sheet].iter_rows()]


def _table(path: Path, sheet: str) -> list[list[object]]:
    worksheet = openpyxl.load_workbook(path)[sheet]
    header = int(worksheet.auto_filter.ref.split(":")[0][1:])
    return _rows(path, sheet)[header - 1 :]


def _labelled(path: Path, sheet: str) -> dict[object, list[object]]:
    return {row[0]: row[1:] for row in _rows(path, sheet) if row and row[0] is not None}


def _variable_charged() -> Statement:
    """Sales' line charged by the mapping; support's by the call's cost-center variable,
    with an assistant the names snapshot names."""
    base = sample_statement()
    lines = list(base.lines)
    lines[0] = replace(lines[0], charged_by="mapping", successful_calls=96)
    lines[2] = replace(lines[2], charged_by="variable", successful_calls=0)
    names = NamesSnapshot(
        {"asst-1": "Sales bot", "asst-2": "Outbound EMEA", "asst-9": "Old bot"},
        {"asst-1": "api", "asst-2": "mapping", "asst-9": "earlier:2026-09"},
        "e" * 64,
    )
    return sample_statement(lines=lines, names=names)


def test_each_line_says_which_rule_charged_it(tmp_path: Path) -> None:
    detail = _table(_write(_variable_charged(), tmp_path), "Detail")
    header = detail[0]
    rule, allocation = header.index("Charged by"), header.index("Allocation")

    assert [(row[allocation], row[rule]) for row in detail[1:-1]] == [
        ("direct", "Assistant mapping"),
        ("shared:platform", None),
        ("direct", "Cost-center variable"),
        ("shared:platform", None),
        ("unallocated:no-assistant", None),
        ("unallocated:unmapped-assistant", None),
    ]


def test_an_owner_with_variable_charged_lines_reads_why_on_summary_and_detail(
    tmp_path: Path,
) -> None:
    support = _write(_variable_charged(), tmp_path, center=1)
    sales = _write(_variable_charged(), tmp_path, center=0)

    assert _labelled(support, "Summary")["Note"][0] == VARIABLE_NOTE
    detail = _rows(support, "Detail")
    assert detail[1] == ["Note", VARIABLE_NOTE, *[None] * (len(detail[1]) - 2)]
    table = _table(support, "Detail")
    assert table[1][:4] == ["=cmd", "asst-2", "Outbound EMEA", "Cost-center variable"]
    assert "Note" not in _labelled(sales, "Summary"), "no variable-charged line, no note"
    assert _rows(sales, "Detail")[0][0] == "Team", "and no title block above the table"


def test_names_sit_beside_ids_on_every_sheet_that_lists_assistants(tmp_path: Path) -> None:
    statement = _variable_charged()
    finance, owner = _write(statement, tmp_path), _write(statement, tmp_path, center=0)

    def names(path: Path, sheet: str) -> set[tuple[object, object]]:
        table = _table(path, sheet)
        column = table[0].index("Assistant ID")
        return {(row[column], row[column + 1]) for row in table[1:] if row[column]}

    assert names(finance, "Detail") == {
        ("asst-1", "Sales bot"),
        ("asst-2", "Outbound EMEA"),
        ("asst-9", "Old bot"),
    }
    assert ("asst-9", "Old bot") in names(finance, "Unallocated")
    assert ("asst-1", "Sales bot") in names(finance, "Assistants")
    assert names(owner, "Detail") == {("asst-1", "Sales bot")}
    assert names(owner, "Cost by assistant day all") == {("asst-1", "Sales bot")}


def test_unit_costs_per_cost_center_and_assistant_with_successful_calls(tmp_path: Path) -> None:
    statement = _variable_charged()
    finance = _write(statement, tmp_path)

    summary = _table(finance, "Summary")
    header = summary[0]
    per_success = header.index("$ per successful call")
    by_center = {row[0]: row for row in summary[1:]}
    assert by_center["sales"][per_success] == pytest.approx(100 / 96)
    assert by_center["support"][per_success] is None, "zero successful calls: blank"
    assistants = _table(finance, "Assistants")
    assert assistants[1][:4] == ["sales", "Sales", "asst-1", "Sales bot"]
    assert assistants[1][7] == 96
    support = _write(statement, tmp_path, center=1)
    assert _labelled(support, "Summary")["$ per successful call"][0] == "no successful calls"


def test_unit_rates_are_stored_exact_and_rounded_only_by_the_format(tmp_path: Path) -> None:
    base = sample_statement()
    rated = replace(
        base.lines[0],
        minutes=D("100"),
        cost_usd=D("10.24"),
        components_usd={"llm": D("10.24"), "stt": D("0"), "tts": D("0")},
    )
    path = _write(sample_statement(lines=[rated], reconciliation=None), tmp_path)

    worksheet = openpyxl.load_workbook(path)["Summary"]
    header = int(worksheet.auto_filter.ref.split(":")[0][1:])
    cell = worksheet.cell(header + 1, _table(path, "Summary")[0].index("$ per minute") + 1)
    assert (cell.value, cell.number_format) == (0.1024, "#,##0.0000")
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    assert "<v>0.1024</v>" in xml


def test_every_sheet_prints_landscape_one_page_wide_with_titles_and_a_footer(
    tmp_path: Path,
) -> None:
    statement = _variable_charged()
    for path, statement_id in (
        (_write(statement, tmp_path), "VAPI-2026-10-ORG-v1"),
        (_write(statement, tmp_path, center=0), "VAPI-2026-10-sales-v1"),
    ):
        for sheet in openpyxl.load_workbook(path).worksheets:
            header = sheet.auto_filter.ref.split(":")[0][1:]
            assert sheet.page_setup.orientation == "landscape", sheet.title
            assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0)
            assert sheet.sheet_properties.pageSetUpPr.fitToPage
            assert sheet.print_title_rows == f"${header}:${header}", sheet.title
            assert sheet.oddFooter.left.text == f"{statement_id} (DRAFT v1)"
            assert sheet.oddFooter.right.text == "page &P of &N"


def test_a_reporting_currency_shows_money_in_both_and_states_its_rate(tmp_path: Path) -> None:
    statement = sample_statement(fx=EUR)
    converted = convert(statement)
    assert converted is not None
    finance, owner = _write(statement, tmp_path), _write(statement, tmp_path, center=0)

    rate = "0.9123 EUR per USD of 2026-10-30 (month_end: rate of the last date on or before"
    for path in (finance, owner):
        assert str(_labelled(path, "Summary")["Exchange rate"][0]).startswith(rate)
        assert "source rates.csv (sha256 ab12)" in str(_labelled(path, "About")["Exchange rate"][0])
    assert _labelled(finance, "Summary")["Total (EUR)"][0] == float(converted.total)
    summary = _table(finance, "Summary")
    column = summary[0].index("Cost (EUR)")
    by_center = {row[0]: row[column] for row in summary[1:]}
    assert by_center["Total"] == float(converted.total)
    assert by_center["sales"] == float(converted.by_cost_center["sales"])
    detail = _table(finance, "Detail")
    column = detail[0].index("Cost (EUR)")
    assert [row[column] for row in detail[1:-1]] == [float(amount) for amount in converted.lines]
    sales = D(str(_labelled(owner, "Summary")["Total (EUR)"][0]))
    assert sales == converted.by_cost_center["sales"]


def test_a_query_sheets_total_row_is_its_footer(tmp_path: Path) -> None:
    breakdown = Breakdown(
        "by-week",
        "Cost by week",
        ["week", "success_evaluation", "cost_usd"],
        [
            [date(2026, 9, 28), "true", D("60.00")],
            ["2026-10-05", "(none)", D("40.00")],
        ],
        total=["Total", "", D("100.00")],
    )
    path = _write(sample_statement(breakdowns={"sales": [breakdown]}), tmp_path, center=0)

    sheet = openpyxl.load_workbook(path)["Cost by week"]
    assert [cell.value for cell in sheet[1]] == ["Week", "Success evaluation", "Cost (USD)"]
    assert sheet["A2"].number_format == sheet["A3"].number_format == "yyyy-mm-dd"
    assert sheet.auto_filter.ref == "A1:C3"
    assert sheet["A4"].value == "Total" and sheet["C4"].font.b


def test_workbooks_with_names_rates_and_a_previous_month_rewrite_byte_identical(
    tmp_path: Path,
) -> None:
    statement = replace(_variable_charged(), fx=EUR)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for center in (None, 0, 1):
        assert (
            _write(statement, first, center).read_bytes()
            == _write(statement, second, center).read_bytes()
        )


def test_a_statement_is_converted_once_for_all_its_workbooks_and_then_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vapi_chargeback.statements import cells

    calls: list[Statement] = []
    original = cells.convert

    def counting(statement: Statement) -> object:
        calls.append(statement)
        return original(statement)

    monkeypatch.setattr(cells, "convert", counting)
    statement = sample_statement(fx=EUR)
    for center in (None, 0, 1):
        _write(statement, tmp_path, center)
    assert len(calls) == 1
    other = sample_statement(fx=EUR)
    _write(other, tmp_path)
    assert len(calls) == 2, "an equal but different statement is converted anew"
    assert isinstance(cells._CONVERTED[0][0], weakref.ref), "the cache keeps no statement alive"
