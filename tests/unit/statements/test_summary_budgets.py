"""The monthly Summary with budgets: Budget and % of budget per cost center (finance), and
the owner's budget among the key figures; without budgets, nothing changes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import openpyxl

from vapi_chargeback.statement import UNALLOCATED, Statement
from vapi_chargeback.statements.totals import summarize
from vapi_chargeback.statements.xlsx import write_cost_center_workbook, write_statement_workbook


def _table(sheet) -> list[list[object]]:  # type: ignore[no-untyped-def]
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    start = int(sheet.auto_filter.ref.split(":")[0][1:])
    return rows[start - 1 :]


def _finance(statement: Statement, path: Path) -> openpyxl.worksheet.worksheet.Worksheet:
    write_statement_workbook(statement, summarize(statement), path)
    return openpyxl.load_workbook(path)["Summary"]


def test_finance_summary_gains_budget_and_share_of_budget(
    statement: Statement, tmp_path: Path
) -> None:
    plain = _table(_finance(statement, tmp_path / "plain.xlsx"))
    assert "Budget (USD)" not in plain[0]

    budgeted = replace(statement, budgets_usd={"sales": Decimal("100.00")})
    sheet = _finance(budgeted, tmp_path / "budget.xlsx")
    rows = _table(sheet)
    header = rows[0]
    at = header.index("Budget (USD)")
    assert header[at - 1 : at + 2] == ["% of total", "Budget (USD)", "% of budget"]
    by_center = {row[0]: row[at : at + 2] for row in rows[1:]}
    assert by_center["sales"] == [100, 1.07]  # 107.00 of 100.00
    assert by_center["support"] == [None, None]  # no budget
    assert by_center[UNALLOCATED] == [None, None]
    assert by_center["Total"] == [100, None]
    first = int(sheet.auto_filter.ref.split(":")[0][1:]) + 1
    column = openpyxl.utils.get_column_letter(at + 2)
    assert sheet[f"{column}{first}"].number_format == "0.00%"
    # Every other column is as it was: the budget columns are an insertion, nothing moved.
    assert [row[:at] + row[at + 2 :] for row in rows] == plain


def test_owner_summary_key_figures_show_budget(statement: Statement, tmp_path: Path) -> None:
    budgeted = replace(statement, budgets_usd={"sales": Decimal("200.00")})
    center = budgeted.cost_centers[0]
    lines = summarize(budgeted).lines_by_center[center.id]
    path = tmp_path / "owner.xlsx"
    write_cost_center_workbook(budgeted, center, lines, path)
    values = [[c.value for c in row] for row in openpyxl.load_workbook(path)["Summary"].iter_rows()]
    figures = {row[0]: row[1:3] for row in values if row[0] in ("Budget (USD)", "% of budget")}
    assert figures == {"Budget (USD)": [200, "the cost center's monthly budget (chargeback.yaml)"],
                       "% of budget": [0.535, "total ÷ budget"]}  # fmt: skip
