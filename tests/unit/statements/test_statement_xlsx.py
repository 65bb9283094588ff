from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from vapi_chargeback.statement import UNALLOCATED, Statement
from vapi_chargeback.statements.totals import summarize
from vapi_chargeback.statements.xlsx import (
    cost_center_workbook_name,
    statement_workbook_name,
    write_cost_center_workbook,
    write_statement_workbook,
)


def _values(sheet: openpyxl.worksheet.worksheet.Worksheet) -> list[list[object]]:
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


@pytest.fixture
def finance(statement: Statement, tmp_path: Path) -> openpyxl.Workbook:
    path = tmp_path / statement_workbook_name(statement.period)
    assert write_statement_workbook(statement, summarize(statement), path) == len(statement.lines)
    return openpyxl.load_workbook(path)


@pytest.fixture
def owner(statement: Statement, tmp_path: Path) -> openpyxl.Workbook:
    center = statement.cost_centers[0]
    lines = summarize(statement).lines_by_center[center.id]
    path = tmp_path / cost_center_workbook_name(center.id, statement.period)
    path.parent.mkdir()
    assert write_cost_center_workbook(statement, center, lines, path) == 2
    return openpyxl.load_workbook(path)


def test_finance_workbook_sheets(finance: openpyxl.Workbook) -> None:
    assert finance.sheetnames == ["Summary", "Detail", "Unallocated", "Reconciliation", "About"]
    for sheet in finance.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        assert sheet.auto_filter.ref.startswith("A1:"), sheet.title
        assert sheet["A1"].style == "Header", sheet.title


def test_summary_by_cost_center_with_totals_and_share_allocated(finance: openpyxl.Workbook) -> None:
    summary = finance["Summary"]
    rows = _values(summary)

    assert rows[0] == [
        "Cost center ID", "Cost center", "Owner", "Calls", "Minutes", "Cost (USD)",
        "LLM (USD)", "STT (USD)", "TTS (USD)", "Other (USD)", "Shared (USD)", "% of total",
    ]  # fmt: skip
    assert rows[1] == [
        "sales",
        "Sales",
        "sales-lead@example.com",
        120,
        300.5,
        107,
        40,
        10,
        20,
        37,
        7,
        0.586301,
    ]
    assert rows[2][:6] == ["support", "Support, 1st level", "support@example.com", 30, 61.33, 45]
    assert rows[3][:6] == [UNALLOCATED, "Unallocated", None, 13, 30, 30.5]
    assert rows[4][:6] == ["Total", None, None, 163, 391.83, 182.5]
    assert rows[4][-1] == 1
    assert rows[5][0] == "Allocated to cost centers (% allocated)"
    assert (rows[5][5], rows[5][-1]) == (152, 0.832877)
    assert (rows[6][0], rows[6][5], rows[6][-1]) == ("Unallocated", 30.5, 0.167123)
    assert summary.auto_filter.ref == "A1:L4"
    assert summary["F2"].number_format == "#,##0.00"
    assert summary["D2"].number_format == "#,##0"
    assert summary["L2"].number_format == "0.00%"
    assert summary["F5"].font.b


def test_detail_lists_every_line_with_money_as_numbers(
    statement: Statement, finance: openpyxl.Workbook
) -> None:
    detail = finance["Detail"]
    rows = _values(detail)

    assert len(rows) == 1 + len(statement.lines) + 1
    assert rows[1] == [
        "sales",
        "Sales",
        "emea",
        "asst-1",
        "direct",
        120,
        300.5,
        100,
        40,
        10,
        20,
        30,
    ]
    assert rows[3][2] == "=cmd"
    assert detail["C4"].data_type == "s"
    assert detail["C4"].quotePrefix
    assert detail["G4"].value == 61.33
    assert all(
        cell.data_type == "n" and cell.number_format == "#,##0.00" for cell in detail["H"][1:]
    )
    assert rows[-1][0] == "Total"
    assert rows[-1][7] == 182.5
    assert detail.auto_filter.ref == f"A1:L{len(statement.lines) + 1}"


def test_unallocated_lines_carry_their_reason_explained(finance: openpyxl.Workbook) -> None:
    rows = _values(finance["Unallocated"])

    assert [row[0] for row in rows[1:3]] == ["no-assistant", "unmapped-assistant"]
    assert "all-zero id" in str(rows[1][1])
    assert "no team mapping" in str(rows[2][1])
    assert rows[2][2] == "asst-9"
    assert rows[3][0] == "Total"
    assert rows[3][5] == 30.5


def test_reconciliation_sheet(finance: openpyxl.Workbook) -> None:
    rows = dict((row[0], row[1]) for row in _values(finance["Reconciliation"])[1:])

    assert rows == {
        "Org total (independent ungrouped query)": 170.5,
        "Shared costs": 12,
        "Expected total (org + shared)": 182.5,
        "Statement lines total": 182.5,
        "Difference (lines − expected)": 0,
        "Result": "OK",
    }


def test_about_sheet_carries_provenance(finance: openpyxl.Workbook, statement: Statement) -> None:
    about = dict((row[0], row[1]) for row in _values(finance["About"])[1:])

    assert about["Period"] == "2026-10"
    assert about["Time zone"] == "Europe/Berlin"
    assert about["Period start"] == "2026-10-01T00:00:00+02:00"
    assert about["Period end (exclusive)"] == "2026-11-01T00:00:00+01:00"
    assert about["Currency"] == "USD"
    assert "Run ID" not in about, (
        "the run id lives in manifest.json only: reruns stay byte-identical"
    )
    assert (
        about["Inputs sha256"] == statement.provenance.inputs_sha256
        if statement.provenance
        else None
    )
    assert about["Config sha256"] == "a" * 64
    assert about["Mapping sha256"] == "b" * 64
    assert about["Response batch-0.json sha256"] == "c" * 64
    assert about["Generated by"] == "vapi-chargeback 0.1.0"


