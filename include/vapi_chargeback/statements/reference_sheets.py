"""Reconciliation, About and the owners' query sheets (their breakdowns).

About says where the figures come from and what each one means (Other, the charging
rule, % allocated, unit costs, the exchange rate). A query sheet shows an owner's
breakdown with the same header style as every other sheet (titles, not the query's
``snake_case`` names), each assistant's name beside its id, and its days as dates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from vapi_chargeback.close.tieout import NOT_TIED
from vapi_chargeback.statement import Breakdown, CostCenterInfo, Statement
from vapi_chargeback.statements.cells import CHARGED_BY_NOTE, OTHER_NOTE, Names
from vapi_chargeback.statements.summary_sheet import fx_text
from vapi_chargeback.statements.workbook import CellValue, Column, Sheet

FIELDS = [Column("Field"), Column("Value")]
USAGE_NOTE = (
    "Usage = this month's calls (direct and unallocated lines). % allocated (of usage) = "
    "usage charged to a cost center ÷ usage; % allocated (incl. shared pools) counts "
    "everything but Unallocated, pools included, against the total."
)
UNIT_NOTE = (
    "$ per call, per minute and per successful call = usage cost ÷ calls, minutes or calls "
    "whose successEvaluation is true; stored exact, shown to four places; blank where the "
    "divisor is zero or not known."
)
HEADER_WORDS = {"id": "ID", "usd": "(USD)", "llm": "LLM", "stt": "STT", "tts": "TTS"}
ASSISTANT_COLUMNS = frozenset({"assistant_id", "assistant", "assistantId"})
DATE_COLUMNS = frozenset({"day", "week", "month", "date"})
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
CAMEL_BREAK = re.compile(r"(?<=[a-z])(?=[A-Z])")


def reconciliation_sheet(statement: Statement) -> Sheet:
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


def about_sheet(statement: Statement, center: CostCenterInfo | None = None) -> Sheet:
    owner: list[list[CellValue]] = (
        []
        if center is None
        else [
            ["Cost center ID", center.id],
            ["Cost center", center.name],
            ["Owner", center.owner_email],
        ]
    )
    return Sheet("About", FIELDS, owner + _about_rows(statement))


def _about_rows(statement: Statement) -> list[list[CellValue]]:
    organisation: list[list[CellValue]] = (
        [["Organisation", statement.org_name]] if statement.org_name else []
    )
    pools: list[list[CellValue]] = [
        [f"Shared pool {pool}", note] for pool, note in statement.pool_notes.items()
    ]
    rows: list[list[CellValue]] = [
        *organisation,
        ["Period", statement.period],
        ["Time zone", statement.timezone],
        ["Period start", statement.period_start.isoformat()],
        ["Period end (exclusive)", statement.period_end.isoformat()],
        ["Currency", statement.currency],
        *_fx_rows(statement),
        ["Cost components", ", ".join(statement.components)],
        ["Other (USD)", OTHER_NOTE],
        ["Charged by", CHARGED_BY_NOTE],
        ["Usage and % allocated", USAGE_NOTE],
        ["Unit costs", UNIT_NOTE],
        *pools,
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


def _fx_rows(statement: Statement) -> list[list[CellValue]]:
    fx = statement.fx
    if fx is None:
        return []
    return [["Reporting currency", fx.currency], ["Exchange rate", fx_text(fx)]]


def header_title(name: str) -> str:
    """A query column's name as a sheet header: ``cost_usd`` → ``Cost (USD)``,
    ``success_evaluation`` → ``Success evaluation``; a name that is already a title stays."""
    if name in ASSISTANT_COLUMNS:
        return "Assistant ID"
    if " " in name or name[:1].isupper():
        return name
    words = CAMEL_BREAK.sub("_", name).replace(".", "_").lower().split("_")
    text = " ".join(HEADER_WORDS.get(word, word) for word in words if word)
    return text[:1].upper() + text[1:]


def query_sheets(
    statement: Statement, breakdowns: Sequence[Breakdown], titles: Sequence[str]
) -> list[Sheet]:
    names = Names(statement)
    return [query_sheet(title, item, names) for title, item in zip(titles, breakdowns, strict=True)]


def query_sheet(title: str, breakdown: Breakdown, names: Names) -> Sheet:
    """A breakdown as a sheet: title headers, an Assistant (name) column after each
    assistant id column, ISO days as dates, and its total row as the bold footer."""
    assistant = [name in ASSISTANT_COLUMNS for name in breakdown.columns]
    dated = [name in DATE_COLUMNS for name in breakdown.columns]
    columns: list[Column] = []
    for name, is_assistant in zip(breakdown.columns, assistant, strict=True):
        columns.append(Column(header_title(name), rate=name.startswith("avg_cost")))
        if is_assistant:
            columns.append(Column("Assistant"))

    special = [
        (index, is_assistant, is_date)
        for index, (is_assistant, is_date) in enumerate(zip(assistant, dated, strict=True))
        if is_assistant or is_date
    ]
    width = len(breakdown.columns)

    def cells(row: Sequence[CellValue]) -> list[CellValue]:
        """The row with dates parsed and names inserted; the other values copied in runs
        (a breakdown holds tens of thousands of rows, most of their values plain)."""
        if len(row) != width:
            raise ValueError(
                f"breakdown {breakdown.definition_id!r}: {len(row)} values for {width} columns"
            )
        shown: list[CellValue] = []
        start = 0
        for index, is_assistant, is_date in special:
            shown.extend(row[start:index])
            value = row[index]
            shown.append(_as_date(value) if is_date else value)
            if is_assistant:
                shown.append(names.get(value) if isinstance(value, str) else None)
            start = index + 1
        shown.extend(row[start:])
        return shown

    footer = [cells(breakdown.total)] if breakdown.total else []
    return Sheet(title, columns, [cells(row) for row in breakdown.rows], footer)


def _as_date(value: CellValue) -> CellValue:
    """A day bucket as a date cell; other values (a partial bucket's label …) as they are."""
    if isinstance(value, str) and ISO_DATE.fullmatch(value):
        return date.fromisoformat(value)
    return value
