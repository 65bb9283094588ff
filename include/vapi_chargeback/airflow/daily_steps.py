"""The daily DAG's task bodies: Airflow's context in, one ``budgets.run`` step, a small dict out.

As ``steps`` for the monthly DAG: each task of ``vapi_chargeback_daily`` is one line calling
a function here, every function goes through the same :func:`~.steps.failure_policy`, and
heavy modules are imported inside the functions, at run time only.

The run's *day* is the ``day`` param, else the day of the run's data interval (a UTC day,
``daily_timetable``); the figures cover the month's org-local days before it. A run day
taken from the interval that has not begun in the org zone yet (a manual run in the
evening in a zone behind UTC) is taken as the org's today; a ``day`` param after it is
refused, as a day that has not ended cannot be counted.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from vapi_chargeback.airflow.settlement import RescheduleSensor
from vapi_chargeback.airflow.steps import failure_policy

# The daily fetch is the monthly step itself: an ``MtdRun`` is a ``RunInfo``, and a batch
# is sent and kept the same way whichever DAG planned it.
from vapi_chargeback.airflow.steps import fetch as fetch

log = logging.getLogger(__name__)

POKE_INTERVAL = timedelta(minutes=5)
MAX_WAIT = timedelta(hours=48)
"""A day's run is created as the day begins in UTC+14; 23:59 of that day in UTC−12 is 36 h
later (``daily_timetable``). Beyond that something is wrong: fail and say so."""


def run_day(context: Any) -> tuple[date, bool]:
    """The run's day, and whether it was asked for explicitly (the ``day`` param)."""
    asked = context["params"].get("day")
    if asked:
        return date.fromisoformat(asked), True
    start = context.get("data_interval_start") or context["logical_date"]
    return start.astimezone(UTC).date(), False


@failure_policy
def run_is_due(context: Any, project_dir: Path, *, now: datetime | None = None) -> bool:
    """True once it is ``daily.time`` on the run's day in the org zone; at once for a
    manual run. The config is read on every check, never when the DAG is parsed."""
    if context["dag_run"].run_type == "manual":
        return True
    from zoneinfo import ZoneInfo

    from vapi_chargeback.airflow.settings import config_file
    from vapi_chargeback.config import load_config

    config = load_config(config_file(project_dir))
    day, _ = run_day(context)
    due = datetime.combine(day, config.daily.local_time, tzinfo=ZoneInfo(config.timezone))
    now = now or datetime.now(UTC)
    if now < due:
        log.info(
            "the run of %s is due at %s (daily.time, org zone); checking again in %s",
            day,
            due.isoformat(),
            POKE_INTERVAL,
        )
    return now >= due


class DailyDueSensor(RescheduleSensor):
    """Succeeds at ``daily.time`` of the run's day in the org zone."""

    default_poke_interval = POKE_INTERVAL
    default_timeout = MAX_WAIT

    def poke(self, context: Any) -> bool:
        return run_is_due(context, self.project_dir)


@failure_policy
def plan(context: Any, project_dir: Path) -> dict[str, Any]:
    """Validate config and mapping, cut the month at the run day, compile the queries."""
    from airflow.sdk import Variable

    from vapi_chargeback.airflow.hook import VapiAnalyticsHook
    from vapi_chargeback.airflow.settings import OUTPUT_VARIABLE, config_file, storage_path
    from vapi_chargeback.budgets.run import MtdSettings, plan_mtd

    hook = VapiAnalyticsHook()
    day, explicit = run_day(context)
    settings = MtdSettings(
        config_path=str(config_file(project_dir)),
        output_url=Variable.get(OUTPUT_VARIABLE, default=None),
        default_output_url=(project_dir / "output").as_uri(),
        run_day=day,
        clamp_to_today=not explicit,
        run_id=context["run_id"],
        max_queries_per_request=hook.max_queries_per_request(),
        api_base_url=hook.base_url(),
    )
    return plan_mtd(settings, open_path=storage_path).model_dump(mode="json")


@failure_policy
def allocate(run: dict[str, Any], fetched: list[dict[str, Any]]) -> dict[str, Any]:
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.budgets.run import MtdRun, allocate_mtd

    return allocate_mtd(MtdRun.model_validate(run), fetched, open_path=storage_path)


@failure_policy
def publish(run: dict[str, Any], allocated: dict[str, Any]) -> dict[str, Any]:
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.budgets.run import MtdRun, publish_mtd

    return publish_mtd(MtdRun.model_validate(run), allocated, open_path=storage_path)
