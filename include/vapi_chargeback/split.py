"""Largest-remainder rounding: a set of exact amounts becomes quanta that add up.

Rounding every line on its own lets the cents drift, so a statement would not add up to
its own total. Both functions here round a set of exact amounts *together*: each part
is its exact value rounded down or up by less than one quantum, and the parts add up
exactly to the intended total. No intermediate step rounds (``Decimal`` division would,
at 28 digits): every value is brought to whole numbers over one common denominator and
the rest is integer arithmetic, which gives what exact ``Fraction`` arithmetic gives at a
fraction of its cost (``Fraction`` comparisons were a third of ``allocate`` at bench scale).
Sums of API values run in a context that traps ``Inexact``.
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
from math import lcm

from vapi_chargeback.money import CENT, from_units

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
    (numerator,), denominator = _common_denominator([total], quantum)
    units, rest = divmod(numerator, denominator)
    if rest:
        raise ValueError(f"total {total} is not a whole number of {quantum}")
    sign = -1 if units < 0 else 1
    scaled, _ = _common_denominator(weights, Decimal(1))
    weight_sum = sum(scaled)
    if weight_sum == 0:
        if total:
            raise ValueError(f"cannot split {total} by weights that are all zero")
        return [from_units(0, quantum)] * len(weights)
    magnitude = abs(units)
    shares = [magnitude * weight for weight in scaled]
    parts = largest_remainder(shares, weight_sum, magnitude)
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
    units, denominator = _common_denominator(values, quantum)
    target = round_half_up_ratio(sum(units), denominator)
    return [from_units(part, quantum) for part in largest_remainder(units, denominator, target)]


def round_to_share(
    values: Sequence[Decimal | Fraction | int], total: Decimal, quantum: Decimal = CENT
) -> list[Decimal]:
    """Each value's share of ``total`` (a whole number of quanta) in proportion to it,
    rounded by largest remainder so that the parts add up to ``total``.

    What ``round_to_total([v * total / sum(values) for v in values])`` gives, computed
    in integers; ``sum(values)`` must not be zero.
    """
    numerators, _ = _common_denominator(values, quantum)
    whole = sum(numerators)
    if whole == 0:
        raise ValueError(f"cannot share {total} in proportion to values adding up to zero")
    (units_numerator,), units_denominator = _common_denominator([total], quantum)
    units, rest = divmod(units_numerator, units_denominator)
    if rest:
        raise ValueError(f"total {total} is not a whole number of {quantum}")
    sign = -1 if whole < 0 else 1
    shares = [sign * numerator * units for numerator in numerators]
    parts = largest_remainder(shares, sign * whole, units)
    return [from_units(part, quantum) for part in parts]


def rounds_to(values: Sequence[Decimal | Fraction | int], total: Decimal, quantum: Decimal) -> bool:
    """Whether ``sum(values)`` rounded half up to ``quantum`` is ``total``, exactly."""
    numerators, denominator = _common_denominator(values, quantum)
    (units_numerator,), units_denominator = _common_denominator([total], quantum)
    target = round_half_up_ratio(sum(numerators), denominator)
    return target * units_denominator == units_numerator


def round_units_to_statement(numerators: Sequence[int], denominator: int, total: int) -> list[int]:
    """``breakdowns.round_to_statement`` on values already in quanta, as whole numerators
    over one positive ``denominator`` (:func:`units_over`), to ``total`` whole quanta: the
    parts in whole quanta.

    The same three cases in integers: the plain rounding (``round_to_total``) when the
    values' sum rounds to ``total``, an even split when they add up to zero
    (``split_exact`` by equal weights), else each value's share of ``total``
    (``round_to_share``). Scaling every numerator and the denominator by one positive
    factor changes no floor and no order of remainders, so any common denominator gives
    what the smallest one gives.
    """
    if not numerators:
        return []
    whole = sum(numerators)
    if round_half_up_ratio(whole, denominator) == total:
        return largest_remainder(numerators, denominator, total)
    if not whole:
        sign = -1 if total < 0 else 1
        magnitude = abs(total)
        parts = largest_remainder([magnitude] * len(numerators), len(numerators), magnitude)
        return [sign * part for part in parts]
    sign = -1 if whole < 0 else 1
    return largest_remainder([sign * total * n for n in numerators], sign * whole, total)


def whole_units(total: Decimal, quantum: Decimal) -> int:
    """``total`` in quanta; it must be a whole number of them."""
    (numerator,), denominator = _common_denominator([total], quantum)
    units, rest = divmod(numerator, denominator)
    if rest:
        raise ValueError(f"total {total} is not a whole number of {quantum}")
    return units


def units_over(ratios: Sequence[tuple[int, int]], quantum: Decimal) -> tuple[list[int], int]:
    """Exact values given as ``as_integer_ratio`` pairs, in quanta: whole numerators over
    one positive common denominator (a multiple per distinct denominator, not per value)."""
    quantum_numerator, quantum_denominator = quantum.as_integer_ratio()
    if quantum_numerator <= 0:
        raise ValueError(f"quantum {quantum} must be positive")
    denominators = {denominator for _, denominator in ratios}
    common = lcm(*denominators) if denominators else 1
    factors = {d: quantum_denominator * (common // d) for d in denominators}
    if len(factors) == 1:
        (factor,) = factors.values()
        numerators = [numerator * factor for numerator, _ in ratios]
    else:
        numerators = [numerator * factors[denominator] for numerator, denominator in ratios]
    return numerators, common * quantum_numerator


def _common_denominator(
    values: Sequence[Decimal | Fraction | int], quantum: Decimal
) -> tuple[list[int], int]:
    """``values / quantum`` as whole numerators over one positive common denominator.

    ``as_integer_ratio`` is exact for all three types (and in C for ``Decimal``), so the
    numerators over the denominator are exactly the values in quanta.
    """
    return units_over([value.as_integer_ratio() for value in values], quantum)


def round_half_up_ratio(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` (denominator > 0) to the nearest whole number, halves away
    from zero (``2.5`` → 3, ``-2.5`` → -3), as ``money.round_half_up`` rounds a ``Fraction``."""
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return -magnitude if numerator < 0 else magnitude


def largest_remainder(numerators: Sequence[int], denominator: int, target: int) -> list[int]:
    """Whole numbers, each the floor or ceiling of its exact value ``numerator /
    denominator``, summing to ``target``; the extra units go to the largest remainders, ties
    to the earlier value.

    ``target`` must lie between ``Σ floor`` and ``Σ floor + len(numerators)``; both callers
    guarantee it (a rounded sum is within half a unit of the exact sum).
    """
    floors = [numerator // denominator for numerator in numerators]
    missing = target - sum(floors)
    if not 0 <= missing <= len(numerators):
        raise ValueError(f"cannot reach {target} by rounding {len(numerators)} values")
    if missing:
        remainders = [numerator % denominator for numerator in numerators]
        # A stable sort keeps equal remainders in order even reversed: ties to the earlier.
        by_remainder = sorted(range(len(floors)), key=remainders.__getitem__, reverse=True)
        for index in by_remainder[:missing]:
            floors[index] += 1
    return floors
