"""The monthly DAG's ``tidy_runs`` under ``airflow dags test``: an abandoned run folder older
than ``retention.runs_days`` is removed after publishing; the run's own (published) folder
and a recent one stay.

The sweeper's rules and races are tested in ``tests/integration/test_run_retention.py``;
this proves the DAG applies them, with the config's setting, to the output it wrote.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from vapi_chargeback import localrun
from vapi_chargeback.storage import read_published

from support.statement_checks import CONFIG, ROOT

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

MONTH = "2026-10"


def aged_folder(folder: Path, days: float) -> None:
    (folder / "raw").mkdir(parents=True)
    (folder / "plan.json").write_text("{}")
    (folder / "raw" / "batch-0000.json").write_text("[]")
    moment = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    for path in (folder / "raw" / "batch-0000.json", folder / "plan.json", folder / "raw", folder):
        os.utime(path, (moment, moment))


def test_the_dag_removes_old_run_folders_and_keeps_the_published_and_recent_ones(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"
    abandoned = output / "_runs" / "2026-09" / "manual__abandoned"
    recent = output / "_runs" / "2026-09" / "manual__last_week"
    aged_folder(abandoned, days=31)
    aged_folder(recent, days=7)
    calls = localrun.generate_calls(
        tmp_path / "calls.parquet", month=MONTH, months=1, calls_per_month=500
    )
    key = secrets.token_urlsafe(16)
    home = tmp_path / "home"
    with localrun.serve_emulator([calls], key, log=tmp_path / "emulator.log") as api_url:
        env = localrun.airflow_env(
            project_dir=ROOT,
            airflow_home=home,
            api_base_url=api_url,
            api_key=key,
            output_url=output.as_uri(),
            config_path=CONFIG,
        )
        localrun.migrate(env)
        localrun.dags_test(
            date(2026, 11, 1),
            env,
            log_name="dags-test.log",
            extra_args=["--conf", json.dumps({"deliver": False})],
        )

    manifest = read_published(output, MONTH)
    assert manifest is not None
    with sqlite3.connect(home / "airflow.db") as db:
        (value,) = db.execute(
            "SELECT value FROM xcom WHERE task_id = 'tidy_runs' AND key = 'return_value'"
        ).fetchone()
    result = json.loads(value)
    assert result["keep_days"] == 30
    assert result["removed"] == ["2026-09/manual__abandoned"]
    assert not abandoned.exists()
    assert (recent / "raw" / "batch-0000.json").is_file()
    (own,) = (output / "_runs" / MONTH).iterdir()
    assert (own / "plan.json").is_file(), "the published run's own folder stays"
    assert manifest["run_id"].replace(":", "_").replace("+", "_") == own.name
