"""Month-over-month drivers: why a cost center costs more or less than last month.

An owner's first question about a statement is "why is it different from last month?".
This module answers it from the two statements alone (this month's lines and the
previous published month's, ``Statement.previous``), so the Variance sheet, the manifest
and the mails all quote one computation.

**Method.** The unit is an assistant within a cost center: its ``direct`` lines summed
(teams merged, so a team re-mapping is not a new assistant). Its cost is
``calls × minutes per call × dollars per minute``, and the change of that product
between the months, Δ, is split into a volume effect (calls), a duration effect
(minutes per call) and a rate effect ($ per minute) by the Shapley decomposition: each
factor's effect is its change weighted by the other two factors averaged over every
order of changing them — for two factors exactly the midpoint (Marshall–Edgeworth)
weights. The weights are symmetric (neither month is the base) and the three effects
add up to Δ exactly; they are computed as ``Fraction``s, so nothing rounds before the
end. Special cases, so nothing divides by zero:

- an assistant with lines in only one month is **new** (its whole cost) or **gone**
  (minus its whole cost);
- calls in both months but no minutes in one (cost per minute undefined): Δ is split
  two ways, volume (calls) and rate (cost per call), by midpoint weights;
- no calls in exactly one month: all of Δ is volume; no calls in either: all is rate.

Everything that is not an assistant's usage — shared pools, corrections of earlier
months, the invoice adjustment, unallocated lines — is one **other** bucket: its change
in cost. Minutes are taken as the statements show them (each line to the hundredth).

**Rounding.** Each assistant's exact effects are rounded to the cent by largest
remainder (``split.round_to_total``), so they add up to its Δ to the cent. A cost
center's effects are the sums of its assistants' plus its other bucket, the org's the
sums of the cost centers': every row adds up to its Δ and every column to its total,
each assistant's figure is within a cent of its exact value, and a cost center's
within a cent per assistant. The org adds the cost centers, so an assistant re-mapped
to another cost center is gone from one and new in the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

from dateutil.relativedelta import relativedelta

from vapi_chargeback.money import CENT, HUNDRED, MINUTES_QUANTUM
from vapi_chargeback.period import parse_month
from vapi_chargeback.split import round_to_total
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, Statement
from vapi_chargeback.statements.formatting import minutes_text, money_text
from vapi_chargeback.statements.keyfigures import unit_rate
from vapi_chargeback.statements.totals import shown_minutes

USAGE_ALLOCATION = "direct"
"""The lines whose usage is decomposed; every other allocation is the other bucket."""
EFFECTS = ("volume", "duration", "rate", "new", "gone", "other")
"""The parts of Δ, in the order every reader shows them."""
MANIFEST_MOVERS = 10
"""Assistants the manifest's ``variance`` block lists org-wide, largest |Δ| first."""
CENTER_MOVERS = 3
"""Assistants the manifest lists per cost center (its owner's mail quotes them)."""
METHOD = (
    "Δ cost split per assistant into volume (calls), duration (minutes per call) and rate"
    " ($ per minute) effects by Shapley (symmetric midpoint) weights, which add up to Δ"
    " exactly; an assistant in one month only is new or gone; pools, corrections,"
    " adjustments and unallocated lines are Other. Each assistant's effects are rounded to"
    " the cent by largest remainder so they add up to its Δ; a cost center adds its"
    " assistants and Other, the org its cost centers."
)
CENTS_PER_USD = int(HUNDRED)
Level = Literal["org", "cost_center", "assistant"]
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Usage:
    """An assistant's (or a cost center's) direct usage in one month."""

    calls: int
    minutes: Decimal
    """As shown: each line's minutes rounded to the hundredth, then summed."""
    cost_usd: Decimal

    @property
    def minutes_per_call(self) -> Decimal | None:
        """Kept exact to ``keyfigures.RATE_QUANTUM``, like every unit figure."""
        return unit_rate(self.minutes, self.calls)

    @property
    def usd_per_minute(self) -> Decimal | None:
        """The same $/minute the Summary's key figures show for the same lines."""
        return unit_rate(self.cost_usd, self.minutes)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls, self.minutes + other.minutes, self.cost_usd + other.cost_usd
        )


NO_USAGE = Usage(0, ZERO, ZERO)


