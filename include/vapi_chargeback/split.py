"""Largest-remainder rounding: a set of exact amounts becomes quanta that add up.

Rounding every line on its own lets the cents drift, so a statement would not add up to
its own total. Both functions here round a set of exact amounts *together*: each part
is its exact value rounded down or up by less than one quantum, and the parts add up
exactly to the intended total. Exact shares are ``Fraction``s, so no intermediate step
rounds (``Decimal`` division would, at 28 digits); sums of API values run in a context
that traps ``Inexact``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction
from math import floor

from vapi_chargeback.money import CENT, from_units, round_half_up

CALL_QUANTUM = Decimal(1)
"""Calls are whole: a split of calls moves whole calls."""
_EXACT_DIGITS = 60


def exact_context() -> AbstractContextManager[Context]:
    """A ``Decimal`` context in which additions are exact or raise ``Inexact``.

    The default 28 digits would round a long sum silently; 60 digits with the trap set
    means sums of API values are exact, or the run fails loudly instead of drifting.
    """
    traps = [InvalidOperation, DivisionByZero, Overflow, Inexact]
    return localcontext(Context(prec=_EXACT_DIGITS, traps=traps))


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    with exact_context():
        return sum(values, Decimal(0))


def split_exact(
    total: Decimal, weights: Sequence[Decimal | int], quantum: Decimal = CENT
) -> list[Decimal]:
    """Split ``total`` into one part per weight, proportionally, in whole quanta.

    Invariants: ``sum(parts) == total`` exactly; for a non-negative total no part is
    negative (a negative total is split as the mirror image of its absolute value);
    every part is within one quantum of its exact share ``total * w / sum(weights)``,
    and leftover quanta go to the largest fractional remainders, ties to the earlier
    weight. ``total`` must be a whole number of quanta, and weights must be non-negative
    and, unless the total is zero, not all zero: "proportional to nothing" has no fair
    reading here, so the caller, who knows the rule, decides what to do instead and says so.
    """
    if not weights:
        if total:
            raise ValueError(f"cannot split {total} over no parts")
        return []
    if any(weight < 0 for weight in weights):
        raise ValueError(f"weights must be non-negative, got {list(weights)}")
    units = Fraction(total) / Fraction(quantum)
    if units.denominator != 1:
        raise ValueError(f"total {total} is not a whole number of {quantum}")
    sign = -1 if units < 0 else 1
    exact_weights = [Fraction(weight) for weight in weights]
    weight_sum = sum(exact_weights, Fraction(0))
    if weight_sum == 0:
        if total:
            raise ValueError(f"cannot split {total} by weights that are all zero")
        return [from_units(0, quantum)] * len(weights)
    magnitude = abs(units)
    shares = [magnitude * weight / weight_sum for weight in exact_weights]
    parts = _largest_remainder(shares, int(magnitude))
    return [from_units(sign * part, quantum) for part in parts]


def round_to_total(
    values: Sequence[Decimal | Fraction | int], quantum: Decimal = CENT
) -> list[Decimal]:
    """Round each exact value to ``quantum`` so that they add up to their rounded sum.

    Invariants: ``sum(result) == round_money(sum(values), quantum)`` exactly; each
    result is its value rounded down or up to the neighbouring quantum (within one
    quantum); the extra quanta go to the largest fractional remainders, ties to the
    earlier value. Signs are allowed (a refund line stays negative).
    """
    units = [Fraction(value) / Fraction(quantum) for value in values]
    target = round_half_up(sum(units, Fraction(0)))
    return [from_units(part, quantum) for part in _largest_remainder(units, target)]


def _largest_remainder(exact: Sequence[Fraction], target: int) -> list[int]:
    """Whole numbers, each the floor or ceiling of its exact value, summing to ``target``.

    ``target`` must lie between ``Σ floor`` and ``Σ floor + len(exact)``; both callers
    guarantee it (a rounded sum is within half a unit of the exact sum).
    """
    floors = [floor(value) for value in exact]
    missing = target - sum(floors)
    if not 0 <= missing <= len(exact):
        raise ValueError(f"cannot reach {target} by rounding {len(exact)} values")
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for index in by_remainder[:missing]:
        floors[index] += 1
    return floors
