"""The finance workbooks: what goes on which sheet (layout rules live in ``workbook``).

``chargeback-{YYYY-MM}.xlsx`` is the org-wide statement finance books from: Summary
by cost center, Detail (every line), Unallocated (with the reason spelled out),
Reconciliation and About (provenance). ``cost-centers/{id}-{YYYY-MM}.xlsx`` is what
one owner receives: their Summary, Detail, Shared costs, one sheet per query
definition they configured, and About. Every figure is taken from the Statement or
from ``totals``; nothing is recomputed here.

Each workbook's Summary opens with a title block saying which statement it is (id,
version) and whether it is a DRAFT or FINAL (with approver and time); the document
properties say the same, so a draft is recognisable even unopened. Corrections of
earlier months and the invoice adjustment get their own Summary columns and, in an
owner's workbook, their own sheet, only in months that have them; a restatement adds
"Changes vs v{N}", the lines that differ from the version it replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from decimal import Decimal
from pathlib import Path

from vapi_chargeback.close.tieout import NOT_TIED
from vapi_chargeback.money import round_minutes
from vapi_chargeback.statement import (
    FINAL,
    UNALLOCATED,
    ChargebackLine,
    CostCenterInfo,
    Statement,
)
from vapi_chargeback.statements.charts import finance_chart_sheets, owner_chart_sheets
from vapi_chargeback.statements.totals import StatementTotals, Subtotal, share, subtotal
from vapi_chargeback.statements.workbook import (
    CellValue,
    Column,
    DocumentInfo,
    Sheet,
    safe_sheet_titles,
    write_workbook,
)

CREATOR = "vapi-chargeback"
COMPONENT_LABELS = {
    "llm": "LLM",
    "stt": "STT",
    "tts": "TTS",
    "vapi": "Vapi",
    "transport": "Transport",
    "analysis": "Analysis",
}
REASONS = {
    "no-assistant": (
        "Calls without an assistant: no assistant id, or the all-zero id that transient "
        "assistants and squads report."
    ),
    "unknown-cost-center": (
        "The call's cost-center variable names no configured cost center, and no assistant "
        "mapping applies."
    ),
    "unmapped-assistant": "The assistant has no team mapping valid on the day of the call.",
}
UNKNOWN_REASON = "Not allocated by the configured rules; see the allocation rules in the README."
OTHER_NOTE = (
    "Other = cost − Σ components: charges with no analytics column "
    "(analysis, voicemail detection, knowledge base …)."
)
DRAFT_STATUS = "DRAFT: not approved, the figures may still change"
FINAL_STATUS = "FINAL: approved and booked"
CORRECTIONS_SHEET = "Corrections and adjustments"


def statement_workbook_name(period: str) -> str:
    return f"chargeback-{period}.xlsx"


def cost_center_workbook_name(center_id: str, period: str) -> str:
    return f"cost-centers/{center_id}-{period}.xlsx"


def write_statement_workbook(statement: Statement, totals: StatementTotals, path: Path) -> int:
    """Write the org-wide workbook; return its number of statement lines (Detail rows)."""
    title = f"Chargeback statement {statement.period}"
    statement_id = statement.statement_ids.org
    sheets = [
        _summary(statement, totals, _title_block(statement, title, statement_id)),
        detail_sheet(statement, totals),
        _unallocated(statement, totals.lines_by_center[UNALLOCATED]),
        _reconciliation(statement),
        *finance_chart_sheets(statement, totals, _component_labels(statement)),
        *_changes_sheets(statement, None),
        Sheet("About", _FIELDS, _about_rows(statement)),
    ]
    write_workbook(path, sheets, _info(statement, title, statement_id))
    return len(statement.lines)


def write_cost_center_workbook(
    statement: Statement, center: CostCenterInfo, lines: Sequence[ChargebackLine], path: Path
) -> int:
    """Write one owner's workbook; return its number of statement lines."""
    direct = [line for line in lines if line.allocation == "direct"]
    shared = [line for line in lines if line.allocation.startswith("shared:")]
    carried = [line for line in lines if line.is_correction or line.is_adjustment]
    breakdowns = statement.breakdowns.get(center.id, [])
    changes = _changes_sheets(statement, center.id)
    charts = owner_chart_sheets(statement, center, lines)
    fixed = [
        "Summary",
        "Detail",
        "Shared costs",
        *([CORRECTIONS_SHEET] if carried else []),
        *(sheet.title for sheet in charts),
        *(sheet.title for sheet in changes),
        "About",
    ]
    titles = safe_sheet_titles([*fixed, *(item.title for item in breakdowns)])
    components = _component_columns(statement)
    title = f"Chargeback statement {statement.period}: {center.name}"
    statement_id = statement.statement_ids.for_cost_center(center.id)
    sheets = [
        _owner_summary(statement, lines, _title_block(statement, title, statement_id)),
        Sheet(
            "Detail",
            [Column("Team"), Column("Assistant ID"), *_usage_columns(), *components],
            [[line.team, line.assistant_id, *_usage(line)] for line in direct],
            [["Total", None, *_subtotal_cells(subtotal(direct, statement.components))]],
        ),
        _shared_costs(statement, shared, components),
        *([_corrections(statement, carried, components)] if carried else []),
        *charts,
        *(
            Sheet(title, [Column(name) for name in item.columns], item.rows)
            for title, item in zip(titles[len(fixed) :], breakdowns, strict=True)
        ),
        *changes,
        Sheet("About", _FIELDS, _owner_rows(center) + _about_rows(statement)),
    ]
    write_workbook(path, sheets, _info(statement, title, statement_id))
    return len(lines)