@dataclass(frozen=True)
class Effects:
    """The parts of one Δ, each to the cent; they add up to it exactly."""

    volume_usd: Decimal = ZERO
    duration_usd: Decimal = ZERO
    rate_usd: Decimal = ZERO
    new_usd: Decimal = ZERO
    gone_usd: Decimal = ZERO
    """Minus the cost of what is gone: never positive."""
    other_usd: Decimal = ZERO

    @property
    def parts(self) -> tuple[Decimal, ...]:
        """In :data:`EFFECTS` order."""
        return (
            self.volume_usd,
            self.duration_usd,
            self.rate_usd,
            self.new_usd,
            self.gone_usd,
            self.other_usd,
        )

    @property
    def total_usd(self) -> Decimal:
        return sum(self.parts, Decimal(0))

    def __add__(self, other: Effects) -> Effects:
        return Effects(
            *(mine + theirs for mine, theirs in zip(self.parts, other.parts, strict=True))
        )


@dataclass(frozen=True)
class Driver:
    """One row of the drivers: the org, a cost center or an assistant in a cost center."""

    level: Level
    cost_center_id: str
    cost_center_name: str
    previous_usd: Decimal
    """The whole cost a month earlier (for a cost center, its other lines included)."""
    current_usd: Decimal
    effects: Effects
    previous: Usage | None
    """Direct usage a month earlier; ``None`` for an assistant that had no line then."""
    current: Usage | None
    assistant_id: str = ""
    assistant_name: str = ""

    @property
    def delta_usd(self) -> Decimal:
        return self.current_usd - self.previous_usd


@dataclass(frozen=True)
class Variance:
    """This month against the previous published one: cost centers, org and assistants."""

    period: str
    previous_period: str
    previous_statement_id: str
    previous_status: str
    cost_centers: list[Driver]
    """Configured order, then cost centers charged only a month earlier, then unallocated."""
    org: Driver
    assistants: list[Driver] = field(default_factory=list)
    """Every assistant with a line in either month, largest |Δ| first."""

    def movers(self, count: int | None = None, center_id: str | None = None) -> list[Driver]:
        """The assistants that moved most (``|Δ|`` > 0), of one cost center or of all."""
        moved = [
            item
            for item in self.assistants
            if item.delta_usd and center_id in (None, item.cost_center_id)
        ]
        return moved if count is None else moved[:count]


def previous_period(period: str) -> str:
    """The calendar month before ``period`` (``YYYY-MM``): the one a statement compares with."""
    return (parse_month(period) - relativedelta(months=1)).strftime("%Y-%m")


def month_over_month(statement: Statement) -> Variance | None:
    """The drivers of ``statement`` against ``statement.previous``; ``None`` without one.

    Rendering a month asks once for the manifest and once per workbook (the finance one and
    every owner's), always with the same statement object: the last answer is kept for it
    (by identity, as a statement holds lists and is not hashable), so a large org's drivers
    are computed once per render, not once per cost center.
    """
    with _LAST_LOCK:
        if _LAST and _LAST[0][0] is statement:
            return _LAST[0][1]
    variance = _month_over_month(statement)
    with _LAST_LOCK:
        _LAST[:] = [(statement, variance)]
    return variance


_LAST: list[tuple[Statement, Variance | None]] = []
_LAST_LOCK = threading.Lock()


def _month_over_month(statement: Statement) -> Variance | None:
    before = statement.previous
    if before is None:
        return None
    names = dict(statement.names.names) if statement.names is not None else {}
    centers = {center.id: center.name for center in statement.cost_centers}
    return drivers(
        statement.period,
        statement.lines,
        before.period,
        before.lines,
        centers=centers,
        assistant_names=names,
        previous_statement_id=before.statement_id,
        previous_status=before.status,
    )


