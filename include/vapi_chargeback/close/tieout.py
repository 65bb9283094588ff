"""The invoice tie-out: make a month's statement add up to what Vapi invoiced, to the cent.

**What the invoice ties to.** Vapi invoices Vapi usage: the calls. A statement also
carries fixed shared pools (a platform fee, phone numbers …) that the org adds on top
from its config and that no Vapi invoice of usage contains. So the invoice ties to the
statement's *usage total*: Σ cost of its direct, unallocated and re-spread usage lines
(``shared:<pool>`` of a ``source`` pool such as calls without assistant) — everything but
the fixed pools and lines that are not this month's usage (``correction:`` carried from an
earlier month, ``adjustment:`` lines themselves). For a reconciled statement this is
exactly ``Reconciliation.org_total_usd``, the ungrouped API total.

**How the difference is spread.** ``difference = invoice − usage total`` becomes one
``adjustment:invoice`` line per cost center, in proportion to each cost center's direct
cost (Σ of its ``direct`` lines), by largest remainder, so the lines add up to the
difference exactly and each is within one cent of its exact share. ``UNALLOCATED``
gets none: it belongs to no cost center and stays visible as what it is, for finance to
allocate; shared pools already follow their own rule. A cost center whose direct cost is
zero or negative (refunds) carries no share. The adjustment lines have no calls, minutes
or components: the whole amount is ``other_usd``, money no analytics column explains.

**Tolerance.** A small difference (rounding, a late-costed call) is booked as the
adjustment; a large one means a wrong invoice row, a wrong API key or an unsettled
month, and the month must not be approved until someone looks. The month is approvable
when ``|difference| ≤ tolerance % × usage total`` (default 2 %; with no usage, only an
exact match). Beyond it the adjustment lines are still computed, so the draft shows the
picture, but :attr:`TieOut.approvable` is false and :attr:`TieOut.message` names both
amounts and what to check.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict

from vapi_chargeback.close.invoices import INVOICES_NAME, Invoice
from vapi_chargeback.money import CENT, HUNDRED, round_money
from vapi_chargeback.split import split_exact
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, InvoiceTie
from vapi_chargeback.statements.formatting import money_text

ADJUSTMENT = "adjustment:invoice"
DEFAULT_TOLERANCE_PCT = Decimal(2)
NOT_TIED = "not tied to an invoice"
"""What a statement says where its month has no row in ``invoices.csv``."""
_NOT_USAGE_PREFIXES = ("correction:", "adjustment:")


@dataclass(frozen=True)
class TieOut:
    """A month's statement held against its invoice."""

    period: str
    invoice: Invoice
    usage_usd: Decimal
    """The statement's usage total, the figure the invoice ties to (see the module docstring)."""
    difference_usd: Decimal
    """``invoice.amount_usd − usage_usd``."""
    tolerance_pct: Decimal
    lines: list[ChargebackLine]
    """``adjustment:invoice`` lines, one per cost center with a non-zero share; Σ cost =
    ``difference_usd`` unless no cost center has direct cost to carry it."""
    within_tolerance: bool
    message: str
    """One sentence for the run log, the approval request and the Reconciliation sheet."""

    @property
    def approvable(self) -> bool:
        """Whether the month may be approved: within tolerance and the difference carried."""
        return self.within_tolerance and sum_cost(self.lines) == self.difference_usd

    @property
    def difference_pct(self) -> Decimal | None:
        return difference_pct(self.difference_usd, self.usage_usd)

    def statement_invoice(self) -> InvoiceTie:
        """The tie-out's figures as ``Statement.invoice`` carries them into the files."""
        return InvoiceTie(
            invoice_id=self.invoice.invoice_id,
            amount_usd=self.invoice.amount_usd,
            usage_usd=self.usage_usd,
            difference_usd=self.difference_usd,
            tolerance_pct=self.tolerance_pct,
            approvable=self.approvable,
            message=self.message,
        )

    def manifest_block(self) -> dict[str, Any]:
        """The manifest's ``invoice`` block (money as two-place strings)."""
        return InvoiceBlock(
            id=self.invoice.invoice_id,
            amount_usd=money_text(self.invoice.amount_usd),
            usage_usd=money_text(self.usage_usd),
            difference_usd=money_text(self.difference_usd),
            tolerance_pct=str(self.tolerance_pct),
            approvable=self.approvable,
            message=self.message,
        ).model_dump()


