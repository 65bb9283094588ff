"""A hand-made month's workbooks opened by LibreOffice: they convert, print the Summary one
landscape page wide, and LibreOffice draws every chart (its title is on the printed page).

The e2e run's workbooks get the same checks (``tests/e2e/test_dag_e2e.py``); this one needs
no DAG run, so a broken chart or page setup shows up in seconds.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback.statements.totals import summarize
from vapi_chargeback.statements.xlsx import write_cost_center_workbook, write_statement_workbook

from support.libreoffice import (
    convert_to_pdf,
    keep_first_page,
    page_count,
    page_size,
    page_text,
    require_tools,
    summary_row,
)
from support.statement_samples import sample_statement

pytestmark = pytest.mark.slow

DAILY = {
    "sales": [(date(2026, 10, 1), Decimal("60.00")), (date(2026, 10, 2), Decimal("40.00"))],
    "support": [(date(2026, 10, 31), Decimal("40.00"))],
}
CHART_TITLES = {
    "chargeback-2026-10.xlsx": ["Cost by cost center and component", "Daily cost by cost center"],
    "sales-2026-10.xlsx": ["Daily cost: Sales", "Top assistants by cost"],
}


def test_libreoffice_opens_the_workbooks_prints_the_summary_one_page_wide_and_draws_the_charts(
    tmp_path: Path,
) -> None:
    tools = require_tools()
    # With budgets: the widest finance Summary (Budget and % of budget columns) still fits.
    statement = sample_statement(daily_cost_usd=DAILY, budgets_usd={"sales": Decimal("150.00")})
    finance = tmp_path / "chargeback-2026-10.xlsx"
    owner = tmp_path / "sales-2026-10.xlsx"
    write_statement_workbook(statement, summarize(statement), finance)
    sales = [line for line in statement.lines if line.cost_center_id == "sales"]
    write_cost_center_workbook(statement, statement.cost_centers[0], sales, owner)

    conversion = convert_to_pdf(tools, [finance, owner], tmp_path / "pdf")
    print(f"LibreOffice converted 2 workbooks in {conversion.seconds:.1f} s")

    for workbook, pdf in conversion.pdfs.items():
        width, height = page_size(tools, pdf)
        assert width > height, f"{workbook.name}: page 1 is {width} x {height} pt, not landscape"
        row = summary_row(workbook)
        first_page = page_text(tools, pdf, 1)
        assert any(row.first in line and row.last in line for line in first_page.splitlines()), (
            f"{workbook.name}: the Summary row {row.first!r} … {row.last_header} {row.last!r} "
            f"is not printed on one line of page 1, so the Summary is wider than a page:\n{first_page}"
        )
        printed = "\n".join(
            page_text(tools, pdf, page) for page in range(1, page_count(tools, pdf) + 1)
        )
        for title in CHART_TITLES[workbook.name]:
            assert title in printed, f"{workbook.name}: LibreOffice drew no chart {title!r}"
        print(f"first page: {keep_first_page(tools, pdf, f'hand-made-{workbook.stem}')}")
