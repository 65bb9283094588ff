"""Monthly chargeback statements per cost center from the Vapi Analytics API.

Wiring only: every task body is one call into ``vapi_chargeback.airflow.steps``, which
imports the pipeline at run time (parsing this file stays cheap) and applies the one
error policy: an error no retry can fix fails its task on the first try; a transient one
is retried. Tasks hand each other small dicts (period, paths, hashes); raw API responses
and the statement travel through the run's work folder in the output storage, never
through XCom.

Closing the books: publish writes a *draft*; ``review`` (Airflow's ApprovalOperator,
answered on the UI's Required Actions page or over REST; ``approval: auto`` in
chargeback.yaml answers itself) and ``finalize`` make it *final*; only then does
``deliver`` mail it (drafts too with ``deliver_drafts: true``, marked DRAFT). A rejection
or a timeout skips ``finalize``: the month stays a draft and the run ends green.

Allocation is spread over shards of the fetched batches (param ``allocate_shards``; empty
= by the month's size, one shard for most orgs): ``allocate_shard`` (one mapped task per
shard, on any worker) sums the rows of its batches exactly, read from the stored
responses, and ``allocate`` merges the sums and rounds once over all lines. The statement
is byte for byte the same for any shard count.

Verification (param ``verify_calls``, else chargeback.yaml's ``verification.enabled``):
``verify`` recounts the month from call records (``GET /call``) between reconcile and
publish; beyond tolerance it fails for good and nothing is published (docs/verification.md).

Time bounds (docs/operations.md): every task has an ``execution_timeout``; a retry
waits ``RETRY_DELAY`` (60 s, or ``VAPI_CHARGEBACK_RETRY_DELAY_SECONDS``), doubling, at
most 10 minutes.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, Param, TriggerRule, dag, get_current_context, task

from vapi_chargeback.airflow import housekeeping, steps
from vapi_chargeback.airflow.failure_alerts import FailureAlert
from vapi_chargeback.airflow.review import StatementReview
from vapi_chargeback.airflow.settlement import SettlementSensor
from vapi_chargeback.airflow.timetable import StatementMonthTimetable

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATEMENTS = Asset("vapi_chargeback_statements", uri="file://vapi-chargeback/statements")

RETRY_DELAY = timedelta(seconds=float(os.environ.get("VAPI_CHARGEBACK_RETRY_DELAY_SECONDS", "60")))
"""First pause before a retry. Set here, not left to Airflow's ``[core]
default_task_retry_delay``: Airflow 3.3's scheduler ignores that setting for tasks whose
delay equals it (the serialized DAG omits the value and the scheduler assumes 300 s)."""

TASK_DEFAULTS: dict[str, Any] = {
    "owner": "finance-platform",
    "retries": 2,
    "retry_delay": RETRY_DELAY,
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=30),
    # Mails chargeback.yaml's alerts_email once per task that fails for good (not per retry).
    "on_failure_callback": FailureAlert(PROJECT_DIR),
}
FETCH_TIMEOUT = timedelta(minutes=15)
"""Above the client's default deadline (300 s): the client gives up first and says why."""
FETCH_RETRIES = 1
"""The client already retried for up to its deadline; one more try after a pause is enough."""
PLAN_TIMEOUT = timedelta(minutes=10)
ALLOCATE_TIMEOUT = timedelta(minutes=60)
VERIFY_TIMEOUT = timedelta(minutes=60)
"""Listing a month of 1.5M calls through GET /call takes minutes (docs/benchmarks.md)."""


