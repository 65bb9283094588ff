"""The statement-month timetable: which month a run covers, when it starts, its logical date."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.backfill import _get_info_list
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.serialization.definitions.dag import SerializedDAG
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.utils.types import DagRunType

from vapi_chargeback.airflow.timetable import StatementMonthTimetable

UTC = pendulum.UTC
DAGS = Path(__file__).resolve().parents[3] / "dags"
DAG_ID = "vapi_chargeback_monthly"


def utc(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz=UTC)


@pytest.fixture(scope="module")
def scheduler_dag() -> SerializedDAG:
    """The real DAG as the scheduler and ``backfill create`` see it: serialized and back."""
    dag = DagBag(dag_folder=str(DAGS)).dags[DAG_ID]
    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


def automated_runs(restriction: TimeRestriction) -> list[DagRunInfo]:
    timetable, infos = StatementMonthTimetable(), []
    last: DataInterval | None = None
    while info := timetable.next_dagrun_info(
        last_automated_data_interval=last, restriction=restriction
    ):
        infos.append(info)
        last = info.data_interval
    return infos


@pytest.mark.parametrize(
    ("run_after", "expected_start"),
    [
        pytest.param(utc(2026, 11, 1), utc(2026, 10, 1), id="dags-test-on-the-first"),
        pytest.param(utc(2026, 11, 28, 15, 30), utc(2026, 10, 1), id="manual-mid-november"),
        pytest.param(utc(2026, 11, 30, 23, 59, 59), utc(2026, 10, 1), id="last-second-of-november"),
        pytest.param(utc(2027, 1, 10), utc(2026, 12, 1), id="across-new-year"),
        pytest.param(utc(2026, 3, 31, 1), utc(2026, 2, 1), id="after-february"),
    ],
)
def test_manual_run_covers_the_last_complete_month(
    run_after: pendulum.DateTime, expected_start: pendulum.DateTime
) -> None:
    interval = StatementMonthTimetable().infer_manual_data_interval(run_after=run_after)
    assert interval.start == expected_start
    assert interval.end == expected_start.add(months=1)


def test_scheduled_run_starts_when_the_month_is_over_everywhere() -> None:
    info = StatementMonthTimetable().next_dagrun_info(
        last_automated_data_interval=DataInterval(utc(2026, 9, 1), utc(2026, 10, 1)),
        restriction=TimeRestriction(utc(2025, 1, 1), None, catchup=True),
    )
    assert info is not None
    assert info.data_interval == DataInterval(utc(2026, 10, 1), utc(2026, 11, 1))
    # October ends last in UTC-12, at 1 November 12:00 UTC; settlement is the sensor's job.
    assert info.run_after == utc(2026, 11, 1, 12)
    assert info.logical_date == utc(2026, 11, 1, 12)


def test_no_automated_logical_date_is_midnight_on_a_first() -> None:
    """Twenty years of months: every logical date is its month's due moment, 12:00 on the 1st.

    Manual runs are given dates (``dags test DAG 2026-11-01`` is 00:00 on the 1st), so a
    scheduled run at the month's start would be taken by the manual run of the month before.
    """
    infos = automated_runs(TimeRestriction(utc(2020, 1, 1), utc(2039, 12, 31), catchup=True))
    assert len(infos) == 240
    for info in infos:
        assert info.data_interval is not None and info.logical_date is not None
        assert info.logical_date == info.data_interval.end.add(hours=12) == info.run_after
        assert (info.logical_date.day, info.logical_date.hour) == (1, 12)
    assert len({info.logical_date for info in infos}) == len(infos)


def test_the_month_after_a_manual_run_gets_its_own_logical_date(
    scheduler_dag: SerializedDAG,
) -> None:
    """What the scheduler does: a manual run of October (logical date 2026-11-01, as
    ``dags test`` gives it) exists; November's scheduled run must not look like it."""
    manual = DagRun(
        dag_id=DAG_ID,
        run_id="manual__2026-11-01T00:00:00+00:00",
        run_type=DagRunType.MANUAL,
        logical_date=utc(2026, 11, 1),
        run_after=utc(2026, 11, 1),
        data_interval=scheduler_dag.timetable.infer_manual_data_interval(
            run_after=utc(2026, 11, 1)
        ),
    )
    dag_model = DagModel(dag_id=DAG_ID)
    # The scheduler's path when a run exists at next_dagrun: recompute from that run.
    dag_model.calculate_dagrun_date_fields(dag=scheduler_dag, reference_run=manual)
    assert dag_model.next_dagrun_data_interval == DataInterval(utc(2026, 11, 1), utc(2026, 12, 1))
    assert dag_model.next_dagrun != manual.logical_date
    assert dag_model.next_dagrun == dag_model.next_dagrun_create_after == utc(2026, 12, 1, 12)
    # …and the run it then creates carries the logical date it looked up.
    info = scheduler_dag.timetable.next_run_info_from_dag_model(dag_model=dag_model)
    assert info is not None
    assert info.logical_date == dag_model.next_dagrun
    assert info.data_interval == dag_model.next_dagrun_data_interval


