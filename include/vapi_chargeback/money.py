"""Money and usage quanta, and the one way each is rounded or turned into a share.

Every statement, mail and page shows the same figures, so they must round them the same
way: a cent here and a different half-way rule there would make a mail disagree with the
workbook it carries. Amounts are ``Decimal`` built from text; exact intermediate values
are ``Fraction``s, so nothing rounds before :func:`round_money` says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, Inexact, localcontext
from fractions import Fraction
from math import floor

CENT = Decimal("0.01")
"""Money is booked, shown and reconciled to the cent."""
HUNDRED = Decimal(100)
MINUTES_QUANTUM = Decimal("0.01")
"""Minutes are shown, and rounded, to a hundredth of a minute."""


def round_money(value: Decimal | Fraction | int, quantum: Decimal = CENT) -> Decimal:
    """``value`` rounded half away from zero to ``quantum``: how totals are rounded everywhere.

    Exact at any size (the division runs on ``Fraction``s), and zero is always positive,
    so ``-0.001`` shows as ``0.00``, never ``-0.00``.
    """
    return from_units(round_half_up(Fraction(value) / Fraction(quantum)), quantum)


def round_minutes(minutes: Decimal | Fraction) -> Decimal:
    """Minutes are usage, not money, but rounded by the same rule, to :data:`MINUTES_QUANTUM`."""
    return round_money(minutes, MINUTES_QUANTUM)


def percent_of(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part`` as a percentage of ``whole`` (``50`` for half); ``None`` when there is no whole.

    Unrounded (the context's 28 digits): each reader rounds it for its own display, a
    workbook's percent cell to a fraction of :data:`HUNDRED`, a mail to one decimal.
    """
    if not whole:
        return None
    return part * HUNDRED / whole


def round_half_up(value: Fraction) -> int:
    """The nearest whole number, halves away from zero (``2.5`` → 3, ``-2.5`` → -3)."""
    magnitude = floor(abs(value) + Fraction(1, 2))
    return -magnitude if value < 0 else magnitude


def from_units(units: int, quantum: Decimal) -> Decimal:
    """``units`` quanta as a ``Decimal`` with exactly the quantum's places."""
    return (Decimal(units) * quantum).quantize(quantum)


def from_units_each(units: Iterable[int], quantum: Decimal) -> list[Decimal]:
    """:func:`from_units` of each (a table's column of cells at a time).

    ``Decimal(units) * quantum`` already has the quantum's exponent, so the ``quantize``
    of :func:`from_units` changes nothing, unless the product rounded (more digits than
    the context's precision): trapped here, where ``quantize`` would have refused it.
    """
    with localcontext() as context:
        context.traps[Inexact] = True
        return list(map(quantum.__mul__, map(Decimal, units)))