@dag(
    dag_id="vapi_chargeback_monthly",
    schedule=StatementMonthTimetable(),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=3,
    default_args=TASK_DEFAULTS,
    params={
        "month": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            description="Statement month YYYY-MM; empty = the month of the run's data interval.",
        ),
        "deliver": Param(
            True,
            type="boolean",
            description="E-mail the statements to owners and finance after publishing.",
        ),
        "redeliver": Param(
            False,
            type="boolean",
            description="Send again to recipients who already got this month's statements.",
        ),
        "expect_empty_month": Param(
            False,
            type="boolean",
            description=(
                "Publish even if the API reports no calls at all in the month (else the run"
                " stops: that usually means a wrong key or a dead integration)."
            ),
        ),
        "restate": Param(
            False,
            type="boolean",
            description=(
                "Replace a final month with a new version, a draft to approve again (the"
                " booked version stays readable under _versions/). Needs a reason."
            ),
        ),
        "verify_calls": Param(
            None,
            type=["null", "boolean"],
            description=(
                "Recount the month from call records (GET /call) and compare it with the"
                " statement; beyond tolerance nothing is published. Empty = chargeback.yaml's"
                " verification.enabled."
            ),
        ),
        "allocate_shards": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=256,
            description=(
                "Shards of fetched batches allocate is spread over, one mapped task each (the"
                " statement is the same for any count). Empty = one per 256 MiB of API"
                " responses, at most 16."
            ),
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            maxLength=1000,
            description="Why the final month is restated (required with restate; one line).",
        ),
    },
    tags=["vapi", "finance", "chargeback"],
    doc_md=__doc__,
)
def vapi_chargeback_monthly() -> None:
    # Scheduled runs wait here for settlement_delay_hours (chargeback.yaml); manual ones do not.
    settled = SettlementSensor(task_id="settled", project_dir=PROJECT_DIR)

    @task(execution_timeout=PLAN_TIMEOUT)
    def plan() -> dict[str, Any]:
        """Validate config and mapping, fix the statement month, compile the queries."""
        return steps.plan(get_current_context(), PROJECT_DIR)

    @task(execution_timeout=PLAN_TIMEOUT)
    def batches(run: dict[str, Any]) -> list[int]:
        return list(range(run["batch_count"]))

    @task(max_active_tis_per_dagrun=4, execution_timeout=FETCH_TIMEOUT, retries=FETCH_RETRIES)
    def fetch(batch: int, run: dict[str, Any]) -> dict[str, Any]:
        """Send one request of the plan; store its raw response with its sha256."""
        return steps.fetch(run, batch)

    @task(execution_timeout=PLAN_TIMEOUT)
    def shards(fetched: list[dict[str, Any]]) -> list[int]:
        """How many shards of batches allocate is spread over (param allocate_shards)."""
        return steps.shards(get_current_context(), fetched)

    @task(execution_timeout=ALLOCATE_TIMEOUT)
    def allocate_shard(
        shard: int, run: dict[str, Any], fetched: list[dict[str, Any]], shards: list[int]
    ) -> dict[str, Any]:
        """Attribute the rows of one shard's batches, rule by rule, and sum them exactly."""
        return steps.allocate_shard(run, fetched, shard, shards)

    @task(execution_timeout=ALLOCATE_TIMEOUT)
    def allocate(
        run: dict[str, Any], fetched: list[dict[str, Any]], parts: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Merge the shards' sums; round once over all lines; spread shared pools."""
        return steps.allocate(run, fetched, parts)

    @task
    def reconcile(run: dict[str, Any], allocated: dict[str, Any]) -> dict[str, Any]:
        """Fail the run, publishing nothing, unless the lines add up to the org total."""
        return steps.reconcile(run, allocated)

    @task(execution_timeout=VERIFY_TIMEOUT)
    def verify(
        run: dict[str, Any], allocated: dict[str, Any], reconciled: dict[str, Any]
    ) -> dict[str, Any]:
        """Recount from call records (verify_calls); beyond tolerance, stop before publishing."""
        return steps.verify(get_current_context(), run, allocated, reconciled)

    @task(outlets=[STATEMENTS])
    def publish(run: dict[str, Any], reconciled: dict[str, Any]) -> dict[str, Any]:
        """Publish a draft (a final month: unchanged, or its differences carried onwards)."""
        return steps.publish(run, reconciled)

    @task
    def tidy_runs(run: dict[str, Any]) -> dict[str, Any]:
        """Remove run work folders older than retention.runs_days (never a published or busy one)."""
        return housekeeping.tidy_runs(run)

    @task
    def finalize(run: dict[str, Any], approval: dict[str, Any]) -> dict[str, Any]:
        """Make the approved draft final: locked, numbered, tied to its invoice."""
        return steps.finalize(run, approval)

    # Also after a skipped finalize (rejected, nothing to review): it then mails a final
    # month's new recipients only, or a draft only with deliver_drafts, else skips.
    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def deliver(run: dict[str, Any]) -> dict[str, Any]:
        """Mail owners their workbook and finance the full set; never twice unless redeliver."""
        return steps.deliver(get_current_context(), run)

    run = plan()
    settled >> run
    batch_numbers = batches(run)
    fetched = fetch.partial(run=run).expand(batch=batch_numbers)
    shard_numbers = shards(fetched)
    parts = allocate_shard.partial(run=run, fetched=fetched, shards=shard_numbers).expand(
        shard=shard_numbers
    )
    allocated = allocate(run, fetched, parts)
    published = publish(run, verify(run, allocated, reconcile(run, allocated)))
    published >> tidy_runs(run)
    review = StatementReview(task_id="review", run=run, published=published)
    finalize(run, review.output) >> deliver(run)


vapi_chargeback_monthly()
