"""``vapi-chargeback mapping suggest``: the mapping CSV rows ``mapping_rules`` would produce."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from vapi_chargeback.cli.common import (
    API_KEY_ENV,
    DEFAULT_API_URL,
    DEFAULT_CONFIG,
    EXIT_ERROR,
    PROG,
    date_arg,
    write_whole,
)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
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
        type=date_arg,
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
    write_whole(args.out, rows_csv(suggestion))
    if args.unmatched:
        write_whole(args.unmatched, unmatched_csv(suggestion))
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
