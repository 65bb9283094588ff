"""The ``verify`` step: recount the month from ``GET /call``, compare, hold back or hand on.

It runs between reconcile and publish. Off (``verification.enabled`` false and no DAG
param saying otherwise) it hands reconcile's statement on untouched. On, it lists the
month's calls page by page (never all in memory), allocates the recount with the run's own
config and mapping, compares it with the analytics-based statement by line and by day,
and writes the compact recount and the drift report into the run's work folder. Beyond
tolerance it raises :class:`VerificationError` naming the worst differences, so nothing is
published; within, it hands publish the statement with its ``verification`` (the
workbooks' Verification and Other-by-type sheets, the manifest's block).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vapi_chargeback import statement_json
from vapi_chargeback.allocate import allocate
from vapi_chargeback.attribution import Attributor, attributed_rows
from vapi_chargeback.config import ChargebackConfig, load_config
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.names import run_rules
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.pipeline import OpenPath, RunInfo, load_inputs, make_folder
from vapi_chargeback.statement import Verification
from vapi_chargeback.verify.compare import (
    compare_days,
    compare_lines,
    day_sums,
    describe,
    largest_first,
)
from vapi_chargeback.verify.recount import Recount, recount_plan
from vapi_chargeback.verify.report import drift_report, other_by_type, recount_csv
from vapi_chargeback.verify.summary import as_mapping
from vapi_chargeback.workfolder import (
    FetchedBatch,
    StoragePath,
    StoredResults,
    load_statement,
)

if TYPE_CHECKING:
    from vapi_chargeback.analytics.client import VapiAnalyticsClient

VERIFIED_FILE = "statement-verified.json"
VERIFY_DIR = "verification"
RECOUNT_FILE = f"{VERIFY_DIR}/recount.csv"
REPORT_FILE = f"{VERIFY_DIR}/drift-report.json"
MAX_LISTED = 200
"""Differences carried in the statement (its Verification sheet); the report has them all."""
NAMED_IN_ERROR = 5

log = logging.getLogger(__name__)


class VerificationError(PermanentError):
    """The recount from call records differs from the statement beyond tolerance."""


def verification_enabled(run: RunInfo, requested: bool | None) -> bool:
    """The DAG param ``verify_calls`` when given, else the config's ``verification.enabled``."""
    if requested is not None:
        return requested
    return load_config(Path(run.config_path)).verification.enabled


def verify_run(
    run: RunInfo,
    allocated: Mapping[str, Any],
    reconciled: Mapping[str, Any],
    client: VapiAnalyticsClient,
    *,
    open_path: OpenPath,
) -> dict[str, Any]:
    """Recount, compare, write the recount and report; raise beyond tolerance, else return
    reconcile's result pointing at the verified statement (what publish reads)."""
    work = open_path(run.work_url)
    config, mapping, plan = load_inputs(run, work)
    settings = config.verification
    statement = load_statement(work, reconciled)
    period = StatementPeriod.for_month(run.month, run.timezone)
    recount = Recount(period, config.components)
    recount.read_month(client, config.variable_key)
    log.info(
        "recounted %s: %d calls from %d page(s) (%d bytes), %d request(s)",
        run.month,
        recount.calls,
        len(recount.pages_sha256),
        recount.bytes,
        recount.requests,
    )
    bare = recount_plan(config, period)
    results = recount.results(bare, config.variable_key)
    rules = run_rules(work, config.mapping_rules)
    recounted = allocate(config, mapping, bare, results, rules)
    lines = compare_lines(statement.lines, recounted.lines, statement.components, settings)

    month_config = config.for_period(period)
    attributor = Attributor(month_config, mapping, rules)
    core = ["calls", "seconds", "cost", *plan.components]
    measures = core if plan.daily_cost_query == plan.core_query else ["cost"]
    stored = StoredResults(
        work, plan, [FetchedBatch.model_validate(item) for item in allocated["fetched"]]
    )
    analytics_days = day_sums(
        chain.from_iterable(
            attributed_rows(
                month_config, mapping, plan, stored, part, measures, attributor=attributor
            )
            for part in plan.parts(plan.daily_cost_query)
        )
    )
    recount_days = day_sums(
        attributed_rows(
            month_config, mapping, bare, results, bare.core_query, measures, attributor=attributor
        )
    )
    days = compare_days(analytics_days, recount_days, measures, settings)

    every = largest_first([*lines.differences, *days.differences])
    blocking = [d for d in every if d.over_tolerance]
    recount_bytes = recount_csv(recount, attributor)
    make_folder(work / VERIFY_DIR)
    (work / RECOUNT_FILE).write_bytes(recount_bytes)
    verification = Verification(
        calls=recount.calls,
        pages=len(recount.pages_sha256),
        requests=recount.requests,
        lines_compared=lines.compared,
        lines_matched=lines.matched,
        days_compared=days.compared,
        days_matched=days.matched,
        day_columns=["minutes" if m == "seconds" else m for m in measures],
        tolerance_usd=settings.tolerance_usd,
        tolerance_pct=settings.tolerance_pct,
        passed=not blocking,
        differences=every[:MAX_LISTED],
        differences_total=len(every),
        other_by_type=other_by_type(recount, attributor, statement.lines, _respread(config)),
        recount_file=RECOUNT_FILE,
        recount_sha256=hashlib.sha256(recount_bytes).hexdigest(),
        report_file=REPORT_FILE,
        report_sha256="",
        pages_sha256=recount.pages_sha256,
    )
    report = drift_report(run.month, run.run_id, recount, verification, every)
    (work / REPORT_FILE).write_bytes(report)
    verification = replace(verification, report_sha256=hashlib.sha256(report).hexdigest())
    if blocking:
        raise VerificationError(_refusal(run, verification, blocking, work))
    raw = statement_json.dumps(replace(statement, verification=verification))
    (work / VERIFIED_FILE).write_bytes(raw)
    return {
        **reconciled,
        "statement": VERIFIED_FILE,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "verification": as_mapping(verification),
    }


def _refusal(
    run: RunInfo, verification: Verification, blocking: list[Any], work: StoragePath
) -> str:
    lines = {
        (d.cost_center_id, d.team, d.assistant_id, d.allocation) for d in blocking if not d.day
    }
    days = {(d.assistant_id, d.day) for d in blocking if d.day}
    worst = "; ".join(describe(d) for d in blocking[:NAMED_IN_ERROR])
    return (
        f"{run.month} is not published: recounted from {verification.calls} call records"
        f" (GET /call), {len(lines)} statement line(s) and {len(days)} assistant-day(s) differ"
        f" from the analytics beyond tolerance ({verification.tolerance_usd} USD and"
        f" {verification.tolerance_pct} %). Worst: {worst}. Every difference is in"
        f" {work / REPORT_FILE}. If the analytics are still settling, rerun later; if the"
        " difference is known and accepted, raise verification.tolerance_usd/_pct in"
        " chargeback.yaml or run this month with verify_calls false."
    )


def _respread(config: ChargebackConfig) -> str | None:
    """The pool that moves the calls without an assistant onto cost centers, if any."""
    return next(
        (pool.name for pool in config.shared_costs if pool.source == "calls-without-assistant"),
        None,
    )
