"""The FX rates file beside the config, and the rate a statement month is converted at.

``fx_rates.csv`` (``date,currency,rate``: units of the currency per 1 USD) is usually made
from the European Central Bank's reference-rate history (:func:`from_ecb`, the CLI's
``fx-rates --from-ecb``), and sometimes typed or pasted by finance; either way it is
checked like the mapping and ``invoices.csv``: every problem at once, each naming the file,
the line, the field and the fix. Rates are read as ``Decimal`` from their text.

Which rate a month gets is accounting policy (config ``fx.rule``): ``month_end``, the rate
of the last date on or before the period's last day (a weekend or holiday falls back to
the business day before, as the ECB publishes none), or ``month_average``, the mean of the
rates dated within the period. A month with no such rate, or whose rate is older than
``fx.max_age_days`` before the period's last day (a file nobody updated), is refused at
plan time, before anything is fetched or written: a statement converted at a stale rate
would be booked and never questioned.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from vapi_chargeback.fx import MINOR_UNITS, UnknownCurrencyError, minor_units
from vapi_chargeback.inputfiles import InputFileError, csv_rows, read_bounded
from vapi_chargeback.statement import FxRate

if TYPE_CHECKING:
    from vapi_chargeback.period import StatementPeriod

FX_RATES_NAME = "fx_rates.csv"
FX_RATES_HEADER = ("date", "currency", "rate")
MAX_FX_RATES_BYTES = 16 << 20
"""16 MiB: the ECB's whole history since 1999 for every currency converts to about 5 MB."""
MAX_RATE = Decimal(10) ** 9
RATE_DIGITS = 10
"""Significant digits of a rate computed here (an ECB cross rate, a month's average): the
ECB publishes 5, so 10 keep every converted cent of any realistic statement exact."""
Rule = Literal["month_end", "month_average"]
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RATE = re.compile(r"\d+(\.\d{1,12})?")
_RATE_CONTEXT = Context(prec=RATE_DIGITS, rounding=ROUND_HALF_UP)


class FxSettings(BaseModel):
    """The ``fx:`` block of ``chargeback.yaml``; used only with ``reporting_currency``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    rates: str = Field(default=FX_RATES_NAME, min_length=1)
    """The rates CSV (``date,currency,rate``, units per 1 USD), relative to this file unless
    absolute."""
    rule: Rule = "month_end"
    """``month_end``: the rate of the last date on or before the period's last day;
    ``month_average``: the mean of the rates dated within the period."""
    max_age_days: int = Field(default=7, ge=0, le=366)
    """The newest rate used may be at most this many days older than the period's last day;
    7 covers weekends and the ECB's holidays (Easter: 4 days)."""


class FxRatesError(InputFileError):
    """Every problem found in one rates file, or the month it has no usable rate for."""


@dataclass(frozen=True)
class FxRates:
    """One rates file: each currency's rates by date, and the file's name and hash."""

    by_currency: dict[str, dict[date, Decimal]]
    source: str
    """The path as given, for messages."""
    sha256: str

    def rate_for(self, currency: str, period: StatementPeriod, rule: Rule, max_age: int) -> FxRate:
        """The rate ``period`` is converted at under ``rule``; ``FxRatesError`` when the file
        has none, or only one older than ``max_age`` days before the period's last day."""
        last_day = period.last_day
        rates = self.by_currency.get(currency, {})
        if rule == "month_end":
            dates = [day for day in rates if day <= last_day]
            wanted = f"on or before {last_day}"
        else:
            dates = [day for day in rates if period.first_day <= day <= last_day]
            wanted = f"dated {period.first_day} to {last_day}"
        if not dates:
            raise FxRatesError(
                self.source,
                [
                    f"{self.source}: no {currency} rate {wanted} for {period.label} ({rule});"
                    f" add the rates up to {last_day} (vapi-chargeback fx-rates --from-ecb)"
                ],
            )
        newest = max(dates)
        age = (last_day - newest).days
        if age > max_age:
            raise FxRatesError(
                self.source,
                [
                    f"{self.source}: the newest {currency} rate {wanted} is of {newest}, {age}"
                    f" days before {period.label}'s last day {last_day}; fx.max_age_days is"
                    f" {max_age}: add the rates up to {last_day} (or raise fx.max_age_days)"
                ],
            )
        name = f"{Path(self.source).name} sha256:{self.sha256}"
        if rule == "month_end":
            return FxRate(currency, rates[newest], newest, rule, name, minor_units(currency))
        total = sum((rates[day] for day in dates), Decimal(0))
        average = _RATE_CONTEXT.divide(total, Decimal(len(dates)))
        return FxRate(
            currency, average, newest, rule, name, minor_units(currency), first_date=min(dates)
        )


