"""The finance workbooks: which sheets each workbook holds, in which order.

``chargeback-{YYYY-MM}.xlsx`` is the org-wide statement finance books from: Summary by
cost center (title block, key figures, unit costs), Detail (every line), Assistants
(usage and unit costs per assistant), Unallocated (with the reason spelled out),
Reconciliation, the chart sheets, Variance (month-over-month drivers) and About.
``cost-centers/{id}-{YYYY-MM}.xlsx`` is what one owner receives: their Summary, Detail,
Shared costs, corrections where they have any, their chart sheets, Variance, one sheet
per query definition they configured, and About. A restatement adds "Changes vs v{N}".
Where the month was verified against call records, finance's workbook gains
"Verification" and "Other by type" after Reconciliation, an owner's "Other by type".

The sheets themselves live in ``summary_sheet``, ``sheets``, ``reference_sheets``,
``charts`` and ``variance_sheet``; layout and printing rules in ``workbook``. The
document properties and every page's footer name the statement (DRAFT or FINAL, id), so
a draft is recognisable unopened and a printout can be traced to its statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vapi_chargeback.statement import (
    FINAL,
    UNALLOCATED,
    Breakdown,
    ChargebackLine,
    CostCenterInfo,
    Statement,
)
from vapi_chargeback.statements.cells import InCurrency, component_labels
from vapi_chargeback.statements.charts import finance_chart_sheets, owner_chart_sheets
from vapi_chargeback.statements.reference_sheets import (
    about_sheet,
    query_sheets,
    reconciliation_sheet,
)
from vapi_chargeback.statements.sheets import (
    assistants_sheet,
    changes_sheets,
    corrections_sheet,
    detail_sheet,
    owner_detail,
    shared_costs_sheet,
    unallocated_sheet,
)
from vapi_chargeback.statements.summary_sheet import (
    finance_summary,
    owner_summary,
    title_block,
)
from vapi_chargeback.statements.totals import StatementTotals
from vapi_chargeback.statements.variance_sheet import variance_sheet
from vapi_chargeback.statements.verification_sheet import verification_sheets
from vapi_chargeback.statements.workbook import (
    DocumentInfo,
    safe_sheet_titles,
    write_workbook,
)

CREATOR = "vapi-chargeback"


def statement_workbook_name(period: str) -> str:
    return f"chargeback-{period}.xlsx"


def cost_center_workbook_name(center_id: str, period: str) -> str:
    return f"cost-centers/{center_id}-{period}.xlsx"


def write_statement_workbook(statement: Statement, totals: StatementTotals, path: Path) -> int:
    """Write the org-wide workbook; return its number of statement lines (Detail rows)."""
    title = f"Chargeback statement {statement.period}"
    statement_id = statement.statement_ids.org
    money = InCurrency.of(statement)
    heading = title_block(statement, title, statement_id)
    sheets = [
        finance_summary(statement, totals, heading, money),
        detail_sheet(statement, totals, money),
        assistants_sheet(statement),
        unallocated_sheet(statement, totals.lines_by_center[UNALLOCATED]),
        reconciliation_sheet(statement),
        *verification_sheets(statement),
        *finance_chart_sheets(statement, totals, component_labels(statement)),
        variance_sheet(statement, None),
        *changes_sheets(statement, None),
        about_sheet(statement),
    ]
    write_workbook(path, sheets, _info(statement, title, statement_id))
    return len(statement.lines)


def write_cost_center_workbook(
    statement: Statement,
    center: CostCenterInfo,
    lines: Sequence[ChargebackLine],
    path: Path,
    breakdowns: Sequence[Breakdown] | None = None,
) -> int:
    """Write one owner's workbook; return its number of statement lines. ``breakdowns``:
    the cost center's tables when the caller read them already (stored ones are read from
    the work folder at each lookup)."""
    direct = [line for line in lines if line.allocation == "direct"]
    shared = [line for line in lines if line.allocation.startswith("shared:")]
    carried = [line for line in lines if line.is_correction or line.is_adjustment]
    if breakdowns is None:
        breakdowns = statement.breakdowns.get(center.id, [])
    money = InCurrency.of(statement)
    title = f"Chargeback statement {statement.period}: {center.name}"
    statement_id = statement.statement_ids.for_cost_center(center.id)
    fixed = [
        owner_summary(statement, center, lines, title_block(statement, title, statement_id), money),
        owner_detail(statement, center, direct, money),
        shared_costs_sheet(statement, shared, money),
        *([corrections_sheet(statement, carried)] if carried else []),
        *verification_sheets(statement, center.id),
        *owner_chart_sheets(statement, center, lines),
        variance_sheet(statement, center.id),
    ]
    closing = [*changes_sheets(statement, center.id), about_sheet(statement, center)]
    reserved = [sheet.title for sheet in (*fixed, *closing)]
    titles = safe_sheet_titles([*reserved, *(item.title for item in breakdowns)])
    sheets = [
        *fixed,
        *query_sheets(statement, breakdowns, titles[len(reserved) :]),
        *closing,
    ]
    write_workbook(path, sheets, _info(statement, title, statement_id))
    return len(lines)


def _info(statement: Statement, title: str, statement_id: str) -> DocumentInfo:
    word = "FINAL" if statement.status == FINAL else "DRAFT"
    return DocumentInfo(
        title=f"{title} ({word} v{statement.version}, {statement_id})",
        subject=f"Vapi costs by cost center, {statement.period} ({statement.timezone}), {word}",
        creator=CREATOR,
        moment=statement.period_end,
        keywords=", ".join([word, statement_id, "chargeback", statement.period]),
        footer=f"{statement_id} ({word} v{statement.version})",
    )
