"""Every DAG file imports cleanly, fast, and the chargeback DAG keeps its contract."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import BaseSensorOperator

from vapi_chargeback.airflow.timetable import StatementMonthTimetable
from vapi_chargeback.config import ChargebackConfig

ROOT = Path(__file__).resolve().parents[3]
DAGS = ROOT / "dags"
DAG_ID = "vapi_chargeback_monthly"
PARSE_BUDGET_S = 0.3


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}, "\n".join(
        f"{path}: {error}" for path, error in dagbag.import_errors.items()
    )


def test_chargeback_dag_contract(dagbag: DagBag) -> None:
    dag = dagbag.dags.get(DAG_ID)
    assert dag is not None, f"{DAG_ID} not found in {DAGS}"
    assert isinstance(dag.timetable, StatementMonthTimetable)
    assert dag.catchup is False
    assert {"month", "restate", "reason"} <= set(dag.params)
    assert {task.task_id for task in dag.tasks} == {
        "settled",
        "plan",
        "batches",
        "fetch",
        "shards",
        "allocate_shard",
        "allocate",
        "reconcile",
        "verify",
        "publish",
        "tidy_runs",
        "review",
        "finalize",
        "deliver",
    }
    assert dag.get_task("publish").outlets, "publish must emit the statements Asset"
    for task in dag.tasks:
        assert task.retries >= 1, f"task {task.task_id} has no retries"


def test_verification_stands_between_reconcile_and_publish(dagbag: DagBag) -> None:
    """``verify_calls`` defaults to the config (``None``); a failed verify leaves publish
    (and so review, finalize, deliver) unrun, because publish reads verify's result."""
    dag = dagbag.dags[DAG_ID]
    param = dag.params.get_param("verify_calls")
    assert param.value is None and param.schema["type"] == ["null", "boolean"]
    assert dag.get_task("verify").upstream_task_ids == {"plan", "allocate", "reconcile"}
    assert dag.get_task("publish").upstream_task_ids == {"plan", "verify"}
    assert dag.get_task("publish").trigger_rule == "all_success"


def test_every_run_passes_the_settlement_sensor_first(dagbag: DagBag) -> None:
    """``settled`` waits without holding a worker, and longer than any delay the config allows."""
    dag = dagbag.dags[DAG_ID]
    settled = dag.get_task("settled")
    assert isinstance(settled, BaseSensorOperator)
    assert settled.mode == "reschedule"
    assert dag.get_task("plan").upstream_task_ids == {"settled"}
    longest_delay = next(
        rule.le
        for rule in ChargebackConfig.model_fields["settlement_delay_hours"].metadata
        if hasattr(rule, "le")
    )
    assert timedelta(seconds=settled.timeout) >= timedelta(hours=longest_delay)


def test_parsing_the_dag_reads_no_config_or_mapping_file() -> None:
    """The settlement delay lives in chargeback.yaml and is read at run time only."""
    probe = textwrap.dedent(
        f"""
        import runpy, sys
        import airflow.sdk
        opened = []
        sys.addaudithook(
            lambda event, args: event == "open" and opened.append(str(args[0]))
        )
        runpy.run_path({str(DAGS / "vapi_chargeback_monthly.py")!r})
        print(",".join(p for p in opened if p.endswith((".yaml", ".yml", ".csv"))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "", f"parse-time reads: {out.stdout.strip()}"


@pytest.mark.parametrize("dag_file", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_parse_time_is_within_budget(dag_file: Path) -> None:
    """The dag-processor re-parses DAG files all day: heavy imports belong inside tasks."""
    probe = textwrap.dedent(
        f"""
        import runpy, time
        import airflow.sdk  # the processor has Airflow loaded already
        best = min(
            (lambda t0: (runpy.run_path({str(dag_file)!r}), time.perf_counter() - t0)[1])(
                time.perf_counter()
            )
            for _ in range(3)
        )
        print(best)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    seconds = float(out.stdout.strip().splitlines()[-1])
    assert seconds < PARSE_BUDGET_S, f"{dag_file.name} took {seconds:.3f}s to parse"


def test_dag_file_does_not_import_heavy_modules_at_parse_time() -> None:
    probe = textwrap.dedent(
        f"""
        import runpy, sys
        import airflow.sdk
        before = set(sys.modules)
        runpy.run_path({str(DAGS / "vapi_chargeback_monthly.py")!r})
        added = set(sys.modules) - before
        heavy = ("pandas", "openpyxl", "duckdb", "httpx", "vapi_chargeback.pipeline")
        print(",".join(sorted(m for m in added if m.split(".")[0] in heavy or m in heavy)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "", f"parse-time imports: {out.stdout.strip()}"


def test_dag_files_are_named_after_their_dag_ids(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id, f"{dag.fileloc} defines {dag_id}"


def test_the_package_imports_with_the_dags_folder_first_on_sys_path() -> None:
    """A DAG file named like the package would shadow it for images with PYTHONPATH=dags."""
    probe = "import vapi_chargeback.airflow.timetable, vapi_chargeback.pipeline"
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(DAGS)!r}); {probe}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr


def test_allocate_is_mapped_over_shards_and_merged_once(dagbag: DagBag) -> None:
    """Issue 16: ``allocate_shard`` is mapped over the shards, each reading its own fetched
    batches (no task cuts them first); ``allocate`` (the merge) reads every shard's result;
    the count is a param."""
    dag = dagbag.dags[DAG_ID]
    param = dag.params.get_param("allocate_shards")
    assert param.value is None and param.schema["type"] == ["null", "integer"]
    assert (param.schema["minimum"], param.schema["maximum"]) == (1, 256)
    shard, merge = (dag.get_task(t) for t in ("allocate_shard", "allocate"))
    assert (shard.is_mapped, merge.is_mapped) == (True, False)
    assert dag.get_task("shards").upstream_task_ids == {"fetch"}
    assert shard.upstream_task_ids == {"plan", "fetch", "shards"}
    assert merge.upstream_task_ids == {"plan", "fetch", "allocate_shard"}
    assert dag.get_task("reconcile").upstream_task_ids == {"plan", "allocate"}