def test_document_properties_are_pinned_to_the_period(finance: openpyxl.Workbook) -> None:
    assert finance.properties.creator == "vapi-chargeback"
    assert str(finance.properties.created) == "2026-10-31 23:00:00"
    assert finance.properties.modified == finance.properties.created


def test_owner_workbook_sheets_include_one_per_breakdown(owner: openpyxl.Workbook) -> None:
    assert owner.sheetnames == [
        "Summary",
        "Detail",
        "Shared costs",
        "Cost by assistant day all",
        "Summary (2)",
        "About",
    ]
    assert all(len(name) <= 31 for name in owner.sheetnames)


def test_owner_workbook_contents(owner: openpyxl.Workbook) -> None:
    summary = _values(owner["Summary"])
    assert summary[1] == ["emea", "direct", 120, 300.5, 100, 40, 10, 20, 30]
    assert summary[2][:5] == [None, "shared:platform", 0, 0, 7]
    assert summary[3][:5] == ["Total", None, 120, 300.5, 107]
    assert _values(owner["Detail"])[1] == ["emea", "asst-1", 120, 300.5, 100, 40, 10, 20, 30]
    assert _values(owner["Shared costs"])[1][:6] == ["platform", None, None, 0, 0, 7]
    by_day = owner["Cost by assistant day all"]
    assert _values(by_day) == [
        ["day", "assistant", "cost_usd"],
        ["2026-10-01", "asst-1", 60],
        ["2026-10-02", "asst-1", 40],
    ]
    assert by_day["C2"].number_format == "#,##0.00"
    reasons = owner["Summary (2)"]
    assert reasons["B2"].number_format == "#,##0"
    assert reasons["A3"].value == "-1"
    assert reasons["A3"].data_type == "s"
    about = dict((row[0], row[1]) for row in _values(owner["About"])[1:])
    assert about["Owner"] == "sales-lead@example.com"


def test_same_statement_gives_byte_identical_workbooks(
    statement: Statement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    totals = summarize(statement)
    first, second = tmp_path / "first.xlsx", tmp_path / "second.xlsx"
    write_statement_workbook(statement, totals, first)
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    write_statement_workbook(statement, totals, second)

    assert first.read_bytes() == second.read_bytes()


def test_statement_without_reconciliation_or_provenance_says_so(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    statement = make_statement(reconciliation=None, provenance=None)
    path = tmp_path / "x.xlsx"
    write_statement_workbook(statement, summarize(statement), path)
    workbook = openpyxl.load_workbook(path)

    assert _values(workbook["Reconciliation"])[1] == [
        "Reconciliation",
        "not performed for this statement",
    ]
    assert ["Provenance", "not recorded for this statement"] in _values(workbook["About"])


def test_large_amounts_keep_their_cents(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    big = replace(make_statement().lines[0], cost_usd=Decimal("9999999999999.99"))
    statement = make_statement(lines=[big], reconciliation=None)
    path = tmp_path / "x.xlsx"
    write_statement_workbook(statement, summarize(statement), path)

    assert openpyxl.load_workbook(path)["Detail"]["H2"].value == 9999999999999.99


def test_shared_costs_sheet_has_no_note_column_when_no_pool_has_a_note(
    owner: openpyxl.Workbook,
) -> None:
    header = _values(owner["Shared costs"])[0]

    assert header[0] == "Pool"
    assert header[-1] == "Other (USD)"


def _owner_workbook(statement: Statement, tmp_path: Path) -> openpyxl.Workbook:
    center = statement.cost_centers[0]
    path = tmp_path / "owner.xlsx"
    lines = summarize(statement).lines_by_center[center.id]
    write_cost_center_workbook(statement, center, lines, path)
    return openpyxl.load_workbook(path)


def test_a_pool_note_sits_on_that_pools_rows_and_in_about(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    note = "Proportional to minutes, but minutes was zero for every cost center this month."
    base = make_statement()
    licences = replace(base.lines[1], allocation="shared:licences", cost_usd=Decimal("2.00"))
    statement = make_statement(
        lines=[*base.lines[:2], licences, *base.lines[2:]],
        pool_notes={"platform": note},
    )

    owner = _owner_workbook(statement, tmp_path)

    rows = _values(owner["Shared costs"])
    assert rows[0][-1] == "Note"
    assert [(row[0], row[5], row[-1]) for row in rows[1:]] == [
        ("platform", 7, note),
        ("licences", 2, None),
        ("Total", 9, None),
    ]
    assert ["Shared pool platform", note] in _values(owner["About"])
    finance = tmp_path / "finance.xlsx"
    write_statement_workbook(statement, summarize(statement), finance)
    assert ["Shared pool platform", note] in _values(openpyxl.load_workbook(finance)["About"])


def test_a_note_of_a_pool_the_owner_has_no_share_of_adds_no_column(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    statement = make_statement(pool_notes={"elsewhere": "split evenly"})

    owner = _owner_workbook(statement, tmp_path)

    assert _values(owner["Shared costs"])[0][-1] == "Other (USD)"