_FIELDS = [Column("Field"), Column("Value")]


def _shared_costs(
    statement: Statement, shared: Sequence[ChargebackLine], components: list[Column]
) -> Sheet:
    """One row per pool share; a Note column, only where a pool has a note, says how the
    pool was split when its configured rule alone does not (see ``Statement.pool_notes``)."""
    pools = [line.allocation.removeprefix("shared:") for line in shared]
    notes = [statement.pool_notes.get(pool, "") for pool in pools]
    noted = any(notes)
    columns = [
        Column("Pool"),
        Column("Team"),
        Column("Assistant ID"),
        *_usage_columns(),
        *components,
        *([Column("Note")] if noted else []),
    ]
    rows: list[list[CellValue]] = [
        [pool, line.team, line.assistant_id, *_usage(line), *([note] if noted else [])]
        for pool, line, note in zip(pools, shared, notes, strict=True)
    ]
    total: list[CellValue] = [
        "Total",
        None,
        None,
        *_subtotal_cells(subtotal(shared, statement.components)),
        *([None] if noted else []),
    ]
    return Sheet("Shared costs", columns, rows, [total])


def _corrections(
    statement: Statement, lines: Sequence[ChargebackLine], components: list[Column]
) -> Sheet:
    """An owner's corrections of earlier months and invoice adjustment, one row per line."""
    columns = [
        Column("Item"),
        Column("Corrects"),
        Column("Team"),
        Column("Assistant ID"),
        *_usage_columns(),
        *components,
    ]
    rows: list[list[CellValue]] = [
        [_item(line), line.corrects, line.team, line.assistant_id, *_usage(line)] for line in lines
    ]
    total: list[CellValue] = [
        "Total",
        None,
        None,
        None,
        *_subtotal_cells(subtotal(lines, statement.components)),
    ]
    return Sheet(CORRECTIONS_SHEET, columns, rows, [total])


def _item(line: ChargebackLine) -> str:
    if line.is_correction:
        return f"Correction of {line.allocation.split(':', 1)[1]}"
    return "Invoice adjustment"


def _status_word(statement: Statement) -> str:
    return "FINAL" if statement.status == FINAL else "DRAFT"


def _title_block(statement: Statement, title: str, statement_id: str) -> list[list[CellValue]]:
    """Which statement this is and where it stands: the first thing a reader sees."""
    final = statement.status == FINAL
    rows: list[list[CellValue]] = [
        [title],
        ["Status", FINAL_STATUS if final else DRAFT_STATUS],
        ["Version", statement.version],
        ["Statement ID", statement_id],
    ]
    if final and statement.approved_at is not None:
        rows += [
            ["Approved by", statement.approved_by],
            [
                "Approved at",
                statement.approved_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            ],
        ]
    if statement.restatement_reason:
        rows.append(
            [
                "Restated",
                f"replaces version {statement.version - 1}: {statement.restatement_reason}",
            ]
        )
    return rows


