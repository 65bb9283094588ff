"""``vapi-chargeback plan``: the queries, batches and requests a run of a month would send.

The plan is the run's own (``pipeline.plan_for`` over the loaded config and mapping), built
offline: nothing here calls the API. Windowing needs no assistant listing: from
``COARSE_PLAN_MIN_ASSISTANTS`` mapped assistants on, the plan sizes its windows from the
mapping CSV (its assistants and the days their rows change), which a run reads too. The
``GET /assistant`` listing a run sends besides (for names and mapping rules) is shown as one
line: how many pages it takes depends on the org's assistants, which only the API knows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vapi_chargeback.analytics.models import DEFAULT_MAX_QUERIES_PER_REQUEST
from vapi_chargeback.cli.common import config_arg, month_arg, table

if TYPE_CHECKING:
    from vapi_chargeback.analytics.models import AnalyticsQuery
    from vapi_chargeback.plan import Plan

LISTING = "GET /assistant (names, mapping rules; pages: as many as the org needs)"


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    plan = commands.add_parser(
        "plan",
        parents=[common],
        help="show the queries, batches and requests a run would send, without calling the API",
        description=(
            "Build the run's query plan for a month from chargeback.yaml and the mapping CSV,"
            " exactly as a run builds it, and show it: each POST /analytics request with the"
            " queries it carries (table, group-by, time step and window, operations), and the"
            " assistants listing a run also sends. Nothing is sent and nothing is written."
        ),
        epilog=(
            "Exit status: 0 shown, 1 a bad config or mapping (the messages of `validate`), 2 a"
            " wrong command line. Example: vapi-chargeback plan --month 2026-10 --json"
        ),
    )
    plan.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=None,
        metavar="CONFIG",
        help="chargeback.yaml to plan from (default: --config)",
    )
    config_arg(plan, "chargeback.yaml to plan from, if CONFIG is not given", "config_option")
    plan.add_argument(
        "--month",
        type=month_arg,
        required=True,
        metavar="YYYY-MM",
        help="statement month to plan, a calendar month in the config's time zone",
    )
    plan.add_argument(
        "--batch-size",
        type=_positive,
        default=DEFAULT_MAX_QUERIES_PER_REQUEST,
        metavar="N",
        help="queries per POST /analytics request, the API's batch limit as the connection"
        f" sets it (default: {DEFAULT_MAX_QUERIES_PER_REQUEST})",
    )
    plan.add_argument(
        "--json",
        action="store_true",
        help="print the plan as one JSON object (requests, and the run's whole plan as it"
        " stores it in plan.json) instead of a table",
    )
    plan.set_defaults(handler=_plan)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def build(config_file: Path, month: str, batch_size: int) -> Plan:
    """The plan a run of ``month`` would make (``pipeline.plan_run``'s first half)."""
    from vapi_chargeback.config import load_config
    from vapi_chargeback.mapping import load_mapping
    from vapi_chargeback.period import StatementPeriod
    from vapi_chargeback.pipeline import mapping_path, plan_for

    config = load_config(config_file)
    mapping = load_mapping(mapping_path(config, config_file), config)
    period = StatementPeriod.for_month(month, config.timezone)
    return plan_for(config, period, mapping, batch_size)


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    plan = build(args.config or args.config_option, args.month, args.batch_size)
    if args.json:
        print(json.dumps(as_json(plan), indent=2))
    else:
        print(as_text(plan))
    return 0


def _grouping(query: AnalyticsQuery) -> str:
    keys = [str(item) for item in query.group_by or []]
    keys += [f"var:{item.key}" for item in query.group_by_variable_value or []]
    return ",".join(keys) or "-"


def _window(query: AnalyticsQuery) -> tuple[str, str]:
    time_range = query.time_range
    if time_range is None or time_range.start is None or time_range.end is None:
        return "-", "-"
    span = f"{time_range.start.isoformat()} .. {time_range.end.isoformat()}"
    return str(time_range.step or "whole"), span


def as_json(plan: Plan) -> dict[str, Any]:
    """``requests``: what is sent, in order; ``plan``: the run's plan.json, whole."""
    requests = [
        {
            "request": index + 1,
            "method": "POST",
            "path": "/analytics",
            "body": {
                "queries": [
                    plan.query(name).model_dump(mode="json", by_alias=True, exclude_none=True)
                    for name in batch
                ]
            },
        }
        for index, batch in enumerate(plan.batches)
    ]
    return {
        "month": plan.period.label,
        "timezone": plan.period.timezone,
        "queries": len(plan.queries),
        "batches": len(plan.batches),
        "requests": requests,
        "also": [LISTING],
        "plan": json.loads(plan.model_dump_json()),
    }


def as_text(plan: Plan) -> str:
    rows = []
    for index, batch in enumerate(plan.batches):
        for name in batch:
            query = plan.query(name)
            step, span = _window(query)
            rows.append(
                [
                    str(index + 1),
                    name,
                    str(query.table),
                    _grouping(query),
                    step,
                    span,
                    str(len(query.operations)),
                ]
            )
    headers = ["request", "query", "table", "group by", "step", "window (org zone)", "operations"]
    heading = (
        f"{plan.period.label} ({plan.period.timezone}): {len(plan.queries)} queries in"
        f" {len(plan.batches)} POST /analytics request(s) of at most"
        f" {plan.max_queries_per_request}"
    )
    return "\n".join(
        [heading, "", table(headers, rows, numeric={0, 6}), "", f"Also sent: {LISTING}"]
    )
