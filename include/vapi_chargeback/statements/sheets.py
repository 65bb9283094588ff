"""The sheets that list statement lines: Detail, Assistants, Unallocated, Shared costs,
Corrections and adjustments, and a restatement's Changes vs v{N}.

Every sheet that lists an assistant shows its name beside its id, and every direct line
says which rule charged it. Figures come from the Statement, ``totals`` and
``keyfigures``; nothing is recomputed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from vapi_chargeback.statement import ChargebackLine, CostCenterInfo, Statement
from vapi_chargeback.statements.cells import (
    VARIABLE_NOTE,
    InCurrency,
    Names,
    charged_by,
    component_columns,
    currency_cells,
    currency_columns,
    subtotal_cells,
    unit_cells,
    unit_columns,
    usage_cells,
    usage_columns,
)
from vapi_chargeback.statements.keyfigures import is_usage, unit_costs
from vapi_chargeback.statements.totals import StatementTotals, is_pool, shown_minutes, subtotal
from vapi_chargeback.statements.workbook import CellValue, Column, Sheet, TitleValue

CORRECTIONS_SHEET = "Corrections and adjustments"
ASSISTANTS_SHEET = "Assistants"
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
UNKNOWN_REASON = (
    "Not allocated by the configured rules; see 'Who pays for a call' in the documentation."
)


def _assistant_columns() -> list[Column]:
    return [Column("Assistant ID"), Column("Assistant")]


def detail_sheet(
    statement: Statement, totals: StatementTotals, money: InCurrency | None = None
) -> Sheet:
    """Every line of the statement; public so the writer benchmark measures the real sheet.

    A last column Corrects (the corrected statement id) only in a month with corrections."""
    names = Names(statement)
    corrects = any(line.is_correction for line in statement.lines)
    columns = [
        Column("Cost center ID"),
        Column("Cost center"),
        Column("Team"),
        *_assistant_columns(),
        Column("Allocation"),
        Column("Charged by"),
        *usage_columns(),
        *component_columns(statement),
        *currency_columns(money),
        *([Column("Corrects")] if corrects else []),
    ]
    rows = [
        [
            line.cost_center_id,
            line.cost_center_name,
            line.team,
            line.assistant_id,
            names.of(line),
            line.allocation,
            charged_by(line),
            *usage_cells(line),
            *currency_cells(money, [line]),
            *([line.corrects] if corrects else []),
        ]
        for line in statement.lines
    ]
    footer: list[list[CellValue]] = [
        [
            "Total",
            *[None] * 6,
            *subtotal_cells(totals.total),
            *([money.total] if money else []),
            *([None] if corrects else []),
        ]
    ]
    return Sheet("Detail", columns, rows, footer)


def owner_detail(
    statement: Statement,
    center: CostCenterInfo,
    direct: Sequence[ChargebackLine],
    money: InCurrency | None,
) -> Sheet:
    """An owner's direct lines (one per team and assistant) with their unit costs; a note
    above them when some were charged by the cost-center variable."""
    names = Names(statement)
    columns = [
        Column("Team"),
        *_assistant_columns(),
        Column("Charged by"),
        *usage_columns(),
        *component_columns(statement),
        *currency_columns(money),
        Column("Successful calls"),
        *unit_columns(),
    ]
    rows: list[list[CellValue]] = []
    for line in direct:
        costs = unit_costs([line])
        rows.append(
            [
                line.team,
                line.assistant_id,
                names.of(line),
                charged_by(line),
                *usage_cells(line),
                *currency_cells(money, [line]),
                costs.successful_calls,
                *unit_cells(costs),
            ]
        )
    costs = unit_costs(direct)
    footer: list[list[CellValue]] = [
        [
            "Total",
            None,
            None,
            None,
            *subtotal_cells(subtotal(direct, statement.components)),
            *currency_cells(money, direct),
            costs.successful_calls,
            *unit_cells(costs),
        ]
    ]
    heading: list[list[TitleValue]] = []
    if any(line.charged_by == "variable" for line in direct):
        heading = [[f"Detail: {center.name}"], ["Note", VARIABLE_NOTE]]
    return Sheet("Detail", columns, rows, footer, heading)


def assistants_sheet(statement: Statement) -> Sheet:
    """Usage and unit costs per cost center and assistant, largest cost first: what the
    Summary gives per cost center, one level down."""
    names = Names(statement)
    groups: dict[tuple[str, str], list[ChargebackLine]] = {}
    for line in statement.lines:
        if is_usage(line):
            groups.setdefault((line.cost_center_id, line.assistant_id), []).append(line)
    costs = {key: unit_costs(members) for key, members in groups.items()}
    order = sorted(groups, key=lambda key: (-costs[key].cost_usd, key))
    rows: list[list[CellValue]] = []
    for key in order:
        members, item = groups[key], costs[key]
        rules = sorted({charged_by(line) for line in members} - {""})
        rows.append(
            [
                key[0],
                members[0].cost_center_name,
                key[1],
                names.of(members[0]),
                ", ".join(rules),
                item.calls,
                item.minutes,
                item.successful_calls,
                item.cost_usd,
                *unit_cells(item),
            ]
        )
    whole = unit_costs(statement.lines)
    footer: list[list[CellValue]] = [
        [
            "Total",
            *[None] * 4,
            whole.calls,
            whole.minutes,
            whole.successful_calls,
            whole.cost_usd,
            *unit_cells(whole),
        ]
    ]
    columns = [
        Column("Cost center ID"),
        Column("Cost center"),
        *_assistant_columns(),
        Column("Charged by"),
        Column("Calls"),
        Column("Minutes"),
        Column("Successful calls"),
        Column("Cost (USD)"),
        *unit_columns(),
    ]
    return Sheet(ASSISTANTS_SHEET, columns, rows, footer)


def unallocated_sheet(statement: Statement, lines: list[ChargebackLine]) -> Sheet:
    names = Names(statement)
    columns = [
        Column("Reason"),
        Column("Explanation"),
        *_assistant_columns(),
        *usage_columns(),
        *component_columns(statement),
    ]
    rows: list[list[CellValue]] = []
    for line in lines:
        reason = line.allocation.removeprefix("unallocated:")
        explanation = (
            f"{item_name(line)}'s unallocated lines (corrects {line.corrects})."
            if line.is_correction
            else REASONS.get(reason, UNKNOWN_REASON)
        )
        rows.append([reason, explanation, line.assistant_id, names.of(line), *usage_cells(line)])
    footer: list[list[CellValue]] = [
        ["Total", None, None, None, *subtotal_cells(subtotal(lines, statement.components))]
    ]
    return Sheet("Unallocated", columns, rows, footer)


def shared_costs_sheet(
    statement: Statement, shared: Sequence[ChargebackLine], money: InCurrency | None
) -> Sheet:
    """One row per pool share: the pool's cost, which counts only as Shared. A Note column,
    only where a pool has a note, says how the pool was split when its configured rule
    alone does not (see ``Statement.pool_notes``)."""
    names = Names(statement)
    pools = [line.allocation.removeprefix("shared:") for line in shared]
    notes = [statement.pool_notes.get(pool, "") for pool in pools]
    noted = any(notes)
    columns = [
        Column("Pool"),
        Column("Team"),
        *_assistant_columns(),
        *usage_columns(),
        *currency_columns(money),
        *([Column("Note")] if noted else []),
    ]
    rows: list[list[CellValue]] = [
        [
            pool,
            line.team,
            line.assistant_id,
            names.of(line),
            line.calls,
            shown_minutes(line.minutes),
            line.cost_usd,
            *currency_cells(money, [line]),
            *([note] if noted else []),
        ]
        for pool, line, note in zip(pools, shared, notes, strict=True)
    ]
    total = subtotal(shared, statement.components)
    footer: list[list[CellValue]] = [
        [
            "Total",
            None,
            None,
            None,
            total.calls,
            total.minutes,
            total.cost_usd,
            *currency_cells(money, shared),
            *([None] if noted else []),
        ]
    ]
    return Sheet("Shared costs", columns, rows, footer)


def corrections_sheet(statement: Statement, lines: Sequence[ChargebackLine]) -> Sheet:
    """An owner's corrections of earlier months and invoice adjustment, one row per line."""
    names = Names(statement)
    columns = [
        Column("Item"),
        Column("Corrects"),
        Column("Team"),
        *_assistant_columns(),
        *usage_columns(),
        *component_columns(statement),
    ]
    rows: list[list[CellValue]] = [
        [
            item_name(line),
            line.corrects,
            line.team,
            line.assistant_id,
            names.of(line),
            *usage_cells(line),
        ]
        for line in lines
    ]
    total: list[CellValue] = [
        "Total",
        *[None] * 4,
        *subtotal_cells(subtotal(lines, statement.components)),
    ]
    return Sheet(CORRECTIONS_SHEET, columns, rows, [total])