def _info(statement: Statement, title: str, statement_id: str) -> DocumentInfo:
    word = _status_word(statement)
    return DocumentInfo(
        title=f"{title} ({word} v{statement.version}, {statement_id})",
        subject=f"Vapi costs by cost center, {statement.period} ({statement.timezone}), {word}",
        creator=CREATOR,
        moment=statement.period_end,
        keywords=", ".join([word, statement_id, "chargeback", statement.period]),
    )


def _component_columns(statement: Statement) -> list[Column]:
    labels = [
        COMPONENT_LABELS.get(name, name.replace("_", " ").capitalize())
        for name in statement.components
    ]
    return [*(Column(f"{label} (USD)") for label in labels), Column("Other (USD)")]


def _component_labels(statement: Statement) -> list[str]:
    return [column.header for column in _component_columns(statement)[:-1]]


def _usage_columns() -> list[Column]:
    return [Column("Calls"), Column("Minutes"), Column("Cost (USD)")]


def _usage(line: ChargebackLine) -> list[CellValue]:
    return [
        line.calls,
        round_minutes(line.minutes),
        line.cost_usd,
        *line.components_usd.values(),
        line.other_usd,
    ]


def _subtotal_cells(total: Subtotal) -> list[CellValue]:
    return [total.calls, total.minutes, total.cost_usd, *total.components_usd, total.other_usd]


def _summary(
    statement: Statement, totals: StatementTotals, title_block: list[list[CellValue]]
) -> Sheet:
    """By cost center; Corrections and Invoice adjustment columns beside Shared only in a
    month that has such lines, so an ordinary month's Summary keeps its columns."""
    names = {center.id: (center.name, center.owner_email) for center in statement.cost_centers}
    names[UNALLOCATED] = ("Unallocated", "")
    corrections = any(line.is_correction for line in statement.lines)
    adjustments = any(line.is_adjustment for line in statement.lines)

    def parts(item: Subtotal) -> list[CellValue]:
        return [
            item.shared_usd,
            *([item.corrections_usd] if corrections else []),
            *([item.adjustments_usd] if adjustments else []),
        ]

    whole = totals.total.cost_usd
    rows: list[list[CellValue]] = [
        [
            center_id,
            *names[center_id],
            *_subtotal_cells(item),
            *parts(item),
            share(item.cost_usd, whole),
        ]
        for center_id, item in totals.by_center.items()
    ]
    blank = [None] * (len(statement.components) + 1 + len(parts(totals.total)))
    footer: list[list[CellValue]] = [
        [
            "Total",
            None,
            None,
            *_subtotal_cells(totals.total),
            *parts(totals.total),
            share(whole, whole),
        ],
        [
            "Allocated to cost centers (% allocated)",
            None,
            None,
            None,
            None,
            totals.allocated_usd,
            *blank,
            share(totals.allocated_usd, whole),
        ],
        [
            "Unallocated",
            None,
            None,
            None,
            None,
            totals.unallocated_usd,
            *blank,
            share(totals.unallocated_usd, whole),
        ],
    ]
    columns = [
        Column("Cost center ID"),
        Column("Cost center"),
        Column("Owner"),
        *_usage_columns(),
        *_component_columns(statement),
        Column("Shared (USD)"),
        *([Column("Corrections (USD)")] if corrections else []),
        *([Column("Invoice adjustment (USD)")] if adjustments else []),
        Column("% of total", percent=True),
    ]
    return Sheet("Summary", columns, rows, footer, title_block)


def detail_sheet(statement: Statement, totals: StatementTotals) -> Sheet:
    """Every line of the statement; public so the writer benchmark measures the real sheet.

    A last column Corrects (the corrected statement id) only in a month with corrections."""
    corrects = any(line.is_correction for line in statement.lines)
    columns = [
        Column("Cost center ID"),
        Column("Cost center"),
        Column("Team"),
        Column("Assistant ID"),
        Column("Allocation"),
        *_usage_columns(),
        *_component_columns(statement),
        *([Column("Corrects")] if corrects else []),
    ]
    rows = [
        [
            line.cost_center_id,
            line.cost_center_name,
            line.team,
            line.assistant_id,
            line.allocation,
            *_usage(line),
            *([line.corrects] if corrects else []),
        ]
        for line in statement.lines
    ]
    footer: list[list[CellValue]] = [
        [
            "Total",
            None,
            None,
            None,
            None,
            *_subtotal_cells(totals.total),
            *([None] if corrects else []),
        ]
    ]
    return Sheet("Detail", columns, rows, footer)