def drivers(
    period: str,
    lines: Sequence[ChargebackLine],
    previous_period: str,
    previous_lines: Sequence[ChargebackLine],
    *,
    centers: dict[str, str],
    assistant_names: dict[str, str] | None = None,
    previous_statement_id: str = "",
    previous_status: str = "",
) -> Variance:
    """The drivers of ``lines`` against ``previous_lines``; ``centers`` maps the configured
    cost centers (in order) to their names."""
    now, then = _Month.of(lines), _Month.of(previous_lines)
    names = {**then.assistant_names, **now.assistant_names, **(assistant_names or {})}
    center_names = {**then.center_names, **now.center_names, **centers, UNALLOCATED: "Unallocated"}
    order = [
        *centers,
        *sorted((set(now.center_cost) | set(then.center_cost)) - set(centers) - {UNALLOCATED}),
        UNALLOCATED,
    ]
    units = sorted(set(now.usage) | set(then.usage), key=lambda key: (order.index(key[0]), key[1]))
    assistants = [
        Driver(
            level="assistant",
            cost_center_id=center,
            cost_center_name=center_names[center],
            previous_usd=(then.usage.get((center, assistant)) or NO_USAGE).cost_usd,
            current_usd=(now.usage.get((center, assistant)) or NO_USAGE).cost_usd,
            effects=unit_effects(
                then.usage.get((center, assistant)), now.usage.get((center, assistant))
            ),
            previous=then.usage.get((center, assistant)),
            current=now.usage.get((center, assistant)),
            assistant_id=assistant,
            assistant_name=names.get(assistant, ""),
        )
        for center, assistant in units
    ]
    rows = [
        _center(
            center,
            center_names[center],
            [a for a in assistants if a.cost_center_id == center],
            now,
            then,
        )
        for center in order
    ]
    org = Driver(
        level="org",
        cost_center_id="",
        cost_center_name="Total",
        previous_usd=sum((row.previous_usd for row in rows), Decimal(0)),
        current_usd=sum((row.current_usd for row in rows), Decimal(0)),
        effects=sum((row.effects for row in rows), Effects()),
        previous=sum((row.previous or NO_USAGE for row in rows), NO_USAGE),
        current=sum((row.current or NO_USAGE for row in rows), NO_USAGE),
    )
    ranked = sorted(
        assistants, key=lambda a: (-abs(a.delta_usd), order.index(a.cost_center_id), a.assistant_id)
    )
    return Variance(
        period, previous_period, previous_statement_id, previous_status, rows, org, ranked
    )


def unit_effects(before: Usage | None, after: Usage | None) -> Effects:
    """One assistant's effects, rounded to the cent so that they add up to its Δ."""
    if before is None and after is None:
        return Effects()
    if before is None:
        return Effects(new_usd=_require(after).cost_usd)
    if after is None:
        return Effects(gone_usd=-before.cost_usd)
    volume, duration, rate = exact_effects(before, after)
    rounded = round_to_total([volume, duration, rate])
    return Effects(*rounded)


def exact_effects(before: Usage, after: Usage) -> tuple[Fraction, Fraction, Fraction]:
    """Volume, duration and rate effects of an assistant present in both months, exact;
    they add up to ``after.cost_usd − before.cost_usd`` (see the module docstring)."""
    n0, n1 = before.calls, after.calls
    m0, m1 = _units(before.minutes, MINUTES_QUANTUM), _units(after.minutes, MINUTES_QUANTUM)
    c0, c1 = _units(before.cost_usd, CENT), _units(after.cost_usd, CENT)
    if n0 and n1 and m0 and m1:
        denominator = 6 * n0 * n1 * m0 * m1 * CENTS_PER_USD
        volume, duration, rate = _shapley3(n0, n1, m0, m1, c0, c1)
        return (
            Fraction(volume, denominator),
            Fraction(duration, denominator),
            Fraction(rate, denominator),
        )
    if n0 and n1:
        p0, p1 = Fraction(c0, n0 * CENTS_PER_USD), Fraction(c1, n1 * CENTS_PER_USD)
        return (n1 - n0) * (p0 + p1) / 2, Fraction(0), (p1 - p0) * (n0 + n1) / 2
    delta = Fraction(c1 - c0, CENTS_PER_USD)
    if n0 or n1:
        return delta, Fraction(0), Fraction(0)
    return Fraction(0), Fraction(0), delta


def _shapley3(n0: int, n1: int, m0: int, m1: int, c0: int, c1: int) -> tuple[int, int, int]:
    """Shapley effects of ``calls × minutes per call × cost per minute`` changing from the
    first month's values to the second's, as whole-number numerators over the common
    denominator ``6·n0·n1·m0·m1`` (minutes in hundredths, cost in cents).

    A factor's effect is its change times the other two factors' products, 1/3 each for
    both taken from the same month and 1/6 each for one from each month: the average over
    the six orders of changing them. Integers because ``Fraction`` arithmetic per
    assistant is what a large org's statement would otherwise wait for.
    """
    volume = (n1 - n0) * (2 * m0 * m1 * (c0 * n1 + c1 * n0) + n1 * m0 * m0 * c1 + n0 * m1 * m1 * c0)
    duration = (m1 * n0 - m0 * n1) * (
        2 * (n0 * c0 * m1 + n1 * c1 * m0) + n0 * c1 * m0 + n1 * c0 * m1
    )
    rate = (c1 * m0 - c0 * m1) * (2 * n0 * n1 * (m0 + m1) + n0 * n0 * m1 + n1 * n1 * m0)
    return volume, duration, rate


