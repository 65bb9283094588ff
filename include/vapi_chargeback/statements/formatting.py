"""Text forms of money and minutes, shared by every writer.

One place decides how a figure is spelled so the CSV, the workbooks and the manifest
can never disagree about the same ``Decimal``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from vapi_chargeback.money import MINUTES_QUANTUM

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters that make spreadsheet programs evaluate a text as a formula."""


def money_text(amount: Decimal) -> str:
    """Two places, no exponent, no symbols or separators; ``-0.00`` is spelled ``0.00``.

    Amounts reach the writers already rounded to the cent (validation refuses others),
    so formatting to two places only pads: it never rounds money here.
    """
    text = f"{amount:.2f}"
    return "0.00" if text == "-0.00" else text


def shown_minutes(minutes: Decimal) -> Decimal:
    """Minutes as shown, to the hundredth: ``money.round_minutes``'s result (half away from
    zero, zero positive) by Decimal's own exact ``quantize``, which rounds the exact value
    once, as fast as the writers need it on every line."""
    rounded = minutes.quantize(MINUTES_QUANTUM, rounding=ROUND_HALF_UP)
    return rounded if rounded else abs(rounded)


def minutes_text(minutes: Decimal) -> str:
    return f"{shown_minutes(minutes):f}"


def looks_like_formula(text: str) -> bool:
    """True for text that Excel, LibreOffice or Sheets would run as a formula (CSV injection)."""
    return text.startswith(FORMULA_TRIGGERS)
