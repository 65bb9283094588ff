"""Workbook writer benchmark: our Detail sheet against xlsxwriter ``constant_memory``.

Both writers get the same synthetic statement lines and write the same sheets: Detail
(a styled header row, frozen and filtered, column widths fitted to the data, text as text,
quoted when it looks like a formula, calls as ``#,##0``, money and minutes as ``#,##0.00``
numbers, and a bold totals row) and the finance workbook's two chart sheets with their
native charts (issue 18): "Cost by component" with a stacked column chart and "Daily
cost" (a date per row) with a line per cost center over a date axis. Each is timed from
the list of ``ChargebackLine`` objects to the closed file, best of ``--repeat`` runs, in
one process. The target (issues 5 and 18) is ours ≤ 1.3× xlsxwriter, charts included.

    python bench/writer.py                 # 100k lines
    python bench/writer.py --lines 20000 --repeat 3

Prints the figures and writes them to ``bench/results/writer.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import xlsxwriter
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, NamedStyle
from openpyxl.utils import get_column_letter

from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, CostCenterInfo, Statement
from vapi_chargeback.statements.charts import finance_chart_sheets
from vapi_chargeback.statements.formatting import FORMULA_TRIGGERS
from vapi_chargeback.statements.totals import StatementTotals, summarize
from vapi_chargeback.statements.workbook import DocumentInfo, Sheet, write_workbook
from vapi_chargeback.statements.xlsx import detail_sheet, write_statement_workbook

TARGET_RATIO = 1.3
COMPONENTS = ["llm", "stt", "tts", "vapi", "transport"]
DAYS = 31
RESULTS = Path(__file__).parent / "results" / "writer.json"
ZONE = ZoneInfo("Europe/Berlin")


def synthetic_statement(lines: int, cost_centers: int, seed: int) -> Statement:
    """Deterministic lines shaped like the real ones: ids, team names, cents, fractional minutes."""
    rng = random.Random(seed)
    centers = [
        CostCenterInfo(f"cc-{index:02d}", f"Cost center {index:02d}", f"owner{index}@example.com")
        for index in range(cost_centers)
    ]
    items = []
    daily: dict[str, dict[date, Decimal]] = {}
    first = date(2026, 10, 1)
    for index in range(lines):
        parts = {name: Decimal(rng.randrange(0, 5_000)) / 100 for name in COMPONENTS}
        cost = sum(parts.values(), Decimal(0)) + Decimal(rng.randrange(0, 300)) / 100
        if index % 50 == 49:
            center_id, name, allocation, team = (
                UNALLOCATED,
                "Unallocated",
                "unallocated:unmapped-assistant",
                "",
            )
        else:
            center = centers[index % cost_centers]
            center_id, name, allocation, team = (
                center.id,
                center.name,
                "direct",
                f"team-{index % 97}",
            )
        items.append(
            ChargebackLine(
                cost_center_id=center_id,
                cost_center_name=name,
                team=team,
                assistant_id=f"{index:08x}-4c1a-4b2e-9d3f-{rng.randrange(16**12):012x}",
                allocation=allocation,
                calls=rng.randrange(1, 2_000),
                minutes=Decimal(rng.randrange(1, 6_000_000)) / 1_000,
                cost_usd=cost,
                components_usd=parts,
            )
        )
        if allocation == "direct":
            day = first + timedelta(days=index % DAYS)
            costs = daily.setdefault(center_id, {})
            costs[day] = costs.get(day, Decimal(0)) + cost
    return Statement(
        period="2026-10",
        timezone="Europe/Berlin",
        period_start=datetime(2026, 10, 1, tzinfo=ZONE),
        period_end=datetime(2026, 11, 1, tzinfo=ZONE),
        currency="USD",
        components=list(COMPONENTS),
        cost_centers=centers,
        lines=items,
        daily_cost_usd={center.id: sorted(daily.get(center.id, {}).items()) for center in centers},
    )


def bench_sheets(statement: Statement, totals: StatementTotals) -> list[Sheet]:
    """Detail and the finance chart sheets (their charts attached), as the workbook has them."""
    return [
        detail_sheet(statement, totals),
        *finance_chart_sheets(
            statement, totals, [f"{name} (USD)" for name in statement.components]
        ),
    ]


def ours(statement: Statement, totals: StatementTotals, path: Path) -> None:
    info = DocumentInfo("bench", "bench", "vapi-chargeback", statement.period_end)
    write_workbook(path, bench_sheets(statement, totals), info)


def theirs(statement: Statement, totals: StatementTotals, path: Path) -> None:
    """The same sheets and charts with xlsxwriter in constant-memory mode (rows stream in order)."""
    detail, components, daily = bench_sheets(statement, totals)
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    formats = _formats(workbook)
    for sheet in (detail, components, daily):
        _write_sheet(workbook, formats, sheet)
    _stacked_chart(workbook, components)
    if daily.charts:
        _line_chart(workbook, daily)
    workbook.close()


def _formats(workbook: Any) -> dict[str, Any]:
    bold = {"bold": True, "top": 1}
    return {
        "header": workbook.add_format(
            {"bold": True, "bg_color": "#DDEBF7", "bottom": 1, "text_wrap": True, "valign": "top"}
        ),
        "text": workbook.add_format(),
        "quoted": workbook.add_format({"quote_prefix": True}),
        "integer": workbook.add_format({"num_format": "#,##0"}),
        "money": workbook.add_format({"num_format": "#,##0.00"}),
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "total text": workbook.add_format(bold),
        "total integer": workbook.add_format({**bold, "num_format": "#,##0"}),
        "total money": workbook.add_format({**bold, "num_format": "#,##0.00"}),
    }


def _write_sheet(workbook: Any, formats: dict[str, Any], sheet: Sheet) -> None:
    worksheet = workbook.add_worksheet(sheet.title)
    rows = [*sheet.rows, *sheet.footer]
    for index, column in enumerate(sheet.columns):
        values = [row[index] for row in rows]
        texts = [len(value) for value in values if isinstance(value, str)]
        numbers = [len(f"{value:,.2f}") for value in values if isinstance(value, Decimal)]
        worksheet.set_column(
            index, index, min(max([len(column.header) + 3, *texts, *numbers]) + 1, 60)
        )
    worksheet.freeze_panes(1, 0)
    worksheet.autofilter(0, 0, len(sheet.rows), len(sheet.columns) - 1)
    for index, column in enumerate(sheet.columns):
        worksheet.write_string(0, index, column.header, formats["header"])
    for number, row in enumerate(rows, start=1):
        total = "total " if number > len(sheet.rows) else ""
        for index, value in enumerate(row):
            if isinstance(value, str):
                if value:
                    quoted = not total and value.startswith(FORMULA_TRIGGERS)
                    style = formats["quoted" if quoted else f"{total}text"]
                    worksheet.write_string(number, index, value, style)
            elif isinstance(value, Decimal):
                worksheet.write_number(number, index, value, formats[f"{total}money"])
            elif isinstance(value, date):
                worksheet.write_datetime(number, index, value, formats["date"])
            elif isinstance(value, int):
                worksheet.write_number(number, index, value, formats[f"{total}integer"])


def _stacked_chart(workbook: Any, sheet: Sheet) -> None:
    """Components, Other and Shared stacked per cost center, as ``charts`` draws them."""
    chart = workbook.add_chart({"type": "column", "subtype": "stacked"})
    last = len(sheet.rows)
    for column in range(1, len(sheet.columns) - 1):
        chart.add_series(
            {
                "name": [sheet.title, 0, column],
                "categories": [sheet.title, 1, 0, last, 0],
                "values": [sheet.title, 1, column, last, column],
            }
        )
    chart.set_title({"name": "Cost by cost center and component"})
    chart.set_y_axis({"name": "USD", "num_format": "#,##0", "major_gridlines": {"visible": True}})
    chart.set_size({"x_scale": 2.6, "y_scale": 1.6})
    workbook.get_worksheet_by_name(sheet.title).insert_chart(0, len(sheet.columns) + 1, chart)


def _line_chart(workbook: Any, sheet: Sheet) -> None:
    """A line per cost center over a date axis."""
    chart = workbook.add_chart({"type": "line"})
    for column in range(1, len(sheet.columns) - 1):
        chart.add_series(
            {
                "name": [sheet.title, 0, column],
                "categories": [sheet.title, 1, 0, len(sheet.rows), 0],
                "values": [sheet.title, 1, column, len(sheet.rows), column],
            }
        )
    chart.set_title({"name": "Daily cost by cost center"})
    chart.set_x_axis({"date_axis": True, "num_format": "d mmm", "major_unit_type": "days"})
    chart.set_y_axis(
        {"name": "USD per day", "num_format": "#,##0", "major_gridlines": {"visible": True}}
    )
    chart.set_size({"x_scale": 2.6, "y_scale": 1.6})
    workbook.get_worksheet_by_name(sheet.title).insert_chart(0, len(sheet.columns) + 1, chart)


def openpyxl_cells(statement: Statement, totals: StatementTotals, path: Path) -> None:
    """The same sheet through openpyxl's own write-only cells: what the row streaming replaced."""
    sheet = detail_sheet(statement, totals)
    workbook = Workbook(write_only=True)
    for name, number_format in (("Text", "General"), ("Integer", "#,##0"), ("Money", "#,##0.00")):
        workbook.add_named_style(NamedStyle(name, number_format=number_format))
    workbook.add_named_style(NamedStyle("Header", font=Font(bold=True)))
    worksheet = workbook.create_sheet("Detail")
    worksheet.freeze_panes = "A2"
    worksheet.auto_filter.ref = f"A1:{get_column_letter(len(sheet.columns))}{len(sheet.rows) + 1}"

    def cell(value: object, style: str, quoted: bool = False) -> WriteOnlyCell:
        item = WriteOnlyCell(worksheet, value=value)
        item.style = style
        if quoted:
            item.quotePrefix = True
            item.data_type = "s"
        return item

    worksheet.append([cell(column.header, "Header") for column in sheet.columns])
    for row in [*sheet.rows, *sheet.footer]:
        cells: list[object] = []
        for value in row:
            if isinstance(value, str):
                cells.append(
                    cell(value, "Text", quoted=True)
                    if value.startswith(FORMULA_TRIGGERS)
                    else value
                )
            elif isinstance(value, Decimal):
                cells.append(cell(value, "Money"))
            elif isinstance(value, int):
                cells.append(cell(value, "Integer"))
            else:
                cells.append(None)
        worksheet.append(cells)
    workbook.save(path)