class InvoiceBlock(BaseModel):
    """The manifest's ``invoice`` block as read back (for the approval check and the page)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    amount_usd: str
    usage_usd: str
    difference_usd: str
    tolerance_pct: str
    approvable: bool
    message: str


def sum_cost(lines: Sequence[ChargebackLine]) -> Decimal:
    return sum((line.cost_usd for line in lines), Decimal(0))


def usage_total(lines: Sequence[ChargebackLine], fixed_pools: Collection[str] = ()) -> Decimal:
    """Σ cost of the lines that are this month's Vapi usage: all but fixed pools,
    corrections and adjustments (``fixed_pools``: names of the pools with an ``amount``)."""
    fixed = {f"shared:{name}" for name in fixed_pools}
    return sum_cost(
        [
            line
            for line in lines
            if line.allocation not in fixed and not line.allocation.startswith(_NOT_USAGE_PREFIXES)
        ]
    )


def direct_cost_by_cost_center(lines: Sequence[ChargebackLine]) -> dict[str, Decimal]:
    """Σ cost of each cost center's ``direct`` lines, in order of first appearance."""
    totals: dict[str, Decimal] = {}
    for line in lines:
        if line.allocation == "direct" and line.cost_center_id != UNALLOCATED:
            totals[line.cost_center_id] = (
                totals.get(line.cost_center_id, Decimal(0)) + line.cost_usd
            )
    return totals


def tie_out(
    period: str,
    lines: Sequence[ChargebackLine],
    invoice: Invoice,
    *,
    components: Sequence[str],
    fixed_pools: Collection[str] = (),
    tolerance_pct: Decimal = DEFAULT_TOLERANCE_PCT,
) -> TieOut:
    """Hold ``lines`` (the month's statement lines) against ``invoice``.

    ``components``: the statement's component names, so the adjustment lines carry the
    same columns (all zero). ``fixed_pools``: names of the fixed-amount shared pools.
    """
    if not isinstance(tolerance_pct, Decimal | int) or not 0 <= tolerance_pct <= HUNDRED:
        raise ValueError(f"tolerance_pct {tolerance_pct!r} is not a percentage from 0 to 100")
    if invoice.period != period:
        raise ValueError(f"invoice {invoice.invoice_id!r} is for {invoice.period}, not {period}")
    tolerance = Decimal(tolerance_pct)
    usage = usage_total(lines, fixed_pools)
    difference = invoice.amount_usd - usage
    within = abs(difference) * HUNDRED <= tolerance * abs(usage)
    weights = {
        center: max(cost, Decimal(0)) for center, cost in direct_cost_by_cost_center(lines).items()
    }
    names = {line.cost_center_id: line.cost_center_name for line in lines}
    carried = not difference or any(weights.values())
    shares = list(weights.values())
    parts = (
        split_exact(difference, shares) if difference and carried else [Decimal(0)] * len(shares)
    )
    adjustment = [
        _adjustment_line(center, names[center], part, components)
        for center, part in zip(weights, parts, strict=True)
        if part
    ]
    amounts = (
        f"invoice {invoice.invoice_id} is {money_text(invoice.amount_usd)} USD and the"
        f" statement's Vapi usage is {money_text(usage)} USD (difference {difference:+} USD,"
        f" {_share_text(difference, usage)})"
    )
    if not within:
        message = (
            f"{period} cannot be approved: {amounts}, beyond the {tolerance} % tolerance."
            f" Check that {INVOICES_NAME} line {invoice.line} has this invoice's amount and"
            " month, that every call of the month was costed when the run fetched it (a"
            " settlement delay, a later rerun), and that the vapi_default API key is the"
            " invoiced org's; then rerun the month"
        )
    elif not carried:
        message = (
            f"{period} cannot be approved: {amounts}, but no cost center has direct cost to"
            " carry the difference (every call is unallocated or shared). Map the assistants"
            f" to cost centers or correct {INVOICES_NAME} line {invoice.line}, then rerun the"
            " month"
        )
    elif not difference:
        message = f"{period}: {amounts}: tied to the cent, no adjustment"
    else:
        count = len(adjustment)
        message = (
            f"{period}: {amounts}, within the {tolerance} % tolerance: spread as {ADJUSTMENT}"
            f" over {count} cost center{'s' if count != 1 else ''} by direct cost"
        )
    return TieOut(period, invoice, usage, difference, tolerance, adjustment, within, message)


def difference_pct(difference: Decimal, usage: Decimal) -> Decimal | None:
    """``difference`` as a percentage of ``usage``, to two places; none without usage."""
    if not usage:
        return None
    return round_money(Fraction(difference) * 100 / Fraction(usage))


def _share_text(difference: Decimal, usage: Decimal) -> str:
    percent = difference_pct(difference, usage)
    return "no usage to compare with" if percent is None else f"{percent:+} % of the usage"


def _adjustment_line(
    center: str, name: str, amount: Decimal, components: Sequence[str]
) -> ChargebackLine:
    zero = Decimal("0.00")
    return ChargebackLine(
        cost_center_id=center,
        cost_center_name=name,
        team="",
        assistant_id="",
        allocation=ADJUSTMENT,
        calls=0,
        minutes=zero,
        cost_usd=amount.quantize(CENT),
        components_usd=dict.fromkeys(components, zero),
    )
