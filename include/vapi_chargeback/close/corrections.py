"""Corrections of a final month: its differences, carried as delta lines into an open month.

A final month was booked; its files never change. When a later run recomputes it and
the lines differ (late or re-costed calls, a fixed mapping), the difference is charged
in the next month that is not final, as ``correction:{YYYY-MM}`` lines, so that what was
booked for the month plus its corrections is what the month now computes, in every
column, to the cent.

**One line per (cost center, team, assistant).** The CSV holds one line per (cost
center, team, assistant, allocation), and every correction of one month has the same
allocation, ``correction:{YYYY-MM}``; so a correction line is the difference of *all*
the month's lines of one (cost center, team, assistant), whatever their allocation. The
original allocations whose lines changed are kept beside it (:attr:`CorrectionLine.allocations`)
for the workbook and the audit record, so a reader still sees that ``direct`` or
``shared:platform`` moved. A shared pool's lines have no team or assistant, so a pool
that moved between cost centers shows on each cost center's ``("", "")`` line.

**What is compared.** The month's own lines: ``correction:`` lines booked *in* the
month (carried from an earlier one) are history, not part of its computation, and are
left out of both sides. ``carried`` are the corrections of this month already booked in
final months (a second rerun after a first correction was approved), so they are not
charged twice; corrections of this month still sitting in a draft are not passed: the
new ones replace them.

Each delta is an exact difference of cent (and hundredth-of-a-minute) amounts, so no
rounding happens here; deltas may be negative.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from vapi_chargeback.close.ids import StatementIds
from vapi_chargeback.period import parse_month
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine

CORRECTION_PREFIX = "correction:"

Key = tuple[str, str, str]
"""(cost center id, team, assistant id): what one correction line stands for."""


@dataclass(frozen=True)
class CorrectionLine:
    """A delta line carried into an open month, with what it corrects."""

    line: ChargebackLine
    """Allocation ``correction:{corrected_period}``; every column a delta."""
    corrected_period: str
    corrects: str
    """The statement id of the corrected month (the cost center's, else the org's)."""
    allocations: tuple[str, ...]
    """The original allocations whose lines changed under this key, sorted."""


def correction_allocation(period: str) -> str:
    parse_month(period)
    return f"{CORRECTION_PREFIX}{period}"


def corrected_period(allocation: str) -> str | None:
    """The month a ``correction:{YYYY-MM}`` allocation corrects; ``None`` for other allocations."""
    if not allocation.startswith(CORRECTION_PREFIX):
        return None
    period = allocation.removeprefix(CORRECTION_PREFIX)
    parse_month(period)
    return period


def correction_lines(
    period: str,
    final_lines: Sequence[ChargebackLine],
    recomputed_lines: Sequence[ChargebackLine],
    ids: StatementIds,
    *,
    carried: Sequence[CorrectionLine] = (),
) -> list[CorrectionLine]:
    """The correction lines that make ``final_lines`` + ``carried`` equal ``recomputed_lines``.

    ``period``: the corrected (final) month; ``ids``: its statement ids at its final version,
    for ``corrects``. Invariant, per (cost center, team, assistant) and so in total, in
    every column (calls, minutes, cost, each component): Σ final + Σ carried + Σ result =
    Σ recomputed, exactly. Keys whose every delta is zero are left out, so an unchanged
    month gives ``[]``. Components are the union of those on the lines, in order of first
    appearance (final first), a missing one counting as zero.
    """
    allocation = correction_allocation(period)
    if ids.period != period:
        raise ValueError(f"statement ids are for {ids.period}, not the corrected month {period}")
    for item in carried:
        if item.corrected_period != period:
            raise ValueError(f"a carried correction of {item.corrected_period} passed for {period}")
    final = _own(final_lines)
    recomputed = _own(recomputed_lines)
    earlier = [item.line for item in carried]
    components = _components([*final, *recomputed, *earlier])
    before = _totals([*final, *earlier], components)
    after = _totals(recomputed, components)
    zero = [Decimal(0)] * (3 + len(components))
    names = {line.cost_center_id: line.cost_center_name for line in [*earlier, *final, *recomputed]}
    assistant_names = {
        line.assistant_id: line.assistant_name
        for line in [*earlier, *final, *recomputed]
        if line.assistant_id and line.assistant_name
    }
    moved = _changed_allocations(final, recomputed)
    result = []
    for key in sorted(before.keys() | after.keys(), key=_order):
        delta = [
            new - old for new, old in zip(after.get(key, zero), before.get(key, zero), strict=True)
        ]
        if not any(delta):
            continue
        center, team, assistant = key
        calls, minutes, cost, *parts = delta
        corrects = ids.for_cost_center(center)
        line = ChargebackLine(
            cost_center_id=center,
            cost_center_name=names[center],
            team=team,
            assistant_id=assistant,
            allocation=allocation,
            calls=int(calls),
            minutes=minutes,
            cost_usd=cost,
            components_usd=dict(zip(components, parts, strict=True)),
            assistant_name=assistant_names.get(assistant, ""),
            corrects=corrects,
        )
        result.append(CorrectionLine(line, period, corrects, tuple(sorted(moved.get(key, ())))))
    return result


def _own(lines: Iterable[ChargebackLine]) -> list[ChargebackLine]:
    """The month's own lines: without the corrections of other months booked in it."""
    return [line for line in lines if not line.allocation.startswith(CORRECTION_PREFIX)]


def _components(lines: Iterable[ChargebackLine]) -> list[str]:
    return list(dict.fromkeys(name for line in lines for name in line.components_usd))


def _columns(line: ChargebackLine, components: Sequence[str]) -> list[Decimal]:
    parts = [line.components_usd.get(name, Decimal(0)) for name in components]
    return [Decimal(line.calls), line.minutes, line.cost_usd, *parts]


def _totals(lines: Iterable[ChargebackLine], components: Sequence[str]) -> dict[Key, list[Decimal]]:
    totals: dict[Key, list[Decimal]] = {}
    for line in lines:
        key = (line.cost_center_id, line.team, line.assistant_id)
        columns = _columns(line, components)
        total = totals.get(key)
        totals[key] = (
            columns if total is None else [a + b for a, b in zip(total, columns, strict=True)]
        )
    return totals


def _changed_allocations(
    final: Sequence[ChargebackLine], recomputed: Sequence[ChargebackLine]
) -> dict[Key, set[str]]:
    """Per key, the allocations whose line is new, gone or different in any column."""
    components = _components([*final, *recomputed])

    def by_full_key(lines: Sequence[ChargebackLine]) -> dict[tuple[str, ...], list[Decimal]]:
        return {
            (line.cost_center_id, line.team, line.assistant_id, line.allocation): _columns(
                line, components
            )
            for line in lines
        }

    old, new = by_full_key(final), by_full_key(recomputed)
    moved: dict[Key, set[str]] = {}
    for full in old.keys() | new.keys():
        if old.get(full) != new.get(full):
            center, team, assistant, allocation = full
            moved.setdefault((center, team, assistant), set()).add(allocation)
    return moved


def _order(key: Key) -> tuple[bool, str, str, str]:
    """Cost centers in id order, ``UNALLOCATED`` last; then team and assistant."""
    center, team, assistant = key
    return center == UNALLOCATED, center, team, assistant