def best_of(repeat: int, write: Callable[[Path], None], path: Path) -> float:
    times = []
    for _ in range(repeat):
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        write(path)
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time our workbook writer against xlsxwriter constant_memory on the same statement lines.",
        epilog=f"Target: ours ≤ {TARGET_RATIO}× xlsxwriter. Exit status 1 when the target is missed.",
    )
    parser.add_argument(
        "--lines",
        type=int,
        default=100_000,
        help="statement lines (Detail rows) to write (default 100000)",
    )
    parser.add_argument(
        "--cost-centers",
        type=int,
        default=40,
        help="cost centers the lines are spread over (default 40)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per writer; the best time counts (default 1)"
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="seed of the synthetic lines (default 7)"
    )
    parser.add_argument(
        "--full-workbook",
        action="store_true",
        help="also time the whole finance workbook (Summary, Detail, Unallocated, Reconciliation, About)",
    )
    parser.add_argument(
        "--openpyxl-cells",
        action="store_true",
        help="also time the same sheet written cell by cell in openpyxl write-only mode (slow)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})"
    )
    args = parser.parse_args(argv)

    statement = synthetic_statement(args.lines, args.cost_centers, args.seed)
    totals = summarize(statement)
    results: dict[str, Any] = {
        "lines": args.lines,
        "columns": len(detail_sheet(statement, totals).columns),
        "sheets": [sheet.title for sheet in bench_sheets(statement, totals)],
        "charts": sum(len(sheet.charts) for sheet in bench_sheets(statement, totals)),
        "repeat": args.repeat,
        "target_ratio": TARGET_RATIO,
        "python": platform.python_version(),
        "openpyxl": version("openpyxl"),
        "xlsxwriter": version("xlsxwriter"),
        "cpus": len(os.sched_getaffinity(0)),
    }
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as scratch:
        folder = Path(scratch)
        ours_path, theirs_path = folder / "ours.xlsx", folder / "xlsxwriter.xlsx"
        results["ours_seconds"] = round(
            best_of(args.repeat, lambda path: ours(statement, totals, path), ours_path), 3
        )
        results["xlsxwriter_seconds"] = round(
            best_of(args.repeat, lambda path: theirs(statement, totals, path), theirs_path), 3
        )
        results["ours_bytes"] = ours_path.stat().st_size
        results["xlsxwriter_bytes"] = theirs_path.stat().st_size
        if args.full_workbook:
            full = folder / "full.xlsx"
            results["ours_full_workbook_seconds"] = round(
                best_of(
                    args.repeat,
                    lambda path: write_statement_workbook(statement, totals, path),
                    full,
                ),
                3,
            )
        if args.openpyxl_cells:
            cells = folder / "openpyxl-cells.xlsx"
            results["openpyxl_write_only_cells_seconds"] = round(
                best_of(args.repeat, lambda path: openpyxl_cells(statement, totals, path), cells), 3
            )
    results["ratio"] = round(results["ours_seconds"] / results["xlsxwriter_seconds"], 3)
    results["meets_target"] = results["ratio"] <= TARGET_RATIO

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(
        f"{args.lines:,} lines × {results['columns']} columns and {results['charts']} charts"
        f" ({', '.join(results['sheets'])}), best of {args.repeat}"
    )
    print(
        f"  ours (openpyxl package + streamed rows): {results['ours_seconds']:.3f} s, {results['ours_bytes']:,} bytes"
    )
    print(
        f"  xlsxwriter constant_memory:              {results['xlsxwriter_seconds']:.3f} s, {results['xlsxwriter_bytes']:,} bytes"
    )
    if "ours_full_workbook_seconds" in results:
        print(
            f"  ours, whole finance workbook:            {results['ours_full_workbook_seconds']:.3f} s"
        )
    if "openpyxl_write_only_cells_seconds" in results:
        seconds = results["openpyxl_write_only_cells_seconds"]
        print(
            f"  openpyxl write-only, cell by cell:       {seconds:.3f} s ({seconds / results['xlsxwriter_seconds']:.2f}× xlsxwriter)"
        )
    verdict = "meets" if results["meets_target"] else "MISSES"
    print(
        f"  ratio ours/xlsxwriter: {results['ratio']:.2f} ({verdict} the ≤ {TARGET_RATIO}× target)"
    )
    print(f"  written to {args.out}")
    return 0 if results["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