def _unallocated(statement: Statement, lines: list[ChargebackLine]) -> Sheet:
    columns = [
        Column("Reason"),
        Column("Explanation"),
        Column("Assistant ID"),
        *_usage_columns(),
        *_component_columns(statement),
    ]
    rows: list[list[CellValue]] = []
    for line in lines:
        reason = line.allocation.removeprefix("unallocated:")
        explanation = (
            f"{_item(line)}'s unallocated lines (corrects {line.corrects})."
            if line.is_correction
            else REASONS.get(reason, UNKNOWN_REASON)
        )
        rows.append([reason, explanation, line.assistant_id, *_usage(line)])
    footer: list[list[CellValue]] = [
        ["Total", None, None, *_subtotal_cells(subtotal(lines, statement.components))]
    ]
    return Sheet("Unallocated", columns, rows, footer)


def _reconciliation(statement: Statement) -> Sheet:
    """Each term of the check, then the invoice: its amount held against the lines it
    covers, to the cent, or "not tied to an invoice"."""
    check = statement.reconciliation
    columns = [Column("Item"), Column("Amount (USD)")]
    if check is None:
        rows: list[list[CellValue]] = [["Reconciliation", "not performed for this statement"]]
        return Sheet("Reconciliation", columns, rows + _invoice_rows(statement))
    rows = [
        ["Org total (independent ungrouped query)", check.org_total_usd],
        ["Shared costs", check.shared_total_usd],
        ["Corrections of earlier months", check.corrections_usd],
        ["Invoice adjustments", check.adjustments_usd],
        ["Expected total (org + shared + corrections + adjustments)", check.expected_usd],
        ["Statement lines total", check.lines_total_usd],
        ["Difference (lines − expected)", check.difference_usd],
        ["Result", "OK" if check.ok else "MISMATCH"],
    ]
    if check.empty_month_expected:
        rows.append(["Empty month", "no calls reported; the run said that was expected"])
    return Sheet("Reconciliation", columns, rows + _invoice_rows(statement))


def _invoice_rows(statement: Statement) -> list[list[CellValue]]:
    tie, check = statement.invoice, statement.reconciliation
    if tie is None:
        return [["Invoice", NOT_TIED]]
    rows: list[list[CellValue]] = [["Invoice", tie.invoice_id], ["Invoice amount", tie.amount_usd]]
    difference = None if check is None else check.invoice_difference_usd
    if check is not None and difference is not None:
        rows += [
            ["Lines the invoice covers (lines − shared − corrections)", check.invoiced_lines_usd],
            ["Difference (invoice − lines it covers)", difference],
            [
                "Invoice tie-out",
                f"TIED: the lines tie to invoice {tie.invoice_id} to the cent"
                if not difference
                else f"NOT TIED: the lines differ from invoice {tie.invoice_id} by {difference:+}",
            ],
        ]
    rows.append(["Tie-out", tie.message])
    return rows


def _owner_summary(
    statement: Statement, lines: Sequence[ChargebackLine], title_block: list[list[CellValue]]
) -> Sheet:
    groups: dict[tuple[str, str], list[ChargebackLine]] = {}
    for line in lines:
        groups.setdefault((line.team, line.allocation), []).append(line)
    rows: list[list[CellValue]] = [
        [team, allocation, *_subtotal_cells(subtotal(members, statement.components))]
        for (team, allocation), members in groups.items()
    ]
    footer: list[list[CellValue]] = [
        ["Total", None, *_subtotal_cells(subtotal(lines, statement.components))]
    ]
    columns = [
        Column("Team"),
        Column("Allocation"),
        *_usage_columns(),
        *_component_columns(statement),
    ]
    return Sheet("Summary", columns, rows, footer, title_block)


