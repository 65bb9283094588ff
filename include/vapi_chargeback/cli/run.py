"""``vapi-chargeback run``: one statement month with the DAG's own steps, in this process.

``run`` is :func:`vapi_chargeback.runner.run_month`, so what it publishes has the bytes the
DAG would publish for the same inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vapi_chargeback.cli.common import (
    API_KEY_ENV,
    DEFAULT_API_URL,
    DEFAULT_CONFIG,
    DEFAULT_OUTPUT,
    month_arg,
    storage_url,
)

if TYPE_CHECKING:
    from vapi_chargeback.runner import MonthRun


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
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
        type=month_arg,
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
        output_url=storage_url(args.output) if args.output else None,
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
