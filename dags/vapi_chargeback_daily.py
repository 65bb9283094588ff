"""Month to date per cost center against its budget, every day, from the Vapi Analytics API.

Wiring only: every task body is one call into ``vapi_chargeback.airflow.daily_steps``, with
the monthly DAG's error policy (a permanent error fails its task at once, anything else is
retried). The run of day D covers the org-local days of D's month before D (on the 1st,
the whole previous month) through the monthly DAG's own plan → fetch → allocate →
reconcile code, fixed shared pools prorated by elapsed days, and publishes
``{output}/_mtd/{YYYY-MM}/mtd-{D-1}.json`` and ``.csv`` with each cost center's spend,
budget, % used, forecast and thresholds crossed.

Schedule: ``due`` waits until ``daily.time`` in ``org.timezone`` (chargeback.yaml, read at
run time) on the run's day; manual runs start at once. ``airflow dags test
vapi_chargeback_daily 2026-11-13`` is the run of 13 November (figures through the 12th);
the ``day`` param names any other day.

``alerts`` then mails each budget threshold crossed for the first time this month
(``budgets.alerts``: once per cost center, month and threshold, ledger ``_alerts/``).
Downstream tasks read the publish task's result (``report_url``, ``through_day``, and per
cost center ``thresholds_crossed`` and ``forecast_alert``), or the JSON it names through
``budgets.outputs.read_mtd``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from vapi_chargeback.airflow import alerts as budget_alerts
from vapi_chargeback.airflow import daily_steps, housekeeping
from vapi_chargeback.airflow.daily_steps import DailyDueSensor
from vapi_chargeback.airflow.daily_timetable import DailyTimetable
from vapi_chargeback.airflow.failure_alerts import FailureAlert

PROJECT_DIR = Path(__file__).resolve().parent.parent

RETRY_DELAY = timedelta(seconds=float(os.environ.get("VAPI_CHARGEBACK_RETRY_DELAY_SECONDS", "60")))
"""First pause before a retry (set here for the reason the monthly DAG gives)."""
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
PLAN_TIMEOUT = timedelta(minutes=10)
ALLOCATE_TIMEOUT = timedelta(minutes=60)


@dag(
    dag_id="vapi_chargeback_daily",
    schedule=DailyTimetable(),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    # One run at a time: on object storage no lock keeps two alerts steps of a month apart.
    max_active_runs=1,
    default_args=TASK_DEFAULTS,
    params={
        "day": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            description=(
                "Run day YYYY-MM-DD: the figures cover the month's days before it (on the"
                " 1st, the whole previous month); empty = the day of the run."
            ),
        ),
    },
    tags=["vapi", "finance", "chargeback", "budgets"],
    doc_md=__doc__,
)
def vapi_chargeback_daily() -> None:
    # Scheduled runs wait here for daily.time in the org zone; manual ones do not.
    due = DailyDueSensor(task_id="due", project_dir=PROJECT_DIR)

    @task(execution_timeout=PLAN_TIMEOUT)
    def plan() -> dict[str, Any]:
        """Validate config and mapping, cut the month at the run day, compile the queries."""
        return daily_steps.plan(get_current_context(), PROJECT_DIR)

    @task(execution_timeout=PLAN_TIMEOUT)
    def batches(run: dict[str, Any]) -> list[int]:
        return list(range(run["batch_count"]))

    @task(max_active_tis_per_dagrun=4, execution_timeout=FETCH_TIMEOUT, retries=FETCH_RETRIES)
    def fetch(batch: int, run: dict[str, Any]) -> dict[str, Any]:
        """Send one request of the plan; store its raw response with its sha256."""
        return daily_steps.fetch(run, batch)

    @task(execution_timeout=ALLOCATE_TIMEOUT)
    def allocate(run: dict[str, Any], fetched: list[dict[str, Any]]) -> dict[str, Any]:
        """Allocate and reconcile the month so far; compute budgets and forecasts."""
        return daily_steps.allocate(run, fetched)

    @task
    def publish(run: dict[str, Any], allocated: dict[str, Any]) -> dict[str, Any]:
        """Write the day's month-to-date JSON and CSV under _mtd/, each whole."""
        return daily_steps.publish(run, allocated)

    @task
    def tidy_runs(run: dict[str, Any]) -> dict[str, Any]:
        """Remove run work folders older than retention.runs_days (never a published or busy one)."""
        return housekeeping.tidy_runs(run)

    @task
    def alerts(run: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
        """Mail owners (finance copied) each budget threshold crossed for the first time this
        month, once; skipped without budgets or without the SMTP connection."""
        return budget_alerts.alerts(run, published)

    run = plan()
    due >> run
    fetched = fetch.partial(run=run).expand(batch=batches(run))
    published = publish(run, allocate(run, fetched))
    alerts(run, published)
    published >> tidy_runs(run)


vapi_chargeback_daily()
