"""The finance workbooks: what goes on which sheet (layout rules live in ``workbook``).

``chargeback-{YYYY-MM}.xlsx`` is the org-wide statement finance books from: Summary
by cost center, Detail (every line), Unallocated (with the reason spelled out),
Reconciliation and About (provenance). ``cost-centers/{id}-{YYYY-MM}.xlsx`` is what
one owner receives: their Summary, Detail, Shared costs, one sheet per query
definition they configured, and About. Every figure is taken from the Statement or
from ``totals``; nothing is recomputed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vapi_chargeback.money import round_minutes
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, CostCenterInfo, Statement
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


def statement_workbook_name(period: str) -> str:
    return f"chargeback-{period}.xlsx"


def cost_center_workbook_name(center_id: str, period: str) -> str:
    return f"cost-centers/{center_id}-{period}.xlsx"


def write_statement_workbook(statement: Statement, totals: StatementTotals, path: Path) -> int:
    """Write the org-wide workbook; return its number of statement lines (Detail rows)."""
    sheets = [
        _summary(statement, totals),
        detail_sheet(statement, totals),
        _unallocated(statement, totals.lines_by_center[UNALLOCATED]),
        _reconciliation(statement),
        Sheet("About", _FIELDS, _about_rows(statement)),
    ]
    write_workbook(path, sheets, _info(statement, f"Chargeback statement {statement.period}"))
    return len(statement.lines)


def write_cost_center_workbook(
    statement: Statement, center: CostCenterInfo, lines: Sequence[ChargebackLine], path: Path
) -> int:
    """Write one owner's workbook; return its number of statement lines."""
    direct = [line for line in lines if not line.allocation.startswith("shared:")]
    shared = [line for line in lines if line.allocation.startswith("shared:")]
    breakdowns = statement.breakdowns.get(center.id, [])
    fixed = ["Summary", "Detail", "Shared costs", "About"]
    titles = safe_sheet_titles([*fixed, *(item.title for item in breakdowns)])
    components = _component_columns(statement)
    sheets = [
        _owner_summary(statement, lines),
        Sheet(
            "Detail",
            [Column("Team"), Column("Assistant ID"), *_usage_columns(), *components],
            [[line.team, line.assistant_id, *_usage(line)] for line in direct],
            [["Total", None, *_subtotal_cells(subtotal(direct, statement.components))]],
        ),
        _shared_costs(statement, shared, components),
        *(
            Sheet(title, [Column(name) for name in item.columns], item.rows)
            for title, item in zip(titles[len(fixed) :], breakdowns, strict=True)
        ),
        Sheet("About", _FIELDS, _owner_rows(center) + _about_rows(statement)),
    ]
    title = f"Chargeback statement {statement.period}: {center.name}"
    write_workbook(path, sheets, _info(statement, title))
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


def _info(statement: Statement, title: str) -> DocumentInfo:
    return DocumentInfo(
        title=title,
        subject=f"Vapi costs by cost center, {statement.period} ({statement.timezone})",
        creator=CREATOR,
        moment=statement.period_end,
    )


def _component_columns(statement: Statement) -> list[Column]:
    labels = [
        COMPONENT_LABELS.get(name, name.replace("_", " ").capitalize())
        for name in statement.components
    ]
    return [*(Column(f"{label} (USD)") for label in labels), Column("Other (USD)")]


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


def _summary(statement: Statement, totals: StatementTotals) -> Sheet:
    names = {center.id: (center.name, center.owner_email) for center in statement.cost_centers}
    names[UNALLOCATED] = ("Unallocated", "")
    whole = totals.total.cost_usd
    rows: list[list[CellValue]] = [
        [
            center_id,
            *names[center_id],
            *_subtotal_cells(item),
            item.shared_usd,
            share(item.cost_usd, whole),
        ]
        for center_id, item in totals.by_center.items()
    ]
    blank = [None] * (len(statement.components) + 2)
    footer: list[list[CellValue]] = [
        [
            "Total",
            None,
            None,
            *_subtotal_cells(totals.total),
            totals.total.shared_usd,
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
        Column("% of total", percent=True),
    ]
    return Sheet("Summary", columns, rows, footer)


def detail_sheet(statement: Statement, totals: StatementTotals) -> Sheet:
    """Every line of the statement; public so the writer benchmark measures the real sheet."""
    columns = [
        Column("Cost center ID"),
        Column("Cost center"),
        Column("Team"),
        Column("Assistant ID"),
        Column("Allocation"),
        *_usage_columns(),
        *_component_columns(statement),
    ]
    rows = [
        [
            line.cost_center_id,
            line.cost_center_name,
            line.team,
            line.assistant_id,
            line.allocation,
            *_usage(line),
        ]
        for line in statement.lines
    ]
    footer: list[list[CellValue]] = [
        ["Total", None, None, None, None, *_subtotal_cells(totals.total)]
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
        rows.append([reason, REASONS.get(reason, UNKNOWN_REASON), line.assistant_id, *_usage(line)])
    footer: list[list[CellValue]] = [
        ["Total", None, None, *_subtotal_cells(subtotal(lines, statement.components))]
    ]
    return Sheet("Unallocated", columns, rows, footer)


def _reconciliation(statement: Statement) -> Sheet:
    check = statement.reconciliation
    columns = [Column("Item"), Column("Amount (USD)")]
    if check is None:
        return Sheet(
            "Reconciliation", columns, [["Reconciliation", "not performed for this statement"]]
        )
    rows: list[list[CellValue]] = [
        ["Org total (independent ungrouped query)", check.org_total_usd],
        ["Shared costs", check.shared_total_usd],
        ["Expected total (org + shared)", check.org_total_usd + check.shared_total_usd],
        ["Statement lines total", check.lines_total_usd],
        ["Difference (lines − expected)", check.difference_usd],
        ["Result", "OK" if check.ok else "MISMATCH"],
    ]
    if check.empty_month_expected:
        rows.append(["Empty month", "no calls reported; the run said that was expected"])
    return Sheet("Reconciliation", columns, rows)


def _owner_summary(statement: Statement, lines: Sequence[ChargebackLine]) -> Sheet:
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
    return Sheet("Summary", columns, rows, footer)


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