def item_name(line: ChargebackLine) -> str:
    if line.is_correction:
        return f"Correction of {line.allocation.split(':', 1)[1]}"
    return "Invoice adjustment"


def changes_sheets(statement: Statement, center_id: str | None) -> list[Sheet]:
    """ "Changes vs v{N}" of a restatement: every changed line (the org's workbook) or those
    of one cost center (its owner's), old and new value side by side per column, and the
    change in cost; totals below."""
    changes = statement.changes_vs
    if changes is None:
        return []
    names = Names(statement)
    old, new = f"v{changes.version}", f"v{statement.version}"
    measures = [column.header for column in [*usage_columns(), *component_columns(statement)]]
    columns = [
        Column("Change"),
        Column("Cost center ID"),
        Column("Team"),
        *_assistant_columns(),
        Column("Allocation"),
        *(Column(f"{measure} {version}") for measure in measures for version in (old, new)),
        Column("Cost change (USD)"),
    ]
    listed = [item for item in changes.lines if center_id in (None, item.key[0])]
    components = statement.components
    rows: list[list[CellValue]] = []
    for item in listed:
        center, team, assistant, allocation = item.key
        shown = item.new or item.old
        name = names.of(shown) if shown else ""
        before, after = _measures(item.old, components), _measures(item.new, components)
        cells = [value for pair in zip(before, after, strict=True) for value in pair]
        rows.append(
            [
                item.kind,
                center,
                team,
                assistant,
                name,
                allocation,
                *cells,
                _cost(item.new) - _cost(item.old),
            ]
        )
    before = _measures_total([item.old for item in listed], components)
    after = _measures_total([item.new for item in listed], components)
    change = sum((_cost(item.new) - _cost(item.old) for item in listed), Decimal(0))
    total: list[CellValue] = [
        "Total",
        *[None] * 5,
        *(value for pair in zip(before, after, strict=True) for value in pair),
        change,
    ]
    return [Sheet(f"Changes vs {old}", columns, rows, [total])]


