"""The workbooks' record of the verification: the recount from call records beside the
statement, and the Other column explained by type.

"Verification" (finance workbook): what was recounted (calls, pages, the tolerance), how
many lines and assistant-days matched exactly, and every difference found, largest first,
each named by cost center, assistant, day and column. A published month passed, so its
differences are within tolerance (cents of rounding); the run folder's drift report
holds the same list for a month that did not.

"Other by type" (finance and owner workbooks): each cost center's Other — the cost the
analytics API has no column for — split by the ``costs[]`` item types of its calls
(analysis, voicemail detection, knowledge base …), the parts adding up to it to the cent.
Both sheets exist only where verification ran.
"""

from __future__ import annotations

from vapi_chargeback.statement import Statement, Verification
from vapi_chargeback.statements.workbook import CellValue, Column, Sheet, TitleValue

TYPE_LABELS = {
    "analysis": "Analysis (summary, structured data, success evaluation)",
    "voicemail-detection": "Voicemail detection",
    "knowledge-base": "Knowledge base",
    "transport": "Transport (not reported as a column)",
    "transcriber": "Transcriber (not reported as a column)",
    "model": "Model (not reported as a column)",
    "voice": "Voice (not reported as a column)",
    "vapi": "Vapi (not reported as a column)",
    "unitemised": "Not itemised in the calls' costs",
    "rounding": "Line rounding",
}
"""Readable column headers for ``costs[]`` types; an unknown type shows as it is named."""


def verification_sheet(statement: Statement) -> Sheet | None:
    """The finance workbook's Verification sheet; ``None`` where verification did not run."""
    check = statement.verification
    if check is None:
        return None
    columns = [
        Column("Grain"),
        Column("Day"),
        Column("Cost center"),
        Column("Team"),
        Column("Assistant ID"),
        Column("Allocation"),
        Column("Column"),
        Column("Statement"),
        Column("Recount"),
        Column("Difference"),
        Column("Over tolerance"),
    ]
    rows: list[list[CellValue]] = [
        [
            "day" if d.day else "line",
            d.day,
            d.cost_center_id,
            d.team,
            d.assistant_id,
            d.allocation,
            d.column,
            d.statement,
            d.recount,
            d.difference,
            "yes" if d.over_tolerance else "no",
        ]
        for d in check.differences
    ]
    return Sheet("Verification", columns, rows, title_block=_summary(statement, check))


def _summary(statement: Statement, check: Verification) -> list[list[TitleValue]]:
    listed = len(check.differences)
    run_id = statement.provenance.run_id if statement.provenance else "{run id}"
    folder = f"_runs/{statement.period}/{run_id}/"
    shown = (
        "none: the recount matches the statement exactly"
        if not check.differences_total
        else f"{check.differences_total}, largest first"
        + (
            f" (the first {listed}; all in the drift report)"
            if listed < check.differences_total
            else ""
        )
    )
    largest = check.differences[0] if check.differences else None
    rows: list[list[TitleValue]] = [
        [f"Verification of {statement.period} against call records"],
        ["Result", "PASSED" if check.passed else "NOT PASSED"],
        [
            "Source",
            f"GET /call: {check.calls} calls in {check.pages} pages ({check.requests} requests)",
        ],
        ["Lines matched", f"{check.lines_matched} of {check.lines_compared}"],
        [
            "Assistant-days matched",
            f"{check.days_matched} of {check.days_compared} ({', '.join(check.day_columns)})",
        ],
        ["Tolerance", f"{check.tolerance_usd} USD and {check.tolerance_pct} % per figure"],
        ["Differences", shown],
    ]
    if largest is not None:
        rows.append(
            [
                "Largest",
                f"{largest.cost_center_id} {largest.assistant_id or '(no assistant)'}"
                + (f" on {largest.day.isoformat()}" if largest.day else "")
                + f": {largest.column} {largest.difference:+}",
            ]
        )
    rows += [
        ["Recount", f"{folder}{check.recount_file} (sha256 {check.recount_sha256})"],
        ["Drift report", f"{folder}{check.report_file} (sha256 {check.report_sha256})"],
    ]
    return rows


def other_by_type_sheet(statement: Statement, cost_center_id: str | None = None) -> Sheet | None:
    """Other by type for every cost center, or for one owner's; ``None`` where verification
    did not run (or the owner has no Other)."""
    check = statement.verification
    if check is None:
        return None
    items = [
        item
        for item in check.other_by_type
        if cost_center_id is None or item.cost_center_id == cost_center_id
    ]
    if not items:
        return None
    types: list[str] = []
    for item in items:
        types += [name for name in item.by_type if name not in types]
    columns = [
        Column("Cost center"),
        Column("Other (USD)"),
        *(Column(TYPE_LABELS.get(name, name)) for name in types),
    ]
    rows: list[list[CellValue]] = [
        [item.cost_center_id, item.other_usd, *(item.by_type.get(name) for name in types)]
        for item in items
    ]
    block: list[list[TitleValue]] = [
        [f"Other costs by type, {statement.period}"],
        [
            "What this is",
            "The Other of the month's usage lines (direct; for UNALLOCATED, unallocated): cost"
            " beyond the reported components, itemised from the calls' costs[] by the"
            " verification. Each row adds up to its Other to the cent; corrections and invoice"
            " adjustments carry their own Other, pools none.",
        ],
    ]
    return Sheet("Other by type", columns, rows, title_block=block)


def verification_sheets(statement: Statement, cost_center_id: str | None = None) -> list[Sheet]:
    """The sheets a workbook gains where verification ran: Verification and Other by type
    in finance's, Other by type in an owner's (``cost_center_id``); none elsewhere."""
    found = [
        None if cost_center_id else verification_sheet(statement),
        other_by_type_sheet(statement, cost_center_id),
    ]
    return [sheet for sheet in found if sheet is not None]