def test_backfill_create_produces_each_month_once_inclusive_of_to_date(
    scheduler_dag: SerializedDAG,
) -> None:
    """``backfill create --from-date 2026-01-01 --to-date 2026-06-30``, as it lists its runs."""
    infos = _get_info_list(
        from_date=utc(2026, 1, 1), to_date=utc(2026, 6, 30), reverse=False, dag=scheduler_dag
    )
    months = [info.data_interval.start.month for info in infos if info.data_interval]
    assert months == [1, 2, 3, 4, 5, 6]
    assert [info.logical_date for info in infos] == [utc(2026, m, 1, 12) for m in range(2, 8)]


def test_first_run_starts_at_the_first_whole_month_after_start_date() -> None:
    info = StatementMonthTimetable().next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(utc(2026, 1, 15), utc(2026, 3, 31), catchup=True),
    )
    assert info is not None and info.data_interval is not None
    assert info.data_interval.start == utc(2026, 2, 1)


def latest_due_month_start() -> pendulum.DateTime:
    """Start of the latest month that has ended in UTC-12, computed here independently."""
    now = pendulum.now(UTC)
    latest_due = now.start_of("month").subtract(months=1)
    if now < now.start_of("month").add(hours=12):
        latest_due = latest_due.subtract(months=1)
    return latest_due


def test_without_catchup_the_first_run_is_the_latest_due_month() -> None:
    info = StatementMonthTimetable().next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(utc(2020, 1, 1), None, catchup=False),
    )
    assert info is not None and info.data_interval is not None
    assert info.data_interval.start == latest_due_month_start()


def test_without_catchup_a_backfill_of_old_months_does_not_start_a_catch_up() -> None:
    """After ``backfill create`` of 2020 the next scheduled month is the latest due one."""
    info = StatementMonthTimetable().next_dagrun_info(
        last_automated_data_interval=DataInterval(utc(2020, 6, 1), utc(2020, 7, 1)),
        restriction=TimeRestriction(utc(2020, 1, 1), None, catchup=False),
    )
    assert info is not None and info.data_interval is not None
    assert info.data_interval.start == latest_due_month_start()


def test_no_start_date_never_schedules_and_end_date_stops() -> None:
    timetable = StatementMonthTimetable()
    assert (
        timetable.next_dagrun_info(
            last_automated_data_interval=None, restriction=TimeRestriction(None, None, True)
        )
        is None
    )
    assert (
        timetable.next_dagrun_info(
            last_automated_data_interval=DataInterval(utc(2026, 5, 1), utc(2026, 6, 1)),
            restriction=TimeRestriction(utc(2026, 1, 1), utc(2026, 5, 31), True),
        )
        is None
    )


def test_a_dag_serialized_with_the_old_settlement_delay_still_loads() -> None:
    """Serialized DAGs in the database may still carry it until the DAG is parsed again."""
    timetable = StatementMonthTimetable.deserialize({"settlement_delay": 21600.0})
    assert isinstance(timetable, StatementMonthTimetable)
    assert StatementMonthTimetable.deserialize(timetable.serialize()).summary == timetable.summary