def _cost(line: ChargebackLine | None) -> Decimal:
    return line.cost_usd if line else Decimal(0)


def _measures(line: ChargebackLine | None, components: Sequence[str]) -> list[CellValue]:
    """A line's columns as this statement shows them; blanks for a line that is not there.

    A component the line does not have shows as zero, and Other is what its cost leaves
    after the shown components, so a row adds up whatever components the old version had.
    A pool's line shows its cost only, as everywhere."""
    if line is None:
        return [None] * (len(components) + 4)
    if is_pool(line):
        return [
            line.calls,
            shown_minutes(line.minutes),
            line.cost_usd,
            *[None] * (len(components) + 1),
        ]
    parts = [line.components_usd.get(name, Decimal(0)) for name in components]
    other = line.cost_usd - sum(parts, Decimal(0))
    return [line.calls, shown_minutes(line.minutes), line.cost_usd, *parts, other]


def _measures_total(
    lines: Sequence[ChargebackLine | None], components: Sequence[str]
) -> list[CellValue]:
    present = [line for line in lines if line is not None]
    usage = [line for line in present if not is_pool(line)]
    minutes = sum((shown_minutes(line.minutes) for line in present), Decimal(0))
    cost = sum((line.cost_usd for line in present), Decimal(0))
    parts = [
        sum((line.components_usd.get(name, Decimal(0)) for line in usage), Decimal(0))
        for name in components
    ]
    calls = sum(line.calls for line in present)
    other = sum((line.cost_usd for line in usage), Decimal(0)) - sum(parts, Decimal(0))
    return [calls, minutes, cost, *parts, other]
