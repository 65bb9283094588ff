"""The Variance sheet: what it says without a previous month, and that its rows add up."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal

from openpyxl import load_workbook

from vapi_chargeback.statement import UNALLOCATED, PreviousMonth, Statement
from vapi_chargeback.statements.variance_sheet import EFFECT_HEADERS, OTHER_ROW, variance_sheet
from vapi_chargeback.statements.workbook import DocumentInfo, Sheet, write_workbook

from support.statement_samples import line, sample_statement

D = Decimal
SEPTEMBER = [
    # asst-1: same calls and minutes, dearer minutes in October (100.00 vs 80.00): rate only.
    line("sales", "Sales", "emea", "asst-1", "direct", 120, "300.5", "80.00", ("1", "1", "1")),
    line("sales", "Sales", "emea", "asst-7", "direct", 4, "8", "6.00", ("1", "1", "1")),
    line("sales", "Sales", "", "", "shared:platform", 0, "0", "6.00", ("0", "0", "0")),
    line("support", "Support", "", "asst-2", "direct", 15, "30.67", "15.00", ("1", "1", "1")),
    line(
        UNALLOCATED, "Unallocated", "", "", "unallocated:no-assistant", 1, "1", "1.00", ("0",) * 3
    ),
]


def with_previous() -> Statement:
    previous = PreviousMonth("2026-09", SEPTEMBER, "VAPI-2026-09-ORG-v1", "final")
    return sample_statement(previous=previous)


def column(sheet: Sheet, header: str) -> int:
    return [item.header for item in sheet.columns].index(header)


def effects_add_up(sheet: Sheet, values: list[object]) -> bool:
    delta = values[column(sheet, "Δ (USD)")]
    parts = [values[column(sheet, header)] for header in EFFECT_HEADERS]
    return sum(parts, D(0)) == delta


def test_without_a_previous_month_the_sheet_says_so_in_one_row() -> None:
    sheet = variance_sheet(sample_statement(), None)

    assert sheet.title == "Variance"
    assert len(sheet.rows) == 1 and not sheet.footer
    assert "No previous month to compare with: 2026-09" in str(sheet.rows[0][0])
    assert variance_sheet(sample_statement(), "sales").rows == sheet.rows


def test_finance_sheet_cost_centers_add_up_to_the_total_and_name_the_method() -> None:
    sheet = variance_sheet(with_previous(), None)

    centers = [row for row in sheet.rows if row[0] == "Cost center"]
    assert [row[1] for row in centers] == ["sales", "support", UNALLOCATED]
    (total,) = sheet.footer
    for index in range(column(sheet, "Cost 2026-09 (USD)"), column(sheet, "Calls 2026-09")):
        assert sum((row[index] for row in centers), D(0)) == total[index]
    assert total[column(sheet, "Δ (USD)")] == D("182.50") - D("108.00")
    assert all(effects_add_up(sheet, row) for row in [*sheet.rows, total])
    labels = {row[0]: row[1] for row in sheet.title_block[1:]}
    assert "Shapley" in str(labels["Method"]) and "largest remainder" in str(labels["Method"])
    assert labels["Compared with"] == "VAPI-2026-09-ORG-v1 (final), as published"
    movers = [row for row in sheet.rows if row[0] == "Assistant"]
    assert movers[0][3] == "asst-2"  # 15.00 → 40.00, the largest |Δ|
    rate_only = next(row for row in movers if row[3] == "asst-1")
    assert rate_only[column(sheet, "Rate (USD)")] == D("20.00")
    assert (
        rate_only[column(sheet, "Volume (USD)")] == rate_only[column(sheet, "Duration (USD)")] == 0
    )
    gone = next(row for row in movers if row[3] == "asst-7")
    assert gone[column(sheet, "Gone (USD)")] == D("-6.00")
    assert gone[column(sheet, "Calls 2026-10")] is None


def test_owner_sheet_rows_add_up_to_their_cost_center() -> None:
    sheet = variance_sheet(with_previous(), "sales")

    assert [row[0] for row in sheet.rows] == ["asst-1", "asst-7", OTHER_ROW]
    (total,) = sheet.footer
    assert total[:2] == ["Total", "Sales"]
    for index in range(column(sheet, "Cost 2026-09 (USD)"), column(sheet, "Calls 2026-09")):
        assert sum((row[index] for row in sheet.rows), D(0)) == total[index]
    assert total[column(sheet, "Cost 2026-10 (USD)")] == D("107.00")
    assert total[column(sheet, "Pools & other (USD)")] == D("1.00")
    assert all(effects_add_up(sheet, row) for row in [*sheet.rows, total])


def test_the_sheet_writes_as_a_workbook_with_exact_rates() -> None:
    target = io.BytesIO()
    sheet = variance_sheet(with_previous(), None)
    info = DocumentInfo("t", "s", "test", datetime(2026, 11, 1))

    write_workbook(target, [sheet], info)

    cells = load_workbook(io.BytesIO(target.getvalue()))["Variance"]
    header = sheet.header_row
    assert cells.cell(header, 1).value == "Level"
    rate = cells.cell(header + 1, column(sheet, "$/min 2026-10") + 1)
    assert rate.value == 0.3327787022  # 100.00 / 300.50, kept to 10 places
    assert rate.number_format != "#,##0.00"