def _units(value: Decimal, quantum: Decimal) -> int:
    """``value`` as a whole number of ``quantum`` (cents, hundredths of a minute)."""
    units = value / quantum
    if units != units.to_integral_value():
        raise ValueError(f"{value} is not a whole number of {quantum}")
    return int(units)


def _require(usage: Usage | None) -> Usage:
    if usage is None:
        raise ValueError("an assistant needs usage in at least one month")
    return usage


@dataclass(frozen=True)
class _Month:
    """One month's lines, grouped as the drivers need them."""

    usage: dict[tuple[str, str], Usage]
    """(cost center, assistant) → direct usage."""
    center_cost: dict[str, Decimal]
    center_usage: dict[str, Usage]
    other: dict[str, Decimal]
    """Cost center → cost of its lines that are not direct usage."""
    center_names: dict[str, str]
    assistant_names: dict[str, str]

    @classmethod
    def of(cls, lines: Iterable[ChargebackLine]) -> _Month:
        usage: dict[tuple[str, str], Usage] = {}
        cost: dict[str, Decimal] = {}
        center_usage: dict[str, Usage] = {}
        other: dict[str, Decimal] = {}
        center_names: dict[str, str] = {}
        assistant_names: dict[str, str] = {}
        for line in lines:
            center = line.cost_center_id
            cost[center] = cost.get(center, ZERO) + line.cost_usd
            center_names.setdefault(center, line.cost_center_name)
            if line.assistant_name:
                assistant_names.setdefault(line.assistant_id, line.assistant_name)
            if line.allocation != USAGE_ALLOCATION:
                other[center] = other.get(center, ZERO) + line.cost_usd
                continue
            item = Usage(line.calls, shown_minutes(line.minutes), line.cost_usd)
            key = (center, line.assistant_id)
            usage[key] = usage.get(key, NO_USAGE) + item
            center_usage[center] = center_usage.get(center, NO_USAGE) + item
        return cls(usage, cost, center_usage, other, center_names, assistant_names)


def _center(
    center: str, name: str, assistants: Sequence[Driver], now: _Month, then: _Month
) -> Driver:
    other = now.other.get(center, ZERO) - then.other.get(center, ZERO)
    return Driver(
        level="cost_center",
        cost_center_id=center,
        cost_center_name=name,
        previous_usd=then.center_cost.get(center, ZERO),
        current_usd=now.center_cost.get(center, ZERO),
        effects=sum((item.effects for item in assistants), Effects(other_usd=other)),
        previous=then.center_usage.get(center, NO_USAGE),
        current=now.center_usage.get(center, NO_USAGE),
    )


def manifest_block(variance: Variance | None) -> dict[str, Any] | None:
    """The manifest's ``variance`` block: the previous period, every cost center's and the
    org's effects, and the largest movers, so mails and the demo quote the published
    figures instead of computing them again. ``None`` without a previous month."""
    if variance is None:
        return None
    return {
        "previous_period": variance.previous_period,
        "previous_statement_id": variance.previous_statement_id or None,
        "previous_status": variance.previous_status or None,
        "method": METHOD,
        "org": _figures(variance.org),
        "cost_centers": {
            row.cost_center_id: {
                **_figures(row),
                "top_assistants": [
                    _figures(item) for item in variance.movers(CENTER_MOVERS, row.cost_center_id)
                ],
            }
            for row in variance.cost_centers
        },
        "top_movers": [_figures(item) for item in variance.movers(MANIFEST_MOVERS)],
    }


def _figures(row: Driver) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    if row.level == "assistant":
        figures |= {
            "cost_center_id": row.cost_center_id,
            "assistant_id": row.assistant_id,
            "assistant_name": row.assistant_name,
        }
    figures |= {
        "previous_usd": money_text(row.previous_usd),
        "cost_usd": money_text(row.current_usd),
        "delta_usd": money_text(row.delta_usd),
        **{
            f"{name}_usd": money_text(part)
            for name, part in zip(EFFECTS, row.effects.parts, strict=True)
        },
    }
    for when, usage in (("previous", row.previous), ("current", row.current)):
        if usage is not None:
            figures[f"{when}_calls"] = usage.calls
            figures[f"{when}_minutes"] = minutes_text(usage.minutes)
    return figures
