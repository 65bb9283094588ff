"""``vapi-chargeback``: run a statement month from the command line, without Airflow.

``run`` is :func:`vapi_chargeback.runner.run_month` — the DAG's own steps in one process —
so what it publishes has the bytes the DAG would publish for the same inputs. One verb per
job (subcommands), so that later verbs (validate, plan, status, diff) fit beside it.

Errors follow the linters' convention: an error we raise on purpose (a
:class:`~vapi_chargeback.errors.ChargebackError`: bad config naming its file and line, a
refused request, a month that cannot run yet, a statement that does not reconcile) prints
its message on stderr and exits 1, without a traceback; a wrong command line exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vapi_chargeback import __version__
from vapi_chargeback.errors import ChargebackError

if TYPE_CHECKING:
    from vapi_chargeback.runner import MonthRun

PROG = "vapi-chargeback"
API_KEY_ENV = "VAPI_API_KEY"
DEFAULT_API_URL = "https://api.vapi.ai"
DEFAULT_CONFIG = Path("include/config/chargeback.yaml")
"""The project's config, relative to the working directory (the DAG's default too)."""
DEFAULT_OUTPUT = Path("output")
"""Where statements go when neither ``--output`` nor the config's ``output`` names a place."""
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command: Callable[[argparse.Namespace, argparse.ArgumentParser], int] = args.handler
    try:
        return command(args, parser)
    except ChargebackError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was published", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Monthly chargeback statements per cost center from the Vapi Analytics API.",
        epilog=f"`{PROG} COMMAND --help` explains a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log each step and request on stderr (default: warnings only)",
    )

    run = commands.add_parser(
        "run",
        parents=[common],
        help="plan, fetch, allocate, reconcile and publish one statement month",
        description=(
            "Run one statement month in this process with the DAG's own steps: validate the"
            " config and mapping, ask the Analytics API, allocate every cost to a cost center,"
            " check the lines add up to the org total to the cent, and publish the month's"
            " statements atomically. Nothing is published unless every step succeeds; the"
            " raw API responses stay in the output's _runs/ folder as provenance."
        ),
        epilog=(
            f"The API key is read from the environment variable {API_KEY_ENV} (never from a"
            " flag, so it stays out of shell history and process lists). Exit status: 0"
            " published, 1 the run failed (the message says why and what to fix), 2 a wrong"
            " command line or no API key."
        ),
    )
    run.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="PATH",
        help=f"chargeback.yaml to use; its mapping CSV is read relative to it (default: {DEFAULT_CONFIG})",
    )
    run.add_argument(
        "--month",
        type=_month,
        metavar="YYYY-MM",
        help="statement month, a calendar month in the config's time zone (default: the last"
        " complete month there, once settlement_delay_hours have passed)",
    )
    run.add_argument(
        "--output",
        metavar="URL",
        help="where statements go, a folder path or storage URL (file://…, s3://bucket/prefix);"
        " overrides the config's output (default: the config's output, else ./output)",
    )
    run.add_argument(
        "--api-url",
        default=DEFAULT_API_URL,
        metavar="URL",
        help=f"base URL of the Vapi API, e.g. an emulator on loopback (default: {DEFAULT_API_URL})",
    )
    run.add_argument(
        "--expect-empty-month",
        action="store_true",
        help="publish even if the API reports no calls at all in the month (else the run"
        " stops: no calls usually means a wrong key or a dead integration)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object instead of text",
    )
    run.set_defaults(handler=_run)

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
    _mapping_parser(commands, common)
    return parser


