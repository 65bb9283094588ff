"""``vapi-chargeback airflow …`` in a fresh shell: the "Against the real Vapi API" commands.

A shell without the Makefile's variables gets "Database migration required" from
``airflow dags test``; the passthrough sets them, migrates once, and runs the DAG. Each
test starts from an environment holding only what a new user's shell has (PATH, HOME),
with an Airflow home of its own so the project's ``.airflow`` is left alone.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from vapi_chargeback import localrun
from vapi_chargeback.cli.airflow_env import MIGRATED_MARK, airflow_version
from vapi_chargeback.published import read_published

CLI = localrun.BIN / "vapi-chargeback"
MONTH = "2026-10"

pytestmark = pytest.mark.slow


def fresh_shell(**extra: str) -> dict[str, str]:
    """A new user's shell: no AIRFLOW_* variable, nothing else the Makefile exports. A
    PYTHONPATH the tests run under is kept, so the checkout under test is the one imported
    (under make it is that checkout's include/, which the passthrough puts first anyway)."""
    shell = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    if "PYTHONPATH" in os.environ:
        shell["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {**shell, **extra}


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False, cwd="/"
    )


def test_a_fresh_shell_needs_the_environment_and_the_passthrough_gives_it(tmp_path: Path) -> None:
    bare = run(
        [str(localrun.BIN / "airflow"), "dags", "list"],
        fresh_shell(AIRFLOW_HOME=str(tmp_path / "bare")),
    )
    home = tmp_path / "home"

    first = run(
        [
            str(CLI),
            "airflow",
            "--airflow-home",
            str(home),
            "dags",
            "list",
            "--local",
            "-o",
            "plain",
        ],
        fresh_shell(),
    )
    second = run(
        [
            str(CLI),
            "airflow",
            "--airflow-home",
            str(home),
            "dags",
            "list",
            "--local",
            "-o",
            "plain",
        ],
        fresh_shell(),
    )

    assert bare.returncode != 0
    assert "Database migration required" in bare.stdout + bare.stderr
    assert first.returncode == 0, first.stdout + first.stderr
    assert "migrating the Airflow database" in first.stderr
    assert (home / MIGRATED_MARK).read_text(encoding="utf-8").strip() == airflow_version()
    assert (home / "db-migrate.log").is_file()
    for done in (first, second):
        assert localrun.DAG_ID in done.stdout and localrun.DAILY_DAG_ID in done.stdout
        assert "example_" not in done.stdout, "examples are off, as in the Makefile"
    assert second.returncode == 0
    assert "migrating" not in second.stderr, "migrated once, not on every call"


def test_the_real_api_commands_run_the_dag_from_a_fresh_shell(tmp_path: Path) -> None:
    """The documented commands, with the emulator standing in for api.vapi.ai."""
    calls = localrun.generate_calls(tmp_path / "calls.parquet", month=MONTH, calls_per_month=1500)
    key = secrets.token_urlsafe(16)
    output = tmp_path / "out"
    with localrun.serve_emulator([calls], key, log=tmp_path / "emulator.log") as url:
        done = run(
            [
                str(CLI), "airflow", "--airflow-home", str(tmp_path / "home"),
                "dags", "test", localrun.DAG_ID, "2026-11-01",
            ],
            fresh_shell(
                AIRFLOW_CONN_VAPI_DEFAULT=(
                    f'{{"conn_type": "vapi", "host": "{url}", "password": "{key}"}}'
                ),
                AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT=output.as_uri(),
            ),
        )  # fmt: skip

    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    manifest = read_published(output, MONTH)
    assert manifest is not None, "October is published and verifies against its manifest"
    assert manifest["period"] == MONTH
