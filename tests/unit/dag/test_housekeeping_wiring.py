"""Both DAGs tidy ``_runs/`` after publishing and mail a task's final failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from vapi_chargeback.airflow.failure_alerts import FailureAlert

DAGS = Path(__file__).resolve().parents[3] / "dags"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


@pytest.mark.parametrize("dag_id", ["vapi_chargeback_monthly", "vapi_chargeback_daily"])
def test_run_folders_are_tidied_after_publishing_and_every_failure_is_mailed(
    dagbag: DagBag, dag_id: str
) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.get_task("tidy_runs").upstream_task_ids == {"plan", "publish"}
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert any(isinstance(callback, FailureAlert) for callback in callbacks), task.task_id
