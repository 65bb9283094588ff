"""Subtotals of statement lines, computed once for the workbooks and the manifest.

Both show totals by cost center; computing them in one place keeps the Summary sheet
and ``manifest.json`` equal to the cent. Sums are exact ``Decimal`` additions of
amounts already rounded to the cent; minutes are summed as shown (rounded per line),
so a total equals the sum of the rows a reader sees.

Corrections of earlier months and the invoice adjustment are part of a cost center's
cost (they are charged like any line; calls and minutes of a correction are deltas), and
are also totalled apart, so a reader sees how much of a cost is not this month's usage.

Pools show only as Shared: a shared pool's line usually has no components, so its whole
cost would otherwise count once as Other and again as Shared. Components and Other here
are those of the other lines (``shown_other``), so cost = components + Other + Shared, and
Other is only what no analytics column covers. The CSV's ``other_usd`` keeps its
documented meaning (cost − Σ components on every line); only what the workbooks show
changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from vapi_chargeback.money import HUNDRED, percent_of
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, Statement

# shown_minutes moved to formatting (statement.py imports formatting); still imported from here.
from vapi_chargeback.statements.formatting import shown_minutes as shown_minutes

SHARE_PLACES = Decimal("0.000001")
"""Percent shares are fractions kept to 0.0001 %: finer than any display, still exact."""


@dataclass(frozen=True)
class Subtotal:
    calls: int
    minutes: Decimal
    cost_usd: Decimal
    components_usd: tuple[Decimal, ...]
    """In the statement's component order; pools excluded (they are ``shared_usd``)."""
    other_usd: Decimal
    """Σ ``shown_other``: pools excluded."""
    shared_usd: Decimal
    """Part of ``cost_usd`` that comes from shared-cost pools."""
    corrections_usd: Decimal
    """Part of ``cost_usd`` that corrects earlier, final months (``correction:`` lines)."""
    adjustments_usd: Decimal
    """Part of ``cost_usd`` that ties the month to its invoice (``adjustment:invoice``)."""


def is_pool(line: ChargebackLine) -> bool:
    return line.allocation.startswith("shared:")


def shown_other(line: ChargebackLine) -> Decimal | None:
    """A line's Other as the workbooks show it; ``None`` (blank) on a shared pool's line."""
    return None if is_pool(line) else line.other_usd


def subtotal(lines: Iterable[ChargebackLine], components: Sequence[str]) -> Subtotal:
    calls = 0
    minutes = cost = other = shared = corrections = adjustments = Decimal(0)
    parts = [Decimal(0)] * len(components)
    for line in lines:
        calls += line.calls
        minutes += shown_minutes(line.minutes)
        cost += line.cost_usd
        if is_pool(line):
            shared += line.cost_usd
            continue
        other += line.other_usd
        if line.is_correction:
            corrections += line.cost_usd
        elif line.is_adjustment:
            adjustments += line.cost_usd
        for index, name in enumerate(components):
            parts[index] += line.components_usd[name]
    return Subtotal(calls, minutes, cost, tuple(parts), other, shared, corrections, adjustments)


def lines_by_cost_center(statement: Statement) -> dict[str, list[ChargebackLine]]:
    """Configured cost centers in configured order (even without lines), then ``UNALLOCATED``."""
    grouped: dict[str, list[ChargebackLine]] = {center.id: [] for center in statement.cost_centers}
    grouped[UNALLOCATED] = []
    for line in statement.lines:
        grouped[line.cost_center_id].append(line)
    return grouped


def totals_by_cost_center(
    statement: Statement, grouped: dict[str, list[ChargebackLine]] | None = None
) -> dict[str, Subtotal]:
    groups = grouped if grouped is not None else lines_by_cost_center(statement)
    return {center: subtotal(lines, statement.components) for center, lines in groups.items()}


def grand_total(by_center: dict[str, Subtotal]) -> Subtotal:
    """Sum of subtotals, equal to the subtotal of all lines because addition is exact."""
    values = list(by_center.values())
    width = len(values[0].components_usd) if values else 0
    return Subtotal(
        calls=sum(item.calls for item in values),
        minutes=sum((item.minutes for item in values), Decimal(0)),
        cost_usd=sum((item.cost_usd for item in values), Decimal(0)),
        components_usd=tuple(
            sum((item.components_usd[index] for item in values), Decimal(0))
            for index in range(width)
        ),
        other_usd=sum((item.other_usd for item in values), Decimal(0)),
        shared_usd=sum((item.shared_usd for item in values), Decimal(0)),
        corrections_usd=sum((item.corrections_usd for item in values), Decimal(0)),
        adjustments_usd=sum((item.adjustments_usd for item in values), Decimal(0)),
    )


def share(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part / whole`` as a fraction for a percent cell; ``None`` when there is no whole."""
    percent = percent_of(part, whole)
    return None if percent is None else (percent / HUNDRED).quantize(SHARE_PLACES)


@dataclass(frozen=True)
class StatementTotals:
    """Everything the workbooks and the manifest total, computed in one pass over the lines."""

    lines_by_center: dict[str, list[ChargebackLine]]
    by_center: dict[str, Subtotal]
    total: Subtotal

    @property
    def unallocated_usd(self) -> Decimal:
        return self.by_center[UNALLOCATED].cost_usd

    @property
    def allocated_usd(self) -> Decimal:
        return self.total.cost_usd - self.unallocated_usd


def summarize(statement: Statement) -> StatementTotals:
    grouped = lines_by_cost_center(statement)
    by_center = totals_by_cost_center(statement, grouped)
    return StatementTotals(grouped, by_center, grand_total(by_center))
