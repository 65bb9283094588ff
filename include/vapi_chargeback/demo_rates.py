"""The demo org's EUR rates: ECB-shaped, synthetic, and extended to whatever month the demo runs.

The demo config reports in EUR from ``include/config/fx_rates.csv``, a file made by
:func:`demo_rates` (not the ECB's figures: the demo's calls are synthetic too) with the
ECB's shape: one rate per TARGET business day, none on weekends, New Year, Good Friday,
Easter Monday, 1 May and Christmas. A shipped file ends somewhere, and ``fx.max_age_days``
rightly refuses a month after its end, yet ``make demo`` runs last month, whenever that
is. So, only when the shipped rates do not reach the demo month's last day,
:func:`config_with_rates_through` copies the config folder's inputs to ``data/demo/config/``
with the missing days appended; the config's bytes (and so its hash in the manifest) stay
the shipped ones. Real orgs never need this: they convert the ECB's own history
(``vapi-chargeback fx-rates --from-ecb``).
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

from dateutil.easter import easter

from vapi_chargeback.config import load_config
from vapi_chargeback.fxrates import fx_rates_path, load_fx_rates
from vapi_chargeback.money import round_money

RATE_QUANTUM = Decimal("0.0001")
"""EUR per USD to four places, as the ECB publishes USD per EUR."""
_ANCHORS = [
    (date(2025, 1, 1), Fraction("0.9500")),
    (date(2025, 4, 1), Fraction("0.9250")),
    (date(2025, 7, 1), Fraction("0.8530")),
    (date(2025, 10, 1), Fraction("0.8520")),
    (date(2026, 1, 1), Fraction("0.8600")),
    (date(2026, 4, 1), Fraction("0.8750")),
    (date(2026, 7, 1), Fraction("0.8900")),
    (date(2026, 11, 30), Fraction("0.9050")),
]
"""A plausible path of EUR per USD (within 0.85–0.95); flat after the last point."""
_NOISE = 30
"""Day-to-day wiggle, in units of :data:`RATE_QUANTUM` either way (±0.0030, about 0.3 %)."""


def is_ecb_business_day(day: date) -> bool:
    """A day the ECB publishes reference rates: a weekday outside the TARGET holidays."""
    if day.weekday() >= 5:
        return False
    fixed = {(1, 1), (5, 1), (12, 25), (12, 26)}
    moving = {easter(day.year) - timedelta(days=2), easter(day.year) + timedelta(days=1)}
    return (day.month, day.day) not in fixed and day not in moving


def demo_rates(first: date, last: date) -> list[tuple[date, Decimal]]:
    """The demo's EUR per USD for each ECB business day from ``first`` to ``last``; the same
    days always give the same rates."""
    rates = []
    day = first
    while day <= last:
        if is_ecb_business_day(day):
            rates.append((day, round_money(_path(day) + _wiggle(day), RATE_QUANTUM)))
        day += timedelta(days=1)
    return rates


def _path(day: date) -> Fraction:
    if day <= _ANCHORS[0][0]:
        return _ANCHORS[0][1]
    for (start, low), (end, high) in pairwise(_ANCHORS):
        if day <= end:
            return low + (high - low) * Fraction((day - start).days, (end - start).days)
    return _ANCHORS[-1][1]


def _wiggle(day: date) -> Fraction:
    digest = hashlib.sha256(day.isoformat().encode()).digest()
    return Fraction(digest[0] % (2 * _NOISE + 1) - _NOISE) * Fraction(RATE_QUANTUM)


def rates_csv(rates: list[tuple[date, Decimal]], currency: str = "EUR") -> str:
    """Rows of a rates file (no header) for ``rates``."""
    return "".join(f"{day},{currency},{rate}\n" for day, rate in rates)


def rates_to_add(config_file: Path, through: date) -> list[tuple[date, Decimal]]:
    """The demo rates the config's rates file lacks to reach ``through``: the days after its
    last rate of the reporting currency; none without a reporting currency."""
    config = load_config(config_file)
    currency = config.reporting_currency
    if currency is None:
        return []
    known = load_fx_rates(fx_rates_path(config.fx.rates, config_file)).by_currency.get(currency)
    start = max(known) + timedelta(days=1) if known else through - timedelta(days=31)
    return demo_rates(start, through)


def add_rates(config_file: Path, through: date) -> int:
    """Append :func:`rates_to_add` to the config's own rates file; returns how many."""
    config = load_config(config_file)
    missing = rates_to_add(config_file, through)
    if missing and config.reporting_currency:
        path = fx_rates_path(config.fx.rates, config_file)
        text = path.read_text(encoding="utf-8")
        separator = "" if text.endswith("\n") else "\n"
        rows = rates_csv(missing, config.reporting_currency)
        path.write_text(text + separator + rows, encoding="utf-8")
    return len(missing)


def config_with_rates_through(config_file: Path, folder: Path, through: date) -> Path:
    """``config_file`` if its rates reach ``through``, else a copy of it in ``folder``, beside
    copies of its mapping, invoices and rates, the rates extended by :func:`add_rates`. Inputs
    named by absolute paths are read where they are (an absolute rates file is not extended)."""
    if not rates_to_add(config_file, through):
        return config_file
    config = load_config(config_file)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (config.mapping, config.invoices, config.fx.rates):
        source = config_file.parent / name
        if not Path(name).is_absolute() and source.exists():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / name)
    copy = folder / config_file.name
    shutil.copyfile(config_file, copy)
    if not Path(config.fx.rates).is_absolute():
        add_rates(copy, through)
    return copy