def _mapping_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    mapping = commands.add_parser(
        "mapping",
        help="work with the assistant mapping (mapping suggest)",
        description="Work with the assistant → team → cost center mapping CSV.",
    )
    verbs = mapping.add_subparsers(dest="mapping_command", required=True, metavar="COMMAND")
    suggest = verbs.add_parser(
        "suggest",
        parents=[common],
        help="write the mapping CSV rows chargeback.yaml's mapping_rules would produce",
        description=(
            "List the org's assistants (GET /assistant, or a run's stored assistants.json)"
            " and apply chargeback.yaml's mapping_rules to those the mapping CSV maps on no"
            " day. Writes the rows the rules give, dated from --valid-from, for finance to"
            " review and append to the mapping CSV: the CSV is the effective-dated source of"
            " truth, rules apply only as of a run. Assistants the CSV maps are left to it."
            " Nothing is written unless the config, the mapping and the listing are valid."
        ),
        epilog=(
            f"The API key is read from the environment variable {API_KEY_ENV} (not needed"
            " with --from-listing). Exit status: 0 written, 1 a bad config, mapping or"
            " listing (the message says which and where), 2 a wrong command line."
        ),
    )
    suggest.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="PATH",
        help="chargeback.yaml with the mapping_rules; its mapping CSV is read relative to it"
        f" (default: {DEFAULT_CONFIG})",
    )
    suggest.add_argument(
        "--api-url",
        default=DEFAULT_API_URL,
        metavar="URL",
        help=f"base URL of the Vapi API to list assistants from (default: {DEFAULT_API_URL})",
    )
    suggest.add_argument(
        "--from-listing",
        type=Path,
        metavar="PATH",
        help="use a run's stored assistants.json (its work folder, _runs/…) instead of asking"
        " the API: the rows that run's rules applied",
    )
    suggest.add_argument(
        "--valid-from",
        type=_date,
        metavar="YYYY-MM-DD",
        help="valid_from of every suggested row, and the day the rules are applied as of"
        " (default: the first of the current month in the config's time zone)",
    )
    suggest.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="CSV to write the suggested rows to, with the mapping's header (replaced whole)",
    )
    suggest.add_argument(
        "--unmatched",
        type=Path,
        metavar="PATH",
        help="CSV to write the assistants nothing maps to (assistant_id,assistant_name);"
        " default: they are listed on stdout",
    )
    suggest.set_defaults(handler=_mapping_suggest)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def _month(text: str) -> str:
    if not MONTH.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month; use YYYY-MM, e.g. 2026-10")
    return text


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    api_key = os.environ.get(API_KEY_ENV, "").strip()
    if not api_key:
        parser.error(
            f"the environment variable {API_KEY_ENV} is not set; export the Vapi org's"
            " private API key in it"
        )
    from vapi_chargeback.analytics.client import VapiAnalyticsClient
    from vapi_chargeback.pipeline import RunSettings
    from vapi_chargeback.runner import run_month

    try:
        client = VapiAnalyticsClient(args.api_url, api_key)
    except ValueError as error:
        parser.error(f"--api-url: {error}")
    settings = RunSettings(
        config_path=str(args.config),
        output_url=_storage_url(args.output) if args.output else None,
        default_output_url=DEFAULT_OUTPUT.resolve().as_uri(),
        month=args.month,
        run_id=f"cli-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}",
        expect_empty_month=args.expect_empty_month,
        api_base_url=client.base_url,
    )
    with client:
        month = run_month(settings, client)
    summary = _summary(month)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_text(summary))
    return 0


