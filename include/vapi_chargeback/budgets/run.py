"""The daily run, step by step: plan → fetch → allocate → publish the month to date.

The same steps as the monthly statement (``pipeline``), on the month cut at the run
day's local midnight (``budgets.window``): the plan is ``pipeline.plan_for`` over the cut
period, the fetch is ``pipeline.fetch_batch`` itself (an :class:`MtdRun` is a
``RunInfo``), allocation is ``allocate.allocate`` with the fixed pools prorated, and the
lines are held to the independent org total by ``reconcile.reconcile`` before anything is
published. What differs is what is made of the statement: the month-to-date figures
(``budgets.report``) and their two files (``budgets.outputs``), not a month's set.

A day with no calls yet is not refused, as the monthly run refuses an empty month: on
the 1st of a quiet org the figures are rightly zero, and nothing is booked from them.
Corrections carried from final months are left out: they are not this month's spend.

The work folder is ``{output}/_runs/_mtd/{YYYY-MM-DD}/{run id}/`` (``YYYY-MM-DD`` the
last day included), beside the monthly runs' and like them kept as provenance.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vapi_chargeback.allocate import allocate
from vapi_chargeback.budgets.mtd import MTD_DIR, MtdReport
from vapi_chargeback.budgets.outputs import publish_mtd_files, render_csv
from vapi_chargeback.budgets.report import build_report
from vapi_chargeback.budgets.window import MtdWindow, local_today, mtd_window, prorated_config
from vapi_chargeback.config import load_config
from vapi_chargeback.mapping import load_mapping
from vapi_chargeback.names import forget_names, named_lines, run_names, run_rules
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.pipeline import (
    RUNS_DIR,
    OpenPath,
    PlanSettings,
    RunInfo,
    default_open_path,
    fetch_batch,
    load_inputs,
    make_folder,
    mapping_path,
    output_location,
    plan_for,
    safe_name,
)
from vapi_chargeback.reconcile import reconcile
from vapi_chargeback.workfolder import (
    PLAN_FILE,
    FetchedBatch,
    RunStateError,
    StoredResults,
    file_sha256,
)

if TYPE_CHECKING:
    from vapi_chargeback.analytics.client import VapiAnalyticsClient

REPORT_FILE = "mtd.json"
CSV_FILE = "mtd.csv"
log = logging.getLogger(__name__)


class MtdSettings(PlanSettings):
    """What a daily run is asked to do, before anything is read."""

    run_day: date | None = None
    """The local day the run stands on: the figures cover the month's days before it (on
    the 1st, the whole previous month). ``None`` = today in the org zone."""
    clamp_to_today: bool = False
    """Take a ``run_day`` after today in the org zone as today (a day derived from a UTC
    date, in a zone behind UTC); else such a day is refused."""


class MtdRun(RunInfo):
    """A planned daily run: a ``RunInfo`` over the cut month (so ``pipeline.fetch_batch``
    sends its batches), with the days it covers."""

    through_day: date
    """The last local day included; names the published files."""
    elapsed_days: int
    total_days: int
    pools_note: str


def plan_mtd(
    settings: MtdSettings,
    *,
    open_path: OpenPath = default_open_path,
    now: datetime | None = None,
) -> MtdRun:
    """Validate config and mapping, cut the month at the run day, plan its queries.

    Refused before anything is fetched: a bad config or mapping, a run day that has not
    begun in the org zone (``DayNotOverError``).
    """
    now = now or datetime.now(UTC)
    config_file = Path(settings.config_path)
    config = load_config(config_file)
    mapping_file = mapping_path(config, config_file)
    mapping = load_mapping(mapping_file, config)
    today = local_today(now, config.timezone)
    run_day = settings.run_day or today
    if settings.clamp_to_today:
        run_day = min(run_day, today)
    window = mtd_window(run_day, config.timezone, now=now)
    cut_config, pools_note = prorated_config(config, window)
    plan = plan_for(cut_config, window.period, mapping, settings.max_queries_per_request)
    output_url = output_location(settings.output_url, config, settings.default_output_url)
    work = (
        open_path(output_url)
        / RUNS_DIR
        / MTD_DIR
        / window.through_day.isoformat()
        / safe_name(settings.run_id)
    )
    make_folder(work)
    forget_names(work)
    (work / PLAN_FILE).write_bytes(plan.model_dump_json(indent=2).encode())
    log.info(
        "month to date of %s through %s (%d of %d days): %d queries in %d batches",
        window.period.label,
        window.through_day,
        window.elapsed_days,
        window.total_days,
        len(plan.queries),
        len(plan.batches),
    )
    return MtdRun(
        month=window.period.label,
        timezone=config.timezone,
        period_start=window.period.start,
        period_end=window.period.end,
        run_id=settings.run_id,
        config_path=str(config_file),
        mapping_path=str(mapping_file),
        config_sha256=file_sha256(config_file),
        mapping_sha256=file_sha256(mapping_file),
        output_url=output_url,
        work_url=str(work),
        batch_count=len(plan.batches),
        query_count=len(plan.queries),
        expect_empty_month=True,
        api_base_url=settings.api_base_url,
        through_day=window.through_day,
        elapsed_days=window.elapsed_days,
        total_days=window.total_days,
        pools_note=pools_note,
    )


def allocate_mtd(
    run: MtdRun,
    fetched: Sequence[Mapping[str, Any]],
    *,
    open_path: OpenPath = default_open_path,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Allocate the cut month with the monthly rules, reconcile it, and keep the figures
    and the CSV in the work folder for :func:`publish_mtd`.

    The ``mapping_rules`` apply as in the monthly run, over the assistants this run listed
    (batch 0 of the fetch stores them), so the month to date charges an assistant the CSV
    does not map where the month's statement will.
    """
    work = open_path(run.work_url)
    config, mapping, plan = load_inputs(run, work)
    window = MtdWindow(
        period=plan.period,
        month=StatementPeriod.for_month(run.month, run.timezone),
        through_day=run.through_day,
    )
    cut_config, pools_note = prorated_config(config, window)
    batches = [FetchedBatch.model_validate(item) for item in fetched]
    results = StoredResults(work, plan, batches)
    rules = run_rules(work, config.mapping_rules)
    statement = allocate(cut_config, mapping, plan, results, rules)
    names = run_names(
        work, open_path(run.output_url), statement.period, run.through_day, statement.lines, mapping
    )
    statement = replace(statement, lines=named_lines(statement.lines, names), names=names)
    reconciliation = reconcile(
        statement, plan, results, expect_empty_month=True, api=run.api_base_url
    )
    report = build_report(
        statement,
        config,
        window,
        reconciliation,
        pools_note=pools_note,
        run_id=run.run_id,
        computed_at=now or datetime.now(UTC),
    )
    body, csv = report.to_json(), render_csv(statement, report)
    (work / REPORT_FILE).write_bytes(body)
    (work / CSV_FILE).write_bytes(csv)
    return {
        "report": REPORT_FILE,
        "csv": CSV_FILE,
        "report_sha256": hashlib.sha256(body).hexdigest(),
        "csv_sha256": hashlib.sha256(csv).hexdigest(),
        "total_usd": str(report.total_usd),
    }


