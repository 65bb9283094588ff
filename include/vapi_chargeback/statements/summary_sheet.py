"""The Summary sheet of each workbook: a page that stands alone.

It opens with a title block saying which statement it is (org, period and zone, status
and statement id, the inputs' fingerprint and, with a reporting currency, the rate, its
date, rule and source), then the key figures (``statements.keyfigures``: computed once,
also in the manifest), then the table: by cost center for finance, by team, allocation
and charging rule for an owner. An owner who sees lines charged by the cost-center
variable reads why beside them, since such a line may carry another team's assistant.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from decimal import Decimal

from vapi_chargeback.statement import (
    FINAL,
    UNALLOCATED,
    ChargebackLine,
    CostCenterInfo,
    FxRate,
    Statement,
)
from vapi_chargeback.statements.cells import (
    VARIABLE_NOTE,
    InCurrency,
    charged_by,
    component_columns,
    currency_cells,
    currency_columns,
    subtotal_cells,
    unit_cells,
    unit_columns,
    usage_columns,
)
from vapi_chargeback.statements.keyfigures import KeyFigures, key_figures, unit_costs
from vapi_chargeback.statements.totals import (
    StatementTotals,
    Subtotal,
    is_pool,
    share,
    subtotal,
)
from vapi_chargeback.statements.workbook import CellValue, Column, Figure, Sheet, TitleValue

DRAFT_STATUS = "DRAFT: not approved, the figures may still change"
FINAL_STATUS = "FINAL: approved and booked"
RULES = {
    "month_end": "rate of the last date on or before the period's last day",
    "month_average": "average of the period's daily rates",
}


def title_block(statement: Statement, title: str, statement_id: str) -> list[list[TitleValue]]:
    """Which statement this is and where it stands: the first thing a reader sees."""
    final = statement.status == FINAL
    last_day = statement.period_end.date() - timedelta(days=1)
    rows: list[list[TitleValue]] = [[title]]
    if statement.org_name:
        rows.append(["Organisation", statement.org_name])
    rows += [
        [
            "Period",
            f"{statement.period}: {statement.period_start.date()} to {last_day}, "
            f"{statement.timezone} time",
        ],
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
    source = statement.provenance
    rows.append(["Inputs sha256", source.inputs_sha256 if source else "not recorded"])
    if statement.fx is not None:
        rows.append(["Exchange rate", fx_text(statement.fx)])
    return rows


def fx_text(fx: FxRate) -> str:
    """The rate with its date, rule and source, as every Summary and About states it."""
    dated = f"{fx.first_date} to {fx.rate_date}" if fx.first_date is not None else f"{fx.rate_date}"
    return (
        f"{fx.rate} {fx.currency} per USD of {dated} ({fx.rule}: {RULES[fx.rule]}); "
        f"source {fx.source}"
    )


def _key_figure_rows(
    figures: KeyFigures,
    converted: tuple[str, Decimal] | None,
    owner: bool,
    budget: Decimal | None = None,
) -> list[list[TitleValue]]:
    """``converted``: the reporting currency and the total in it; ``budget``: the owner's
    monthly budget, when one is configured."""
    rows: list[list[TitleValue]] = [[], ["Key figures"], ["Total (USD)", figures.total_usd]]
    if converted is not None:
        rows.append([f"Total ({converted[0]})", converted[1]])
    if budget is not None:
        rows += [
            ["Budget (USD)", budget, "the cost center's monthly budget (chargeback.yaml)"],
            [
                "% of budget",
                Figure(share(figures.total_usd, budget), "share"),
                "total ÷ budget",
            ],
        ]
    rows.append(
        ["Usage (USD)", figures.usage.cost_usd, "this month's calls: direct and unallocated lines"]
    )
    if owner:
        rows.append(["Shared pools (USD)", figures.shared_usd])
    else:
        rows.append(
            [
                "% allocated (of usage)",
                Figure(figures.allocated_share_of_usage, "share"),
                "usage charged to a cost center ÷ usage",
            ]
        )
        if figures.shared_usd:
            rows.append(
                [
                    "% allocated (incl. shared pools)",
                    Figure(figures.allocated_share_of_total, "share"),
                    "everything but Unallocated ÷ total; pools always count as allocated",
                ]
            )
    if figures.previous_period is None:
        rows.append(["Change vs previous month", "no previous month published"])
    else:
        rows.append(
            [
                f"Change vs {figures.previous_period} (USD)",
                figures.change_usd,
                Figure(figures.change_share, "share"),
            ]
        )
    usage = figures.usage
    no_usage = "no usage" if not usage.calls else ""
    successes = usage.successful_calls
    for label, rate, why in (
        ("$ per minute", usage.per_minute, no_usage or "no minutes"),
        ("$ per call", usage.per_call, no_usage),
        (
            "$ per successful call",
            usage.per_successful_call,
            "successful calls not known" if successes is None else "no successful calls",
        ),
    ):
        rows.append([label, Figure(rate, "rate") if rate is not None else why])
    return rows


def finance_summary(
    statement: Statement,
    totals: StatementTotals,
    heading: list[list[TitleValue]],
    money: InCurrency | None,
) -> Sheet:
    """By cost center, with unit costs of its usage; Corrections and Invoice adjustment
    columns beside Shared only in a month that has such lines, Budget and % of budget
    beside % of total only when budgets are configured."""
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

    def fx(center_id: str | None) -> list[CellValue]:
        if money is None:
            return []
        if center_id is None:
            return [money.total]
        return [money.by_cost_center.get(center_id, Decimal(0))]

    budgets = statement.budgets_usd

    def budget(center_id: str | None, cost: Decimal) -> list[CellValue]:
        """Budget and % of budget; blank for a cost center without one (and Unallocated),
        the budgets' sum and no percentage on the total row."""
        if not budgets:
            return []
        if center_id is None:
            return [sum(budgets.values(), Decimal(0)), None]
        amount = budgets.get(center_id)
        return [None, None] if amount is None else [amount, share(cost, amount)]

    whole = totals.total.cost_usd
    rows: list[list[CellValue]] = [
        [
            center_id,
            *names[center_id],
            *subtotal_cells(item),
            *parts(item),
            share(item.cost_usd, whole),
            *budget(center_id, item.cost_usd),
            *fx(center_id),
            *unit_cells(unit_costs(totals.lines_by_center[center_id])),
        ]
        for center_id, item in totals.by_center.items()
    ]
    footer: list[list[CellValue]] = [
        [
            "Total",
            None,
            None,
            *subtotal_cells(totals.total),
            *parts(totals.total),
            share(whole, whole),
            *budget(None, whole),
            *fx(None),
            *unit_cells(unit_costs(statement.lines)),
        ]
    ]
    columns = [
        Column("Cost center ID"),
        Column("Cost center"),
        Column("Owner"),
        *usage_columns(),
        *component_columns(statement),
        Column("Shared (USD)"),
        *([Column("Corrections (USD)")] if corrections else []),
        *([Column("Invoice adjustment (USD)")] if adjustments else []),
        Column("% of total", percent=True),
        *([Column("Budget (USD)"), Column("% of budget", percent=True)] if budgets else []),
        *currency_columns(money),
        *unit_columns(),
    ]
    total = (money.currency, money.total) if money else None
    figures = _key_figure_rows(key_figures(statement), total, owner=False)
    return Sheet("Summary", columns, rows, footer, [*heading, *figures])