def _fx_rates(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vapi_chargeback.fx import MINOR_UNITS
    from vapi_chargeback.fxrates import from_ecb

    wanted = {code.strip() for code in args.currency} if args.currency else None
    unknown = sorted((wanted or set()) - set(MINOR_UNITS))
    if unknown:
        parser.error(f"--currency {', '.join(unknown)}: not an active ISO 4217 code (EUR, GBP …)")
    rates = from_ecb(args.from_ecb.read_bytes(), str(args.from_ecb), wanted)
    partial = args.out.with_name(f".{args.out.name}.partial")
    partial.write_bytes(rates)
    partial.replace(args.out)
    return 0


def _mapping_suggest(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from zoneinfo import ZoneInfo

    from vapi_chargeback.config import load_config
    from vapi_chargeback.mapping import load_mapping
    from vapi_chargeback.mapping_suggest import rows_csv, suggest, unmatched_csv
    from vapi_chargeback.pipeline import mapping_path

    config = load_config(args.config)
    mapping = load_mapping(mapping_path(config, args.config), config)
    if not config.mapping_rules:
        parser.error(f"--config {args.config}: it has no mapping_rules; nothing to suggest")
    try:
        listed = _listed(args, parser)
    except ValueError as error:
        print(f"{PROG}: error: --from-listing: {error}", file=sys.stderr)
        return EXIT_ERROR
    valid_from = args.valid_from or datetime.now(ZoneInfo(config.timezone)).date().replace(day=1)
    suggestion = suggest(config, mapping, listed, valid_from)
    _write_whole(args.out, rows_csv(suggestion))
    if args.unmatched:
        _write_whole(args.unmatched, unmatched_csv(suggestion))
    print(
        f"{len(suggestion.rows)} rows suggested from {valid_from} in {args.out};"
        f" {suggestion.mapped} assistants left to the mapping CSV;"
        f" {len(suggestion.unmatched)} assistants nothing maps"
    )
    if not args.unmatched:
        for item in suggestion.unmatched:
            print(f"unmatched: {item.id} {item.name}".rstrip())
    return 0


def _listed(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Any]:
    from vapi_chargeback.names import ASSISTANTS_FILE, read_assistants, stored_listing

    if args.from_listing:
        where = str(args.from_listing)
        stored = read_assistants(args.from_listing.read_bytes(), where)
        if stored.assistants is None:
            parser.error(
                f"--from-listing {where}: it holds no assistants with metadata (the run's"
                f" listing failed or predates rules); list them from the API instead"
            )
        return list(stored.assistants)
    api_key = os.environ.get(API_KEY_ENV, "").strip()
    if not api_key:
        parser.error(
            f"the environment variable {API_KEY_ENV} is not set; export the Vapi org's"
            f" private API key in it, or give --from-listing a run's {ASSISTANTS_FILE}"
        )
    from vapi_chargeback.analytics.assistants import list_assistants
    from vapi_chargeback.analytics.client import VapiAnalyticsClient

    try:
        client = VapiAnalyticsClient(args.api_url, api_key)
    except ValueError as error:
        parser.error(f"--api-url: {error}")
    with client:
        return list(stored_listing(list_assistants(client)).assistants or [])


def _write_whole(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def _storage_url(text: str) -> str:
    """A URL as given; a plain path as an absolute ``file://`` URL (the run's folders are
    URLs, and a relative path would depend on where later steps run)."""
    if "://" in text:
        return text
    return Path(text).expanduser().resolve().as_uri()


def _summary(month: MonthRun) -> dict[str, Any]:
    published = month.published
    assert published is not None, "run_month publishes unless told not to"
    return {
        "month": month.run.month,
        "timezone": month.run.timezone,
        "folder": published["folder"],
        "total_usd": published["total_usd"],
        "org_total_usd": month.reconciled["org_total_usd"],
        "shared_total_usd": month.reconciled["shared_total_usd"],
        "lines": month.allocated["lines"],
        "files": len(published["files"]),
        "requests": month.requests,
        "run_id": month.run.run_id,
        "work_folder": month.run.work_url,
        "step_seconds": {name: round(value, 3) for name, value in month.step_seconds.items()},
    }


def _text(summary: dict[str, Any]) -> str:
    steps = ", ".join(f"{name} {value:.1f}" for name, value in summary["step_seconds"].items())
    seconds = sum(summary["step_seconds"].values())
    rows = [
        ("month", f"{summary['month']} ({summary['timezone']})"),
        ("folder", summary["folder"]),
        (
            "total",
            f"{Decimal(summary['total_usd']):,.2f} USD (org {Decimal(summary['org_total_usd']):,.2f}"
            f" + fixed shared {Decimal(summary['shared_total_usd']):,.2f}, reconciled)",
        ),
        ("lines", f"{summary['lines']:,} in {summary['files']} files"),
        ("requests", f"{summary['requests']} POST /analytics (retries included)"),
        ("time", f"{seconds:.1f} s ({steps})"),
    ]
    width = max(len(label) for label, _ in rows)
    return f"Published {summary['month']}\n" + "\n".join(
        f"  {label:<{width}}  {value}" for label, value in rows
    )
