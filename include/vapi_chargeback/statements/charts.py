"""Native Excel charts for the statement workbooks, each drawn from a table in the workbook.

A chart references cells, never a picture or a copy of the numbers: each chart is anchored
beside the table it plots, on a sheet of its own, so a reader sees the figures behind
every bar and line, and finance can check them against the Summary.

- Finance workbook: "Cost by component" (per cost center: each reported component, Other
  and Shared, stacked to the cost center's cost) and "Daily cost" (one column per cost
  center for every local day of the month, days without calls as zero; a line each).
- Owner's workbook: "Daily cost" (their usage per day, a line) and "Top assistants" (their
  largest assistants by usage cost, a bar each, the rest and the total in rows below).

Every figure comes from the Statement's lines or its ``daily_cost_usd``; the table rows add
up to what the Summary shows (a stack to the cost center's cost, days to its usage lines).
The charts are openpyxl objects added by ``Sheet.charts`` hooks, whose references are built
from the sheet's laid-out position (title, header row, rows), so they always point at the
cells that hold the plotted data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.chart.axis import ChartLines, DateAxis
from openpyxl.chart.data_source import AxDataSource, StrRef
from openpyxl.utils import get_column_letter, quote_sheetname

from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, CostCenterInfo, Statement
from vapi_chargeback.statements.totals import StatementTotals
from vapi_chargeback.statements.workbook import CellValue, Column, Sheet

COMPONENT_SHEET = "Cost by component"
DAILY_SHEET = "Daily cost"
TOP_ASSISTANTS_SHEET = "Top assistants"
CHART_SHEETS = (COMPONENT_SHEET, DAILY_SHEET, TOP_ASSISTANTS_SHEET)
"""Titles the writers must keep free (an owner's breakdown titled "Daily cost" gets a suffix)."""
TOP_ASSISTANTS = 10
CHART_WIDTH_CM = 24.0
CHART_HEIGHT_CM = 12.0
GAP_COLUMNS = 1
"""Empty columns between a table and its chart."""
MONEY_AXIS_FORMAT = "#,##0"
DAY_AXIS_FORMAT = "d mmm"
NO_ASSISTANT = "(no assistant)"


def finance_chart_sheets(
    statement: Statement, totals: StatementTotals, labels: Sequence[str]
) -> list[Sheet]:
    """The finance workbook's chart sheets; ``labels`` name the components as the other
    sheets do (``LLM (USD)`` …), in the statement's component order."""
    return [component_sheet(statement, totals, labels), finance_daily_sheet(statement)]


def owner_chart_sheets(
    statement: Statement, center: CostCenterInfo, lines: Sequence[ChargebackLine]
) -> list[Sheet]:
    """An owner's chart sheets: their daily usage cost and their top assistants."""
    return [owner_daily_sheet(statement, center), top_assistants_sheet(lines)]


def component_sheet(statement: Statement, totals: StatementTotals, labels: Sequence[str]) -> Sheet:
    """Per cost center (Summary order, Unallocated last): components, Other (what no
    analytics column covers, pools excluded), Shared (the pools) and the cost they add up to."""
    names = {center.id: center.name for center in statement.cost_centers}
    names[UNALLOCATED] = "Unallocated"
    rows: list[list[CellValue]] = []
    for center_id, item in totals.by_center.items():
        parts = list(item.components_usd)
        other = item.cost_usd - item.shared_usd - sum(parts, Decimal(0))
        rows.append([names[center_id], *parts, other, item.shared_usd, item.cost_usd])
    columns = [
        Column("Cost center"),
        *(Column(label) for label in labels),
        Column("Other (USD)"),
        Column("Shared (USD)"),
        Column("Cost (USD)"),
    ]
    series = len(labels) + 2
    return Sheet(
        COMPONENT_SHEET,
        columns,
        rows,
        charts=[_stacked_bars("Cost by cost center and component", series)],
    )


def finance_daily_sheet(statement: Statement) -> Sheet:
    """One row per local day of the month, one column per cost center with daily figures
    (configured order, Unallocated last), and the day's total; a line per cost center."""
    order = [center.id for center in statement.cost_centers] + [UNALLOCATED]
    names = {center.id: center.name for center in statement.cost_centers}
    names[UNALLOCATED] = "Unallocated"
    shown = [center_id for center_id in order if center_id in statement.daily_cost_usd]
    days = month_days(statement)
    by_day = [_by_day(statement.daily_cost_usd[center_id]) for center_id in shown]
    rows: list[list[CellValue]] = []
    for day in days:
        values = [costs.get(day, Decimal(0)) for costs in by_day]
        rows.append([day, *values, sum(values, Decimal(0))])
    footer: list[list[CellValue]] = [
        ["Total", *(sum(costs.values(), Decimal(0)) for costs in by_day), _sum_all(by_day)]
    ]
    columns = [
        Column("Date"),
        *(Column(f"{names[center_id]} (USD)") for center_id in shown),
        Column("Total (USD)"),
    ]
    hooks = [_lines("Daily cost by cost center", len(shown))] if shown else []
    return Sheet(DAILY_SHEET, columns, rows, footer, charts=hooks)


def owner_daily_sheet(statement: Statement, center: CostCenterInfo) -> Sheet:
    """The cost center's usage cost for every local day of the month (zero without calls)."""
    costs = _by_day(statement.daily_cost_usd.get(center.id, []))
    rows: list[list[CellValue]] = [
        [day, costs.get(day, Decimal(0))] for day in month_days(statement)
    ]
    footer: list[list[CellValue]] = [["Total", sum(costs.values(), Decimal(0))]]
    return Sheet(
        DAILY_SHEET,
        [Column("Date"), Column("Cost (USD)")],
        rows,
        footer,
        charts=[_lines(f"Daily cost: {center.name}", 1)],
    )


def top_assistants_sheet(lines: Sequence[ChargebackLine]) -> Sheet:
    """The owner's assistants by usage cost (``direct`` lines), largest first, at most
    ``TOP_ASSISTANTS``; below the table, the other assistants together and the total, which
    equals the owner's direct lines."""
    cost: dict[str, Decimal] = {}
    calls: dict[str, int] = {}
    named: dict[str, str] = {}
    for line in lines:
        if line.allocation != "direct":
            continue
        cost[line.assistant_id] = cost.get(line.assistant_id, Decimal(0)) + line.cost_usd
        calls[line.assistant_id] = calls.get(line.assistant_id, 0) + line.calls
        named.setdefault(line.assistant_id, line.assistant_name)
    ranked = sorted(cost, key=lambda assistant: (-cost[assistant], assistant))
    top, rest = ranked[:TOP_ASSISTANTS], ranked[TOP_ASSISTANTS:]
    rows: list[list[CellValue]] = [
        [_label(assistant, named[assistant]), assistant, calls[assistant], cost[assistant]]
        for assistant in top
    ]
    footer: list[list[CellValue]] = [
        [
            f"Other assistants ({len(rest)})",
            None,
            sum(calls[assistant] for assistant in rest),
            sum((cost[assistant] for assistant in rest), Decimal(0)),
        ],
        ["Total", None, sum(calls.values()), sum(cost.values(), Decimal(0))],
    ]
    columns = [Column("Assistant"), Column("Assistant ID"), Column("Calls"), Column("Cost (USD)")]
    hooks = [_ranked_bars("Top assistants by cost")] if top else []
    return Sheet(TOP_ASSISTANTS_SHEET, columns, rows, footer, charts=hooks)


def month_days(statement: Statement) -> list[date]:
    """Every local calendar day of the statement period, in order."""
    first = statement.period_start.date()
    count = (statement.period_end.date() - first).days
    return [first + timedelta(days=offset) for offset in range(count)]


def _by_day(series: Sequence[tuple[date, Decimal]]) -> dict[date, Decimal]:
    costs: dict[date, Decimal] = {}
    for day, amount in series:
        costs[day] = costs.get(day, Decimal(0)) + amount
    return costs


def _sum_all(by_day: Sequence[dict[date, Decimal]]) -> Decimal:
    return sum((sum(costs.values(), Decimal(0)) for costs in by_day), Decimal(0))


def _label(assistant_id: str, name: str) -> str:
    return name or assistant_id or NO_ASSISTANT


class _Table:
    """Where a laid-out sheet's table sits: references to its body rows by column."""

    def __init__(self, worksheet: Any, sheet: Sheet) -> None:
        self.title = worksheet.title
        self.header = sheet.header_row
        self.first = self.header + 1
        self.last = self.header + len(sheet.rows)
        self.anchor = f"{get_column_letter(len(sheet.columns) + GAP_COLUMNS + 1)}{self.header}"

    def columns(self, first: int, last: int, *, with_header: bool) -> Reference:
        """Body rows of columns ``first``..``last`` (1-based), from the header row if asked."""
        top = self.header if with_header else self.first
        return self._reference(first, top, last, self.last)

    def _reference(self, min_col: int, min_row: int, max_col: int, max_row: int) -> Reference:
        cells = f"${get_column_letter(min_col)}${min_row}:${get_column_letter(max_col)}${max_row}"
        return Reference(range_string=f"{quote_sheetname(self.title)}!{cells}")


def _stacked_bars(title: str, series: int) -> Any:
    """Columns 2..series+1 stacked per row, categories from column 1."""

    def add(worksheet: Any, sheet: Sheet) -> None:
        table = _Table(worksheet, sheet)
        chart = BarChart()
        chart.type = "col"
        chart.grouping = "stacked"
        chart.overlap = 100
        chart.add_data(table.columns(2, series + 1, with_header=True), titles_from_data=True)
        _label_categories(chart, table.columns(1, 1, with_header=False))
        _finish(chart, title, "USD")
        worksheet.add_chart(chart, table.anchor)

    return add


def _lines(title: str, series: int) -> Any:
    """A line per column 2..series+1 over the dates of column 1 (a date axis, so the days
    are spaced as days and labelled as dates, not as serial numbers)."""

    def add(worksheet: Any, sheet: Sheet) -> None:
        table = _Table(worksheet, sheet)
        chart = LineChart()
        chart.add_data(table.columns(2, series + 1, with_header=True), titles_from_data=True)
        chart.set_categories(table.columns(1, 1, with_header=False))
        for line in chart.series:
            line.smooth = False
        chart.x_axis = DateAxis(crossAx=chart.y_axis.axId)
        chart.y_axis.crossAx = chart.x_axis.axId
        chart.x_axis.number_format = DAY_AXIS_FORMAT
        chart.x_axis.majorTimeUnit = "days"
        chart.x_axis.axPos = "b"
        _finish(chart, title, "USD per day")
        worksheet.add_chart(chart, table.anchor)

    return add


def _ranked_bars(title: str) -> Any:
    """Horizontal bars of column 4 (cost) labelled by column 1, the first row on top."""

    def add(worksheet: Any, sheet: Sheet) -> None:
        table = _Table(worksheet, sheet)
        chart = BarChart()
        chart.type = "bar"
        chart.add_data(table.columns(4, 4, with_header=True), titles_from_data=True)
        _label_categories(chart, table.columns(1, 1, with_header=False))
        chart.x_axis.scaling.orientation = "maxMin"
        chart.legend = None
        _finish(chart, title, "USD")
        worksheet.add_chart(chart, table.anchor)

    return add


def _label_categories(chart: Any, labels: Reference) -> None:
    """Categories as text references (openpyxl's ``set_categories`` makes them numbers,
    which cost center and assistant names are not)."""
    for series in chart.series:
        series.cat = AxDataSource(strRef=StrRef(f=str(labels)))


def _finish(chart: Any, title: str, value_title: str) -> None:
    """Title, visible axes (openpyxl leaves ``delete`` unset, which newer Excel reads as
    hidden), a money number format on the value axis, and the size."""
    chart.title = title
    chart.y_axis.title = value_title
    chart.y_axis.number_format = MONEY_AXIS_FORMAT
    chart.y_axis.majorGridlines = ChartLines()
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.width = CHART_WIDTH_CM
    chart.height = CHART_HEIGHT_CM
