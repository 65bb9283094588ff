"""The daily month-to-date DAG: its contract, its timetable, and the ``due`` sensor."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import BaseSensorOperator
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import DataInterval, TimeRestriction

from vapi_chargeback.airflow import daily_steps
from vapi_chargeback.airflow.daily_timetable import DailyTimetable

ROOT = Path(__file__).resolve().parents[3]
DAGS = ROOT / "dags"
DAG_ID = "vapi_chargeback_daily"
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"


def utc(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz=pendulum.UTC)


@pytest.fixture(scope="module")
def dag():  # type: ignore[no-untyped-def]
    bag = DagBag(dag_folder=str(DAGS / "vapi_chargeback_daily.py"))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags[DAG_ID]


def test_the_daily_dag_is_plan_fetch_allocate_publish_after_the_due_sensor(dag) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(dag.timetable, DailyTimetable)
    assert dag.catchup is False
    assert dag.max_active_runs == 1, "alerts on object storage rely on one run at a time"
    assert set(dag.params) == {"day"}
    assert {task.task_id for task in dag.tasks} == {
        "due",
        "plan",
        "batches",
        "fetch",
        "allocate",
        "publish",
        "alerts",
        "tidy_runs",
    }
    due = dag.get_task("due")
    assert isinstance(due, BaseSensorOperator) and due.mode == "reschedule"
    assert dag.get_task("plan").upstream_task_ids == {"due"}
    assert dag.get_task("allocate").upstream_task_ids == {"plan", "fetch"}
    assert dag.get_task("publish").upstream_task_ids == {"plan", "allocate"}
    assert dag.get_task("alerts").upstream_task_ids == {"plan", "publish"}
    for task in dag.tasks:
        assert task.retries >= 1, f"task {task.task_id} has no retries"


def test_the_dag_survives_serialization_with_its_timetable(dag) -> None:  # type: ignore[no-untyped-def]
    # The scheduler only sees the serialized DAG; the plugin registers the timetable.
    restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert isinstance(restored.timetable, DailyTimetable)


def test_parsing_reads_no_config_and_imports_no_pipeline() -> None:
    probe = textwrap.dedent(
        f"""
        import runpy, sys
        import airflow.sdk
        opened = []
        sys.addaudithook(
            lambda event, args: event == "open" and opened.append(str(args[0]))
        )
        before = set(sys.modules)
        runpy.run_path({str(DAGS / "vapi_chargeback_daily.py")!r})
        added = set(sys.modules) - before
        heavy = ("pandas", "duckdb", "httpx", "vapi_chargeback.pipeline", "vapi_chargeback.budgets")
        print(",".join(p for p in opened if p.endswith((".yaml", ".yml", ".csv"))))
        print(",".join(sorted(m for m in added if m.split(".")[0] in heavy or m.startswith(heavy))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.splitlines() == ["", ""], out.stdout


def test_a_manual_run_is_the_run_of_its_utc_day() -> None:
    interval = DailyTimetable().infer_manual_data_interval(run_after=utc(2026, 11, 13, 15, 30))
    assert interval == DataInterval(utc(2026, 11, 13), utc(2026, 11, 14))


def test_each_day_is_created_as_it_begins_in_utc_plus_14_with_a_logical_date_of_its_own() -> None:
    timetable = DailyTimetable()
    restriction = TimeRestriction(earliest=utc(2026, 11, 1), latest=None, catchup=True)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert first is not None and first.data_interval is not None
    assert first.data_interval == DataInterval(utc(2026, 11, 1), utc(2026, 11, 2))
    assert first.run_after == utc(2026, 10, 31, 10)
    # Never 00:00 UTC, the logical date of a manual run (`dags test DAG 2026-11-01`).
    assert first.logical_date == utc(2026, 10, 31, 10)
    second = timetable.next_dagrun_info(
        last_automated_data_interval=first.data_interval, restriction=restriction
    )
    assert second is not None
    assert second.data_interval == DataInterval(utc(2026, 11, 2), utc(2026, 11, 3))
    late = TimeRestriction(earliest=utc(2026, 11, 1, 6), latest=utc(2026, 11, 1, 23), catchup=True)
    assert timetable.next_dagrun_info(last_automated_data_interval=None, restriction=late) is None


def test_without_catchup_the_first_run_is_the_latest_day_that_has_begun() -> None:
    timetable = DailyTimetable()
    restriction = TimeRestriction(earliest=utc(2025, 1, 1), latest=None, catchup=False)
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert info is not None and info.data_interval is not None
    assert info.run_after <= pendulum.now("UTC") < info.run_after + pendulum.duration(days=1)


def _context(run_type: str, *, day: str | None = None, start: datetime | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "dag_run": SimpleNamespace(run_type=run_type),
        "params": {"day": day},
        "data_interval_start": start,
        "logical_date": start,
    }


def test_the_run_day_is_the_param_or_the_interval_day() -> None:
    assert daily_steps.run_day(_context("manual", day="2026-11-13")) == (date(2026, 11, 13), True)
    start = datetime(2026, 11, 13, tzinfo=UTC)
    assert daily_steps.run_day(_context("scheduled", start=start)) == (date(2026, 11, 13), False)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (datetime(2026, 11, 13, 5, 59, tzinfo=UTC), False),  # 06:59 in Berlin
        (datetime(2026, 11, 13, 6, 0, tzinfo=UTC), True),  # 07:00 in Berlin (UTC+1)
        (datetime(2026, 11, 12, 22, 0, tzinfo=UTC), False),  # day begun, not 07:00 yet
    ],
    ids=["a-minute-early", "on-time", "day-begun"],
)
def test_a_scheduled_run_waits_for_daily_time_in_the_org_zone(
    monkeypatch: pytest.MonkeyPatch, now: datetime, due: bool
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG", str(CONFIG))
    context = _context("scheduled", start=datetime(2026, 11, 13, tzinfo=UTC))
    assert daily_steps.run_is_due(context, ROOT, now=now) is due
    assert daily_steps.run_is_due(_context("manual"), ROOT, now=now) is True
