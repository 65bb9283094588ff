"""The recount held against the analytics-based statement: by line, and by assistant and day.

Lines are compared as both sides round them (the recount's lines come out of the same
``allocate``), column by column: calls, minutes, cost and each component. Days are
compared before any rounding, as exact sums per (local day, cost center, team, assistant,
allocation): a call the analytics missed shows on its own assistant and day, however the
line rounding hides it. Lines that only carry other months' money (corrections, the
invoice adjustment) come from no call of the month and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from vapi_chargeback.attribution import AttributedRow
from vapi_chargeback.split import exact_context
from vapi_chargeback.statement import ChargebackLine, VerificationDifference
from vapi_chargeback.verify.settings import VerificationSettings

LineKey = tuple[str, str, str, str]
"""(cost center, team, assistant, allocation), as a statement line sums them."""
DayKey = tuple[date, str, str, str, str]
"""(local day, cost center, team, assistant, allocation)."""
NOT_FROM_CALLS = ("correction:", "adjustment:")
"""Allocations of lines that no call of the month makes."""
MINUTES_PLACES = Decimal("0.0001")
"""Minutes on a day difference are shown to this; what blocks is decided on exact seconds."""
SECONDS_PER_MINUTE = 60
ZERO = Decimal(0)


@dataclass(frozen=True)
class Comparison:
    compared: int
    matched: int
    """Keys on which every column is equal."""
    differences: list[VerificationDifference]


def compare_lines(
    statement: Sequence[ChargebackLine],
    recount: Sequence[ChargebackLine],
    components: Sequence[str],
    settings: VerificationSettings,
) -> Comparison:
    """Each line of either side against the same line of the other (absent = zeros)."""
    columns = ["calls", "minutes", "cost", *components]
    ours = _by_line(statement, components)
    theirs = _by_line(recount, components)
    differences: list[VerificationDifference] = []
    keys = sorted(ours.keys() | theirs.keys())
    matched = 0
    for key in keys:
        a = ours.get(key) or [ZERO] * len(columns)
        b = theirs.get(key) or [ZERO] * len(columns)
        found = [
            VerificationDifference(
                *key,
                day=None,
                column=column,
                statement=x,
                recount=y,
                over_tolerance=settings.blocks(x, y, money=column not in ("calls", "minutes")),
            )
            for column, x, y in zip(columns, a, b, strict=True)
            if x != y
        ]
        matched += not found
        differences += found
    return Comparison(len(keys), matched, differences)


def _by_line(
    lines: Iterable[ChargebackLine], components: Sequence[str]
) -> dict[LineKey, list[Decimal]]:
    sums: dict[LineKey, list[Decimal]] = {}
    for line in lines:
        if line.allocation.startswith(NOT_FROM_CALLS):
            continue
        key = (line.cost_center_id, line.team, line.assistant_id, line.allocation)
        values = [
            Decimal(line.calls),
            line.minutes,
            line.cost_usd,
            *(line.components_usd[c] for c in components),
        ]
        found = sums.get(key)
        sums[key] = values if found is None else [x + y for x, y in zip(found, values, strict=True)]
    return sums


def day_sums(rows: Iterable[AttributedRow]) -> dict[DayKey, list[Decimal]]:
    """Exact sums of attributed rows' values per (day, cost center, team, assistant,
    allocation), in the order the rows' measures were asked for."""
    sums: dict[DayKey, list[Decimal]] = {}
    with exact_context():
        for item in rows:
            a = item.attribution
            key = (item.day, a.cost_center_id, a.team, a.assistant_id, a.allocation)
            found = sums.get(key)
            if found is None:
                sums[key] = [Decimal(v) for v in item.values]
            else:
                for index, value in enumerate(item.values):
                    found[index] += value
    return sums


def compare_days(
    analytics: Mapping[DayKey, Sequence[Decimal]],
    recount: Mapping[DayKey, Sequence[Decimal]],
    measures: Sequence[str],
    settings: VerificationSettings,
) -> Comparison:
    """Day by day; ``measures`` name the values (``seconds`` is reported as ``minutes``)."""
    differences: list[VerificationDifference] = []
    keys = sorted(analytics.keys() | recount.keys())
    matched = 0
    width = len(measures)
    for key in keys:
        a = analytics.get(key) or [ZERO] * width
        b = recount.get(key) or [ZERO] * width
        found = []
        for measure, x, y in zip(measures, a, b, strict=True):
            if x == y:
                continue
            blocks = settings.blocks(x, y, money=measure not in ("calls", "seconds"))
            if measure == "seconds":
                measure = "minutes"
                x = (x / SECONDS_PER_MINUTE).quantize(MINUTES_PLACES)
                y = (y / SECONDS_PER_MINUTE).quantize(MINUTES_PLACES)
            day, center, team, assistant, allocation = key
            found.append(
                VerificationDifference(
                    center, team, assistant, allocation, day, measure, x, y, blocks
                )
            )
        matched += not found
        differences += found
    return Comparison(len(keys), matched, differences)


def largest_first(differences: Iterable[VerificationDifference]) -> list[VerificationDifference]:
    """Over tolerance first; then cost, calls, the rest; each by the size of the difference."""
    rank = {"cost": 0, "calls": 1}
    return sorted(
        differences,
        key=lambda d: (
            not d.over_tolerance,
            rank.get(d.column, 2),
            -abs(d.difference),
            d.day or date.min,
            d.cost_center_id,
            d.assistant_id,
        ),
    )


def describe(difference: VerificationDifference) -> str:
    """One difference in a sentence fragment an operator can act on."""
    d = difference
    where = f"{d.cost_center_id}/{d.allocation}"
    if d.team:
        where += f" team {d.team}"
    where += f" assistant {d.assistant_id or '(none)'}"
    if d.day is not None:
        where += f" on {d.day.isoformat()}"
    return (
        f"{where}: {d.column} {d.statement} in the statement, {d.recount} recounted"
        f" ({d.difference:+})"
    )
