"""The month-to-date files: ``{output}/_mtd/{YYYY-MM}/mtd-{YYYY-MM-DD}.json`` and ``.csv``.

The CSV has the statement CSV's columns (``statements.csv``: same order, same byte format,
same formula guard), then ``budget_usd``, ``budget_used_pct`` and ``forecast_usd``: the
cost center's figures, repeated on each of its lines (empty on ``UNALLOCATED`` lines, and
the budget ones for a cost center without a budget). ``statement_id`` and ``corrects`` are
empty: month-to-date lines belong to no statement yet, and carry no corrections.

Each file is written whole or not at all (``storage.write_file``), the CSV first and the
JSON last, so a reader who finds the JSON finds the CSV of the same run beside it; a rerun
of a day replaces both.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from vapi_chargeback.budgets.mtd import MtdReport, mtd_name
from vapi_chargeback.published import OutputRoot, _locate
from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.csv import header, line_row, record
from vapi_chargeback.statements.formatting import money_text
from vapi_chargeback.storage import write_file

BUDGET_COLUMNS = ("budget_usd", "budget_used_pct", "forecast_usd")


def render_csv(statement: Statement, report: MtdReport) -> bytes:
    """The cut month's lines with their cost center's budget, % used and forecast."""
    centers = {center.cost_center_id: center for center in report.cost_centers}
    rows = [record([*header(statement.components), *BUDGET_COLUMNS])]
    for line in statement.lines:
        center = centers.get(line.cost_center_id)
        budget = center.budget_usd if center else None
        used = center.used_pct if center else None
        rows.append(
            record(
                [
                    # No statement id: month-to-date lines belong to no statement yet.
                    *line_row(statement.period, line, statement_id=""),
                    "" if budget is None else money_text(budget),
                    "" if used is None else money_text(used),
                    "" if center is None else money_text(center.forecast_usd),
                ]
            )
        )
    return "".join(rows).encode()


def publish_mtd_files(output_root: OutputRoot, report: MtdReport, csv: bytes) -> dict[str, str]:
    """Write the day's CSV, then its JSON; relative path → sha256."""
    return {
        report.relative_csv: write_file(output_root, report.relative_csv, csv),
        report.relative_json: write_file(output_root, report.relative_json, report.to_json()),
    }


def read_mtd(output_root: OutputRoot, through_day: date) -> MtdReport | None:
    """The published figures through ``through_day``; ``None`` when there are none."""
    location = _locate(output_root)
    relative = mtd_name(through_day, "json")
    try:
        if isinstance(location, Path):
            raw = (location / relative).read_bytes()
        else:
            raw = location.fs.cat_file(f"{location.path.rstrip('/')}/{relative}")
    except FileNotFoundError:
        return None
    return MtdReport.from_json(raw)
