"""Run the real DAG locally with ``airflow dags test`` against a Vapi API of your choice.

Shared by ``make demo`` and the end-to-end tests, so that what the tests prove is what the
demo does: same environment, same command, same DAG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

DAG_ID = "vapi_chargeback_monthly"
BIN = Path(sys.executable).parent


def airflow_env(
    *,
    project_dir: Path,
    airflow_home: Path,
    api_base_url: str,
    api_key: str,
    output_url: str,
    config_path: Path | None = None,
) -> dict[str, str]:
    """Environment for an Airflow that lives in the project, with ``vapi_default`` set.

    The connection and Variables come from ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` so nothing
    is written to the metadata database and a run leaves no secret behind.
    """
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(project_dir / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(project_dir / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW_CONN_VAPI_DEFAULT": json.dumps(
                {"conn_type": "vapi", "host": api_base_url, "password": api_key}
            ),
            "AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT": output_url,
        }
    )
    if config_path is not None:
        env["AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG"] = str(config_path)
    return env


def migrate(env: dict[str, str]) -> None:
    """Create or upgrade the SQLite metadata database (idempotent)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    _airflow(["db", "migrate"], env, log_name="db-migrate.log")


def dags_test(logical_date: date, env: dict[str, str], *, log_name: str) -> Path:
    """Run the DAG for ``logical_date`` — the month before it — and return the log file."""
    return _airflow(["dags", "test", DAG_ID, logical_date.isoformat()], env, log_name=log_name)


def _airflow(args: list[str], env: dict[str, str], *, log_name: str) -> Path:
    log = Path(env["AIRFLOW_HOME"]) / log_name
    with log.open("wb") as sink:
        completed = subprocess.run(
            [str(BIN / "airflow"), *args], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    if completed.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        raise RuntimeError(
            f"`airflow {' '.join(args)}` failed (exit {completed.returncode}); "
            f"full log: {log}\n" + "\n".join(tail)
        )
    return log