def month_rate(
    currency: str | None, settings: FxSettings, config_file: Path, period: StatementPeriod
) -> FxRate | None:
    """The rate ``period`` is converted at, for the config's ``reporting_currency`` and ``fx``;
    ``None`` without a reporting currency. Called when a run is planned, so a missing, bad or
    stale rate stops it before anything is fetched or written."""
    if currency is None:
        return None
    rates = load_fx_rates(fx_rates_path(settings.rates, config_file))
    return rates.rate_for(currency, period, settings.rule, settings.max_age_days)


def fx_rates_path(rates: str, config_file: Path) -> Path:
    """The rates CSV named by the config (``fx.rates``), relative to the config file."""
    path = Path(rates)
    return path if path.is_absolute() else config_file.parent / path


def load_fx_rates(path: str | Path) -> FxRates:
    """Read and validate ``path``; ``FxRatesError`` lists every problem. Unlike the invoices,
    the file is required: a reporting currency without rates cannot convert anything."""
    path = Path(path)
    source = str(path)
    raw = read_bounded(
        path,
        MAX_FX_RATES_BYTES,
        "a rates file",
        FxRatesError,
        missing="file not found; reporting_currency needs rates (date,currency,rate per 1 USD):"
        " make them with `vapi-chargeback fx-rates --from-ecb`, or fix fx.rates",
    )
    by_currency, problems = parse_fx_rates(raw, source)
    if problems:
        raise FxRatesError(source, problems)
    return FxRates(by_currency, source, hashlib.sha256(raw).hexdigest())


def parse_fx_rates(raw: bytes, source: str) -> tuple[dict[str, dict[date, Decimal]], list[str]]:
    """Rates by currency and date, and the problems found as ``file:line: field: what; fix``."""
    rows, file_problems = csv_rows(raw, source, FX_RATES_HEADER)
    if file_problems:
        return {}, file_problems
    by_currency: dict[str, dict[date, Decimal]] = {}
    first_line: dict[tuple[str, date], int] = {}
    problems: list[str] = []
    for line_no, row in rows:
        where = f"{source}:{line_no}"
        if len(row) != len(FX_RATES_HEADER):
            problems.append(
                f"{where}: {len(row)} fields; expected {len(FX_RATES_HEADER)}"
                f" ({','.join(FX_RATES_HEADER)}); write rates without thousands separators"
            )
            continue
        day_text, currency, rate_text = (cell.strip() for cell in row)
        row_problems = []
        day = _parse_date(day_text)
        if day is None:
            row_problems.append(f"date {day_text!r} is not a date; write it as YYYY-MM-DD")
        if currency not in MINOR_UNITS:
            row_problems.append(
                f"currency {currency!r} is not an active ISO 4217 code; write the three"
                " upper-case letters (EUR, JPY …)"
            )
        rate = _parse_rate(rate_text)
        if rate is None:
            row_problems.append(
                f"rate {rate_text!r} is not a rate above 0; write units of the currency per"
                " 1 USD as a plain decimal (0.9234), at most 12 places, below 10^9"
            )
        problems += [f"{where}: {message}" for message in row_problems]
        if day is None or rate is None or row_problems:
            continue
        first = first_line.setdefault((currency, day), line_no)
        if first != line_no:
            problems.append(
                f"{where}: date {day} already has a {currency} rate on line {first}; keep one"
                " rate per date and currency"
            )
            continue
        by_currency.setdefault(currency, {})[day] = rate
    return by_currency, problems