def publish_mtd(
    run: MtdRun,
    allocated: Mapping[str, Any],
    *,
    open_path: OpenPath = default_open_path,
) -> dict[str, Any]:
    """Write the day's files under ``{output}/_mtd/`` (CSV first, JSON last); what the
    alerts read next: the JSON's URL, the day, and each cost center's headline figures."""
    work = open_path(run.work_url)
    body = _kept(work / str(allocated["report"]), allocated["report_sha256"])
    csv = _kept(work / str(allocated["csv"]), allocated["csv_sha256"])
    report = MtdReport.from_json(body)
    output = open_path(run.output_url)
    files = publish_mtd_files(output, report, csv)
    log.info("published %s", ", ".join(files))
    return {
        "period": report.period,
        "through_day": report.through_day.isoformat(),
        "report_url": str(output / report.relative_json),
        "csv_url": str(output / report.relative_csv),
        "files": files,
        "total_usd": str(report.total_usd),
        "cost_centers": {
            center.cost_center_id: {
                "spent_usd": str(center.spent_usd),
                "budget_usd": None if center.budget_usd is None else str(center.budget_usd),
                "used_pct": None if center.used_pct is None else str(center.used_pct),
                "forecast_usd": str(center.forecast_usd),
                "thresholds_crossed": [str(pct) for pct in center.thresholds_crossed],
                "forecast_alert": center.forecast_alert,
            }
            for center in report.cost_centers
        },
    }


def _kept(path: Any, sha256: str) -> bytes:
    raw: bytes = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise RunStateError(
            f"{path} is not the file the allocate step wrote (sha256 differs); clear the run"
            " from allocate"
        )
    return raw


def run_mtd(
    settings: MtdSettings,
    client: VapiAnalyticsClient,
    *,
    open_path: OpenPath = default_open_path,
    now: datetime | None = None,
) -> dict[str, Any]:
    """plan → fetch every batch (in plan order) → allocate → publish in one process, the
    DAG's steps with its hand-overs (for the command line, the demo, tests and benchmarks);
    the publish step's result."""
    run = plan_mtd(settings, open_path=open_path, now=now)
    fetched = [
        fetch_batch(run, index, client, open_path=open_path).model_dump(mode="json")
        for index in range(run.batch_count)
    ]
    allocated = allocate_mtd(run, fetched, open_path=open_path, now=now)
    return publish_mtd(run, allocated, open_path=open_path)
