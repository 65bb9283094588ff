"""``vapi-chargeback fx-rates``: the ECB's reference-rate history as a rates file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vapi_chargeback.cli.common import write_whole


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    rates = commands.add_parser(
        "fx-rates",
        parents=[common],
        help="turn the ECB's reference-rate history into a rates file for reporting_currency",
        description=(
            "Convert the European Central Bank's euro reference-rate history (eurofxref-hist.csv:"
            " Date,USD,JPY,… in units per 1 EUR) into the rates file chargeback.yaml's fx.rates"
            " reads: date,currency,rate in units per 1 USD (EUR = 1/USD, X = X/USD), rounded to"
            " 10 significant digits. Days without a USD quote and N/A cells give no rate;"
            " currencies ISO 4217 no longer lists (CYP, HRK …) are left out."
        ),
        epilog=(
            "Exit status: 0 written, 1 the ECB file has a bad cell (the message names its line"
            " and column; nothing is written), 2 a wrong command line."
        ),
    )
    rates.add_argument(
        "--from-ecb",
        type=Path,
        required=True,
        metavar="PATH",
        help="eurofxref-hist.csv as downloaded from the ECB (unzipped)",
    )
    rates.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="rates file to write, e.g. fx_rates.csv beside chargeback.yaml (replaced whole)",
    )
    rates.add_argument(
        "--currency",
        action="append",
        metavar="CODE",
        help="keep only this ISO 4217 code (EUR, GBP …); repeat for more (default: every"
        " currency the ECB quotes)",
    )
    rates.set_defaults(handler=_fx_rates)


def _fx_rates(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vapi_chargeback.fx import MINOR_UNITS
    from vapi_chargeback.fxrates import from_ecb

    wanted = {code.strip() for code in args.currency} if args.currency else None
    unknown = sorted((wanted or set()) - set(MINOR_UNITS))
    if unknown:
        parser.error(f"--currency {', '.join(unknown)}: not an active ISO 4217 code (EUR, GBP …)")
    write_whole(args.out, from_ecb(args.from_ecb.read_bytes(), str(args.from_ecb), wanted))
    return 0