def _parse_date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _parse_rate(text: str) -> Decimal | None:
    if not _RATE.fullmatch(text):
        return None
    rate = Decimal(text)
    return rate if 0 < rate < MAX_RATE else None


def rate_text(rate: Decimal) -> str:
    """A rate as the rates file spells it: plain decimal, no exponent, no trailing zeros."""
    return f"{rate.normalize():f}"


def from_ecb(raw: bytes, source: str, currencies: set[str] | None = None) -> bytes:
    """The ECB's reference-rate history (``eurofxref-hist.csv``) as a rates file.

    The ECB quotes units per 1 EUR (``Date,USD,JPY,…``); per 1 USD that is ``EUR = 1/USD``
    and ``X = X/USD``, each rounded to :data:`RATE_DIGITS` significant digits. Dates without
    a USD quote, and ``N/A`` cells, give no rate; codes ISO 4217 no longer lists (``CYP``,
    ``HRK`` …) are left out, as are those not in ``currencies`` when it is given. Rows come
    out by date, then currency. ``FxRatesError`` names the line and column of a bad cell.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FxRatesError(source, [f"{source}: not UTF-8 ({error})"]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = [cell.strip() for cell in next(reader, [])]
    if not columns or columns[0] != "Date" or "USD" not in columns:
        raise FxRatesError(
            source,
            [
                f"{source}:1: header {','.join(columns)!r} is not the ECB's (Date,USD,JPY,…);"
                " download eurofxref-hist.csv from the ECB's euro reference rates page"
            ],
        )
    wanted = {
        index: code
        for index, code in enumerate(columns)
        if code in MINOR_UNITS and code != "USD" and (currencies is None or code in currencies)
    }
    usd = columns.index("USD")
    rows: list[tuple[date, str, Decimal]] = []
    problems: list[str] = []
    for line_no, row in enumerate(reader, start=2):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        day = _parse_date(cells[0])
        quotes = {index: _ecb_quote(cells, index) for index in (usd, *wanted)}
        bad = [columns[index] for index, quote in quotes.items() if quote is False]
        if day is None or bad:
            where = "Date" if day is None else ", ".join(bad)
            problems.append(f"{source}:{line_no}: {where}: not a date or a rate (or N/A)")
            continue
        per_eur = quotes[usd]
        if not isinstance(per_eur, Decimal):
            continue
        if currencies is None or "EUR" in currencies:
            rows.append((day, "EUR", _RATE_CONTEXT.divide(Decimal(1), per_eur)))
        for index, code in wanted.items():
            quote = quotes[index]
            if isinstance(quote, Decimal):
                rows.append((day, code, _RATE_CONTEXT.divide(quote, per_eur)))
    if problems:
        raise FxRatesError(source, problems)
    lines = [",".join(FX_RATES_HEADER)]
    lines += [f"{day},{code},{rate_text(rate)}" for day, code, rate in sorted(rows)]
    return ("\n".join(lines) + "\n").encode()


def _ecb_quote(cells: list[str], index: int) -> Decimal | Literal[False] | None:
    """The quote in a cell: a positive ``Decimal``, ``None`` for no quote, ``False`` if bad."""
    text = cells[index] if index < len(cells) else ""
    if text in ("", "N/A"):
        return None
    try:
        quote = Decimal(text)
    except InvalidOperation:
        return False
    return quote if quote.is_finite() and quote > 0 else False


def check_currency(code: str) -> str:
    """``code`` if it is an active ISO 4217 code other than USD, else a ``ValueError`` whose
    message says what to write (for the config's ``reporting_currency``)."""
    if code == "USD":
        raise ValueError("statements are in USD already; remove reporting_currency or name another")
    try:
        minor_units(code)
    except UnknownCurrencyError as error:
        raise ValueError(str(error)) from None
    return code
