"""The "Variance" sheet: why this month costs more or less than the previous one.

Finance's workbook shows every cost center (their rows add up to the Total below) and
then the assistants that moved most org-wide, to read the cost-center rows by. An
owner's shows their assistants, every one with a line in either month, and their pools
and corrections as one row: those rows add up to the Total, their cost center's change.
On every row Δ = volume + duration + rate + new + gone + other to the cent. The method
(``variance``) is stated on the sheet, above the table.

Without a previous published month the sheet says so in one row.
"""

from __future__ import annotations

from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.workbook import CellValue, Column, Sheet
from vapi_chargeback.variance import (
    METHOD,
    NO_USAGE,
    Driver,
    Effects,
    Usage,
    Variance,
    month_over_month,
    previous_period,
)

TITLE = "Variance"
TOP_ASSISTANTS = 20
"""Assistants below finance's cost-center rows: the largest |Δ| org-wide."""
OTHER_ROW = "Pools, corrections, adjustments"
EFFECT_HEADERS = [
    "Volume (USD)",
    "Duration (USD)",
    "Rate (USD)",
    "New (USD)",
    "Gone (USD)",
    "Pools & other (USD)",
]
EFFECTS_NOTE = (
    "Volume: more or fewer calls. Duration: longer or shorter calls (minutes per call)."
    " Rate: dearer or cheaper minutes ($ per minute). New / Gone: assistants with lines in"
    " one month only (their whole cost). Pools & other: shared pools, corrections of"
    " earlier months, the invoice adjustment and unallocated lines."
)


def variance_sheet(statement: Statement, center_id: str | None) -> Sheet:
    """The Variance sheet of finance's workbook (``center_id`` ``None``) or of the owner of
    cost center ``center_id``."""
    variance = month_over_month(statement)
    if variance is None:
        before = previous_period(statement.period)
        return Sheet(
            TITLE,
            [Column("Month-over-month drivers")],
            [
                [
                    f"No previous month to compare with: {before} has no verified published"
                    f" statement, so {statement.period}'s change cannot be explained yet."
                ]
            ],
        )
    if center_id is None:
        return _finance(variance)
    return _owner(variance, center_id)


def _finance(variance: Variance) -> Sheet:
    movers = variance.movers(TOP_ASSISTANTS)
    columns = [
        Column("Level"),
        Column("Cost center ID"),
        Column("Cost center"),
        Column("Assistant ID"),
        Column("Assistant"),
        *_figure_columns(variance),
    ]
    rows: list[list[CellValue]] = [
        ["Cost center", row.cost_center_id, row.cost_center_name, None, None, *_figures(row)]
        for row in variance.cost_centers
    ]
    rows += [
        [
            "Assistant",
            row.cost_center_id,
            row.cost_center_name,
            row.assistant_id or "(no assistant)",
            row.assistant_name,
            *_figures(row),
        ]
        for row in movers
    ]
    footer: list[list[CellValue]] = [["Total", None, None, None, None, *_figures(variance.org)]]
    reading = (
        "Every row: Δ = the six effects. The cost-center rows add up to the Total; the"
        f" assistant rows below them are the {len(movers)} that moved most, by |Δ|."
    )
    title = f"Month-over-month drivers: {variance.period} vs {variance.previous_period}"
    return Sheet(TITLE, columns, rows, footer, _title_block(variance, title, reading))


def _owner(variance: Variance, center_id: str) -> Sheet:
    center = next(row for row in variance.cost_centers if row.cost_center_id == center_id)
    columns = [Column("Assistant ID"), Column("Assistant"), *_figure_columns(variance)]
    members = [row for row in variance.assistants if row.cost_center_id == center_id]
    rows: list[list[CellValue]] = [
        [row.assistant_id or "(no assistant)", row.assistant_name, *_figures(row)]
        for row in members
    ]
    before, after = center.previous or NO_USAGE, center.current or NO_USAGE
    other = Driver(
        level="cost_center",
        cost_center_id=center_id,
        cost_center_name=OTHER_ROW,
        previous_usd=center.previous_usd - before.cost_usd,
        current_usd=center.current_usd - after.cost_usd,
        effects=Effects(other_usd=center.effects.other_usd),
        previous=None,
        current=None,
    )
    rows.append([OTHER_ROW, None, *_figures(other)])
    footer: list[list[CellValue]] = [["Total", center.cost_center_name, *_figures(center)]]
    reading = (
        "Every row: Δ = the six effects. The rows (every assistant with a line in either"
        f" month, largest |Δ| first, then {OTHER_ROW.lower()}) add up to the Total."
    )
    title = (
        f"Month-over-month drivers: {center.cost_center_name},"
        f" {variance.period} vs {variance.previous_period}"
    )
    return Sheet(TITLE, columns, rows, footer, _title_block(variance, title, reading))


def _title_block(variance: Variance, title: str, reading: str) -> list[list[CellValue]]:
    status = f" ({variance.previous_status})" if variance.previous_status else ""
    compared = variance.previous_statement_id or f"the statement of {variance.previous_period}"
    return [
        [title],
        ["Compared with", f"{compared}{status}, as published"],
        ["Method", METHOD],
        ["Effects", EFFECTS_NOTE],
        ["Reading", reading],
    ]


def _figure_columns(variance: Variance) -> list[Column]:
    old, new = variance.previous_period, variance.period
    return [
        Column(f"Cost {old} (USD)"),
        Column(f"Cost {new} (USD)"),
        Column("Δ (USD)"),
        *(Column(header) for header in EFFECT_HEADERS),
        Column(f"Calls {old}"),
        Column(f"Calls {new}"),
        Column(f"Min/call {old}", rate=True),
        Column(f"Min/call {new}", rate=True),
        Column(f"$/min {old}", rate=True),
        Column(f"$/min {new}", rate=True),
    ]


def _figures(row: Driver) -> list[CellValue]:
    return [
        row.previous_usd,
        row.current_usd,
        row.delta_usd,
        *row.effects.parts,
        *_usage(row.previous, row.current),
    ]


def _usage(before: Usage | None, after: Usage | None) -> list[CellValue]:
    """Calls, minutes per call and $ per minute of both months; blank where a month has
    no usage to divide."""

    months = (before, after)
    return [
        *(None if usage is None else usage.calls for usage in months),
        *(None if usage is None else usage.minutes_per_call for usage in months),
        *(None if usage is None else usage.usd_per_minute for usage in months),
    ]