def _changes_sheets(statement: Statement, center_id: str | None) -> list[Sheet]:
    """ "Changes vs v{N}" of a restatement: every changed line (the org's workbook) or those
    of one cost center (its owner's), old and new value side by side per column, and the
    change in cost; totals below."""
    changes = statement.changes_vs
    if changes is None:
        return []
    old, new = f"v{changes.version}", f"v{statement.version}"
    measures = [column.header for column in [*_usage_columns(), *_component_columns(statement)]]
    columns = [
        Column("Change"),
        Column("Cost center ID"),
        Column("Team"),
        Column("Assistant ID"),
        Column("Allocation"),
        *(Column(f"{measure} {version}") for measure in measures for version in (old, new)),
        Column("Cost change (USD)"),
    ]
    listed = [item for item in changes.lines if center_id in (None, item.key[0])]
    components = statement.components
    rows: list[list[CellValue]] = []
    for item in listed:
        before, after = _measures(item.old, components), _measures(item.new, components)
        cells = [value for pair in zip(before, after, strict=True) for value in pair]
        rows.append([item.kind, *item.key, *cells, _cost(item.new) - _cost(item.old)])
    before = _measures_total([item.old for item in listed], components)
    after = _measures_total([item.new for item in listed], components)
    change = sum((_cost(item.new) - _cost(item.old) for item in listed), Decimal(0))
    total: list[CellValue] = [
        "Total",
        None,
        None,
        None,
        None,
        *(value for pair in zip(before, after, strict=True) for value in pair),
        change,
    ]
    return [Sheet(f"Changes vs {old}", columns, rows, [total])]


def _cost(line: ChargebackLine | None) -> Decimal:
    return line.cost_usd if line else Decimal(0)


def _measures(line: ChargebackLine | None, components: Sequence[str]) -> list[CellValue]:
    """A line's columns as this statement shows them; blanks for a line that is not there.

    A component the line does not have shows as zero, and Other is what its cost leaves
    after the shown components, so a row adds up whatever components the old version had."""
    if line is None:
        return [None] * (len(components) + 4)
    parts = [line.components_usd.get(name, Decimal(0)) for name in components]
    other = line.cost_usd - sum(parts, Decimal(0))
    return [line.calls, round_minutes(line.minutes), line.cost_usd, *parts, other]


def _measures_total(
    lines: Sequence[ChargebackLine | None], components: Sequence[str]
) -> list[CellValue]:
    present = [line for line in lines if line is not None]
    minutes = sum((round_minutes(line.minutes) for line in present), Decimal(0))
    cost = sum((line.cost_usd for line in present), Decimal(0))
    parts = [
        sum((line.components_usd.get(name, Decimal(0)) for line in present), Decimal(0))
        for name in components
    ]
    calls = sum(line.calls for line in present)
    return [calls, minutes, cost, *parts, cost - sum(parts, Decimal(0))]


def _owner_rows(center: CostCenterInfo) -> list[list[CellValue]]:
    return [
        ["Cost center ID", center.id],
        ["Cost center", center.name],
        ["Owner", center.owner_email],
    ]


def _pool_note_rows(statement: Statement) -> list[list[CellValue]]:
    return [[f"Shared pool {pool}", note] for pool, note in statement.pool_notes.items()]


def _about_rows(statement: Statement) -> list[list[CellValue]]:
    rows: list[list[CellValue]] = [
        ["Period", statement.period],
        ["Time zone", statement.timezone],
        ["Period start", statement.period_start.isoformat()],
        ["Period end (exclusive)", statement.period_end.isoformat()],
        ["Currency", statement.currency],
        ["Cost components", ", ".join(statement.components)],
        ["Other (USD)", OTHER_NOTE],
        *_pool_note_rows(statement),
    ]
    source = statement.provenance
    if source is None:
        return [*rows, ["Provenance", "not recorded for this statement"]]
    rows += [
        ["Inputs sha256", source.inputs_sha256],
        ["Airflow run", "recorded in manifest.json beside this file"],
        ["Config sha256", source.config_sha256],
        ["Mapping sha256", source.mapping_sha256],
        ["Generated by", source.generated_by],
    ]
    rows += [
        [f"Response {name} sha256", digest]
        for name, digest in sorted(source.responses_sha256.items())
    ]
    return rows
