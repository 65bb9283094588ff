"""The statement's key figures and unit costs, computed once for every reader.

The workbooks' Summary, ``manifest.json`` (its ``key_figures`` block) and, through the
manifest, ``make demo`` and the mails all quote these numbers; computing them in one
pure place keeps a mail from disagreeing with the workbook it carries.

Definitions a reader otherwise guesses at:

- **Usage** is this month's Vapi usage: ``direct`` and ``unallocated:`` lines. Fixed shared
  pools, corrections of earlier months and the invoice adjustment are not usage.
- **% allocated** is the share of usage charged to a cost center (direct ÷ usage). The
  share of the whole statement charged to cost centers (pools included, which are always
  allocated) is given beside it, because with large pools the two differ.
- **Unit costs** ($/call, $/minute, $/successful call) are usage cost over usage calls,
  minutes (as shown, to the hundredth) or successful calls; ``None`` where the divisor is
  zero or unknown. They are kept exact to :data:`RATE_QUANTUM` and rounded only where shown.
- **Change vs the previous month** compares the statement's total with the sum of the
  previous published month's lines (the same cost center's lines for an owner).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, Statement
from vapi_chargeback.statements.formatting import minutes_text, money_text
from vapi_chargeback.statements.totals import share, shown_minutes

RATE_PLACES = 10
RATE_QUANTUM = Decimal(1).scaleb(-RATE_PLACES)
"""Unit costs are kept to 10⁻¹⁰ $: exact for any rate a price list states, far below display."""
RATE_SCALE = 10**RATE_PLACES


def is_usage(line: ChargebackLine) -> bool:
    return line.allocation == "direct" or line.allocation.startswith("unallocated:")


def unit_rate(amount: Decimal, units: Decimal | int | None) -> Decimal | None:
    """``amount / units`` rounded half away from zero (as ``money.round_money``) to
    :data:`RATE_QUANTUM`, trailing zeros dropped; ``None`` where there are no units.

    Exact: the quotient is taken on the integer ratios of both numbers, so no digit is
    lost before the one rounding (and it is quick enough for a row per assistant)."""
    if not units:
        return None
    top, bottom = amount.as_integer_ratio()
    per, unit = units.as_integer_ratio()
    numerator, denominator = top * unit * RATE_SCALE, bottom * per
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    if not quotient:
        return Decimal(0)
    return Decimal(quotient if numerator >= 0 else -quotient).scaleb(-RATE_PLACES).normalize()


@dataclass(frozen=True)
class UnitCosts:
    """Usage of a set of lines and its cost per call, per minute and per successful call."""

    calls: int
    minutes: Decimal
    successful_calls: int | None
    """``None`` when any line does not know its successful calls."""
    cost_usd: Decimal

    @property
    def per_call(self) -> Decimal | None:
        return unit_rate(self.cost_usd, self.calls)

    @property
    def per_minute(self) -> Decimal | None:
        return unit_rate(self.cost_usd, self.minutes)

    @property
    def per_successful_call(self) -> Decimal | None:
        return unit_rate(self.cost_usd, self.successful_calls)


def unit_costs(lines: Iterable[ChargebackLine]) -> UnitCosts:
    """Over the usage lines among ``lines``; minutes summed as shown (rounded per line)."""
    calls = 0
    minutes = cost = Decimal(0)
    successful: int | None = 0
    for line in lines:
        if not is_usage(line):
            continue
        calls += line.calls
        minutes += shown_minutes(line.minutes)
        cost += line.cost_usd
        successful = (
            None
            if successful is None or line.successful_calls is None
            else successful + line.successful_calls
        )
    return UnitCosts(calls, minutes, successful, cost)


@dataclass(frozen=True)
class KeyFigures:
    total_usd: Decimal
    """Every line: usage, pools, corrections and adjustments."""
    usage: UnitCosts
    allocated_usage_usd: Decimal
    """Usage charged to a cost center (``direct`` lines)."""
    shared_usd: Decimal
    allocated_share_of_usage: Decimal | None
    """Direct ÷ usage, as a fraction; ``None`` for an owner (all their usage is theirs)."""
    allocated_share_of_total: Decimal | None
    """Everything but the unallocated cost center ÷ total (pools count as allocated)."""
    previous_period: str | None
    previous_total_usd: Decimal | None

    @property
    def unallocated_usd(self) -> Decimal:
        return self.usage.cost_usd - self.allocated_usage_usd

    @property
    def change_usd(self) -> Decimal | None:
        if self.previous_total_usd is None:
            return None
        return self.total_usd - self.previous_total_usd

    @property
    def change_share(self) -> Decimal | None:
        """Change as a fraction of the previous total; ``None`` without one or from zero."""
        change = self.change_usd
        if change is None or self.previous_total_usd is None:
            return None
        return share(change, self.previous_total_usd)

    def manifest_block(self) -> dict[str, Any]:
        """As text (money to the cent, rates and shares exact), for ``manifest.json``."""

        def number(value: Decimal | None) -> str | None:
            return None if value is None else f"{value:f}"

        def money(value: Decimal | None) -> str | None:
            return None if value is None else money_text(value)

        return {
            "total_usd": money_text(self.total_usd),
            "usage_usd": money_text(self.usage.cost_usd),
            "allocated_usage_usd": money_text(self.allocated_usage_usd),
            "unallocated_usd": money_text(self.unallocated_usd),
            "shared_usd": money_text(self.shared_usd),
            "allocated_share_of_usage": number(self.allocated_share_of_usage),
            "allocated_share_of_total": number(self.allocated_share_of_total),
            "previous_period": self.previous_period,
            "previous_total_usd": money(self.previous_total_usd),
            "change_usd": money(self.change_usd),
            "change_share": number(self.change_share),
            "calls": self.usage.calls,
            "minutes": minutes_text(self.usage.minutes),
            "successful_calls": self.usage.successful_calls,
            "usd_per_call": number(self.usage.per_call),
            "usd_per_minute": number(self.usage.per_minute),
            "usd_per_successful_call": number(self.usage.per_successful_call),
        }


def key_figures(statement: Statement, center_id: str | None = None) -> KeyFigures:
    """The org's figures, or those of cost center ``center_id`` (its lines only)."""
    lines = _of(statement.lines, center_id)
    total = sum((line.cost_usd for line in lines), Decimal(0))
    usage = unit_costs(lines)
    allocated = sum(
        (line.cost_usd for line in lines if line.allocation == "direct"),
        Decimal(0),
    )
    shared = sum(
        (line.cost_usd for line in lines if line.allocation.startswith("shared:")), Decimal(0)
    )
    charged = sum(
        (line.cost_usd for line in lines if line.cost_center_id != UNALLOCATED), Decimal(0)
    )
    previous = statement.previous
    return KeyFigures(
        total_usd=total,
        usage=usage,
        allocated_usage_usd=allocated,
        shared_usd=shared,
        allocated_share_of_usage=None if center_id else share(allocated, usage.cost_usd),
        allocated_share_of_total=None if center_id else share(charged, total),
        previous_period=previous.period if previous else None,
        previous_total_usd=None
        if previous is None
        else sum((line.cost_usd for line in _of(previous.lines, center_id)), Decimal(0)),
    )