def owner_summary(
    statement: Statement,
    center: CostCenterInfo,
    lines: Sequence[ChargebackLine],
    heading: list[list[TitleValue]],
    money: InCurrency | None,
) -> Sheet:
    """By team, allocation and the rule that charged it."""
    groups: dict[tuple[str, str, str], list[ChargebackLine]] = {}
    for line in lines:
        groups.setdefault((line.team, line.allocation, charged_by(line)), []).append(line)

    def measures(members: Sequence[ChargebackLine]) -> list[CellValue]:
        """A pool's row shows its cost only, like its lines (it counts only as Shared)."""
        cells = subtotal_cells(subtotal(members, statement.components))
        if all(is_pool(line) for line in members):
            return [*cells[:3], *[None] * (len(cells) - 3)]
        return cells

    rows: list[list[CellValue]] = [
        [
            *key,
            *measures(members),
            *currency_cells(money, members),
            *unit_cells(unit_costs(members)),
        ]
        for key, members in groups.items()
    ]
    footer: list[list[CellValue]] = [
        [
            "Total",
            None,
            None,
            *subtotal_cells(subtotal(lines, statement.components)),
            *currency_cells(money, lines),
            *unit_cells(unit_costs(lines)),
        ]
    ]
    columns = [
        Column("Team"),
        Column("Allocation"),
        Column("Charged by"),
        *usage_columns(),
        *component_columns(statement),
        *currency_columns(money),
        *unit_columns(),
    ]
    total = (money.currency, money.sum(lines)) if money else None
    figures = _key_figure_rows(
        key_figures(statement, center.id),
        total,
        owner=True,
        budget=statement.budgets_usd.get(center.id),
    )
    notes: list[list[TitleValue]] = (
        [["Note", VARIABLE_NOTE]] if any(line.charged_by == "variable" for line in lines) else []
    )
    return Sheet("Summary", columns, rows, footer, [*heading, *notes, *figures])
