"""Monthly chargeback statements per cost center from the Vapi Analytics API.

Wiring only: every step is a function of ``vapi_chargeback.pipeline`` and imported inside
its task, so parsing this file stays cheap. Tasks hand each other small dicts (period,
paths, hashes); raw API responses and the statement travel through the run's work folder
in the output storage, never through XCom.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task

from vapi_chargeback.airflow.settlement import SettlementSensor
from vapi_chargeback.airflow.timetable import StatementMonthTimetable

PROJECT_DIR = Path(__file__).resolve().parent.parent
STATEMENTS = Asset("vapi_chargeback_statements", uri="file://vapi-chargeback/statements")

TASK_DEFAULTS: dict[str, Any] = {
    "owner": "finance-platform",
    "retries": 3,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


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
    },
    tags=["vapi", "finance", "chargeback"],
    doc_md=__doc__,
)
def vapi_chargeback_monthly() -> None:
    # Scheduled runs wait here for settlement_delay_hours (chargeback.yaml); manual ones do not.
    settled = SettlementSensor(task_id="settled", project_dir=PROJECT_DIR)

    @task
    def plan() -> dict[str, Any]:
        """Validate config and mapping, fix the statement month, compile the queries."""
        from vapi_chargeback.airflow.settings import run_settings, storage_path
        from vapi_chargeback.pipeline import plan_run

        settings = run_settings(get_current_context(), PROJECT_DIR)
        return plan_run(settings, open_path=storage_path).model_dump(mode="json")

    @task
    def batches(run: dict[str, Any]) -> list[int]:
        return list(range(run["batch_count"]))

    @task(max_active_tis_per_dagrun=4)
    def fetch(batch: int, run: dict[str, Any]) -> dict[str, Any]:
        """Send one request of the plan; store its raw response with its sha256."""
        from vapi_chargeback.airflow.hook import VapiAnalyticsHook
        from vapi_chargeback.airflow.settings import storage_path
        from vapi_chargeback.pipeline import RunInfo, fetch_batch

        info = RunInfo.model_validate(run)
        with VapiAnalyticsHook().get_conn() as client:
            return fetch_batch(info, batch, client, open_path=storage_path).model_dump(mode="json")

    @task
    def allocate(run: dict[str, Any], fetched: list[dict[str, Any]]) -> dict[str, Any]:
        """Join grouped rows with the mapping, rule by rule; spread shared pools."""
        from vapi_chargeback.airflow.settings import storage_path
        from vapi_chargeback.pipeline import RunInfo, allocate_run

        return allocate_run(RunInfo.model_validate(run), fetched, open_path=storage_path)

    @task
    def reconcile(run: dict[str, Any], allocated: dict[str, Any]) -> dict[str, Any]:
        """Fail the run, publishing nothing, unless the lines add up to the org total."""
        from vapi_chargeback.airflow.settings import storage_path
        from vapi_chargeback.pipeline import RunInfo, reconcile_run

        return reconcile_run(RunInfo.model_validate(run), allocated, open_path=storage_path)

    @task(outlets=[STATEMENTS])
    def publish(run: dict[str, Any], reconciled: dict[str, Any]) -> dict[str, Any]:
        """Write CSV, workbooks and manifest (last), replacing the month atomically."""
        from vapi_chargeback.airflow.settings import storage_path
        from vapi_chargeback.pipeline import RunInfo, publish_run

        return publish_run(RunInfo.model_validate(run), reconciled, open_path=storage_path)

    @task
    def deliver(run: dict[str, Any]) -> dict[str, Any]:
        """Mail owners their workbook and finance the full set; never twice unless redeliver."""
        from vapi_chargeback.airflow.delivery import deliver_task

        return deliver_task(get_current_context(), run)

    run = plan()
    settled >> run
    fetched = fetch.partial(run=run).expand(batch=batches(run))
    allocated = allocate(run, fetched)
    publish(run, reconcile(run, allocated)) >> deliver(run)


vapi_chargeback_monthly()