def _of(lines: Sequence[ChargebackLine], center_id: str | None) -> Sequence[ChargebackLine]:
    if center_id is None:
        return lines
    return _grouped(lines).get(center_id, [])


_GROUPED: list[tuple[Sequence[ChargebackLine], int, dict[str, list[ChargebackLine]]]] = []
"""The last two line sequences grouped by cost center (a month's and its previous month's),
with their lengths: each owner's key figures are asked for twice (workbook, manifest), and
scanning every line for each of 400 cost centers made them quadratic in a large org."""


def _grouped(lines: Sequence[ChargebackLine]) -> dict[str, list[ChargebackLine]]:
    """``lines`` by cost center, in order; reused while the same unchanged sequence is asked
    about (statements are not edited once built; a changed length regroups regardless)."""
    for seen, length, groups in _GROUPED:
        if seen is lines and length == len(lines):
            return groups
    groups = {}
    for line in lines:
        groups.setdefault(line.cost_center_id, []).append(line)
    _GROUPED[:] = [(lines, len(lines), groups), *_GROUPED[:1]]
    return groups


def manifest_key_figures(statement: Statement) -> dict[str, Any]:
    """The manifest's ``key_figures`` block: the org's, then each cost center's."""
    return {
        "org": key_figures(statement).manifest_block(),
        "cost_centers": {
            center.id: key_figures(statement, center.id).manifest_block()
            for center in statement.cost_centers
        },
    }
