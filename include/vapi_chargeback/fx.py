"""The reporting currency: a month's USD amounts at one rate, rounded so they still add up.

Accountants book in their own currency, and a converted statement must add up exactly
like the USD one: converting each line and rounding it on its own would let the lines
drift from the converted total by a few cents (or yen). So every conversion here starts
from exact USD amounts, multiplies them by the rate as ``Fraction``s (nothing rounds on
the way) and rounds the set *together* by largest remainder (``split.round_to_total``):
the converted lines add up to the converted total exactly, and that total is the exact
USD total times the rate, rounded once. Every writer that shows converted money (CSV,
workbooks, journal, manifest) takes it from here, so none of them can round differently.

Rounding is to the currency's minor unit per ISO 4217 (2 places for EUR, 0 for JPY, 3 for
KWD). The table below holds the active codes; an unknown code is an error rather than a
guess of two places, since a wrong guess would book yen with cents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from vapi_chargeback.errors import PermanentError
from vapi_chargeback.money import from_units
from vapi_chargeback.split import round_to_total
from vapi_chargeback.statement import FxRate, Statement

_NO_MINOR_UNIT = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_PLACES = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_PLACES = "CLF UYW"
_TWO_PLACES = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP"
    " BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD"
    " FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD"
    " KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD"
    " NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP"
    " SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UZS VED VES"
    " WST XCD XCG YER ZAR ZMW ZWG"
)
MINOR_UNITS: dict[str, int] = {
    code: places
    for codes, places in (
        (_TWO_PLACES, 2),
        (_NO_MINOR_UNIT, 0),
        (_THREE_PLACES, 3),
        (_FOUR_PLACES, 4),
    )
    for code in codes.split()
}
"""ISO 4217's active currency codes (list one, 2025) → their minor unit (decimal places).
Precious metals, testing and SDR codes, which have no minor unit, are left out: no one
books a chargeback in them."""


class UnknownCurrencyError(PermanentError, ValueError):
    """A currency code that is not an active ISO 4217 code."""


def minor_units(currency: str) -> int:
    """The decimal places of ``currency`` (upper-case ISO 4217 code); unknown codes raise."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrencyError(
            f"{currency!r} is not an active ISO 4217 currency code; write the three upper-case"
            " letters of the currency (EUR, GBP, JPY …)"
        ) from None


def quantum(places: int) -> Decimal:
    """The smallest amount of a currency with ``places`` decimals: ``0.01``, ``1``, ``0.001``."""
    return Decimal(1).scaleb(-places)


def amount_text(amount: Decimal, places: int) -> str:
    """A converted amount as the files spell it: ``places`` decimals, no symbol or separator,
    ``-0`` spelled as ``0``. Amounts come from this module already rounded, so this only pads."""
    text = f"{amount:.{places}f}"
    return text[1:] if text.startswith("-") and not amount.quantize(quantum(places)) else text


@dataclass(frozen=True)
class Converted:
    """A statement's money in the reporting currency; every figure adds up exactly."""

    currency: str
    total: Decimal
    """Σ USD lines × rate, rounded once to the currency's minor unit."""
    lines: list[Decimal]
    """One per statement line, in the statement's order; ``sum(lines) == total``."""
    by_cost_center: dict[str, Decimal]
    """Cost center id (``UNALLOCATED`` too) → Σ of its converted lines, in first-line order;
    the values add up to ``total``."""


def convert(statement: Statement) -> Converted | None:
    """The statement in its reporting currency; ``None`` when only USD is reported."""
    fx = statement.fx
    if fx is None:
        return None
    lines = allocate_converted([line.cost_usd for line in statement.lines], fx)
    zero = from_units(0, quantum(fx.minor_units))
    by_cost_center: dict[str, Decimal] = {}
    for line, amount in zip(statement.lines, lines, strict=True):
        by_cost_center[line.cost_center_id] = by_cost_center.get(line.cost_center_id, zero) + amount
    return Converted(fx.currency, sum(lines, zero), lines, by_cost_center)


def allocate_converted(amounts: Sequence[Decimal], fx: FxRate) -> list[Decimal]:
    """Exact USD ``amounts`` in ``fx.currency``, rounded together to its minor unit.

    Invariants (``split.round_to_total``): ``sum(result)`` equals ``Σ amounts × rate``
    rounded half away from zero to the minor unit; each result is within one minor unit of
    its exact value ``amount × rate``; signs are kept. So any set that partitions the
    statement's lines (its lines, the journal's debits, a workbook's rows) converts to a
    set that adds up to the same converted total.
    """
    rate = Fraction(fx.rate)
    return round_to_total([Fraction(amount) * rate for amount in amounts], quantum(fx.minor_units))


def rate_sentence(fx: FxRate) -> str:
    """The rate as every file states it: value, date (or dates averaged), rule and source,
    e.g. ``1 USD = 0.9234 EUR, rate of 2026-10-30 (month_end), fx_rates.csv sha256:…``."""
    dates = f"{fx.first_date} to {fx.rate_date}" if fx.first_date else f"{fx.rate_date}"
    kind = "average of the rates dated" if fx.rule == "month_average" else "rate of"
    return f"1 USD = {fx.rate} {fx.currency}, {kind} {dates} ({fx.rule}), {fx.source}"


def manifest_block(statement: Statement) -> dict[str, Any] | None:
    """The manifest's ``fx`` block; ``None`` (left out of the manifest) without a rate."""
    fx, converted = statement.fx, convert(statement)
    if fx is None or converted is None:
        return None
    block: dict[str, Any] = {
        "currency": fx.currency,
        "rate": str(fx.rate),
        "rate_date": fx.rate_date.isoformat(),
        "rule": fx.rule,
        "source": fx.source,
        "minor_units": fx.minor_units,
        "total": amount_text(converted.total, fx.minor_units),
        "cost_by_cost_center": {
            center: amount_text(amount, fx.minor_units)
            for center, amount in converted.by_cost_center.items()
        },
    }
    if fx.first_date is not None:
        block["first_date"] = fx.first_date.isoformat()
    return block
