"""The real DAG: a publish task SIGKILLed mid-write, a rerun, and a search for the key everywhere.

Three ``airflow dags test`` runs of October against ``vapi-emulator serve`` on loopback,
in one Airflow home: a first run publishes; a second is stopped at the test-only pause
point ``publish:staged`` (every file and the manifest staged, nothing swapped) and its
whole process group is killed with SIGKILL; a third run completes. Afterwards every file
the runs produced or touched — output folder with ``_runs`` and raw responses, the
Airflow home (logs, the captured stdout/stderr of every command, the metadata
database), the emulator's log and the processes' temp folder — is searched for the API
key, which must occur nowhere.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import localrun
from vapi_chargeback.storage import read_published

from support.reliability import (
    DEMO_CONFIG,
    MONTH,
    ROOT,
    hidden_leftovers,
    snapshot,
    visible_entries,
)

pytestmark = pytest.mark.timeout(600)

KEY = f"sk-grep-{secrets.token_hex(16)}"
"""Made up per test session, distinctive enough that any occurrence is a leak."""
STATEMENT_DATE = date(2026, 11, 1)
PAUSE_TIMEOUT_SECONDS = 180.0


@dataclass(frozen=True)
class Runs:
    roots: list[Path]
    """Everything the runs wrote: searched for the key."""
    first: dict[str, Any]
    first_files: dict[str, str]
    after_kill: dict[str, Any] | None
    after_kill_files: dict[str, str]
    after_kill_visible: list[str]
    after_kill_hidden: list[str]
    killed_returncode: int
    after_kill_temp: list[str]
    """Render folders in the workers' temp directory after the kill."""
    rerun: dict[str, Any]
    rerun_files: dict[str, str]
    rerun_hidden: list[str]
    rerun_temp: list[str]


def render_folders(temp: Path) -> list[str]:
    return sorted(path.name for path in temp.glob("vapi-chargeback-*") if path.is_dir())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    work = tmp_path_factory.mktemp("airflow-runs")
    home, output, logs, pause, temp = (
        work / name for name in ("home", "out", "logs", "pause", "tmp")
    )
    for folder in (logs, pause, temp):
        folder.mkdir()
    calls = work / "calls.parquet"
    localrun.generate_calls(calls, month=MONTH, calls_per_month=6000)
    with localrun.serve_emulator([calls], KEY, log=logs / "emulator.log") as base_url:
        env = localrun.airflow_env(
            project_dir=ROOT,
            airflow_home=home,
            api_base_url=base_url,
            api_key=KEY,
            output_url=output.as_uri(),
            config_path=DEMO_CONFIG,
        )
        env["TMPDIR"] = str(temp)
        localrun.migrate(env)
        # Drafts throughout: the killed run and the rerun replace the first run's draft (a
        # final month would be locked, and its rerun write nothing).
        localrun.dags_test(
            STATEMENT_DATE, env, log_name="dags-test-first.log", extra_args=localrun.KEEP_DRAFT
        )
        first = read_published(output, MONTH)
        first_files = snapshot(output / MONTH)

        returncode = _kill_at_staged(env, home / "dags-test-killed.log", pause)
        after_kill = read_published(output, MONTH)
        after_kill_files = snapshot(output / MONTH)
        after_kill_visible = visible_entries(output)
        after_kill_hidden = hidden_leftovers(output)
        after_kill_temp = render_folders(temp)

        localrun.dags_test(
            STATEMENT_DATE, env, log_name="dags-test-rerun.log", extra_args=localrun.KEEP_DRAFT
        )
    rerun = read_published(output, MONTH)
    assert first is not None and rerun is not None
    return Runs(
        roots=[home, output, logs, pause, temp],
        first=first,
        first_files=first_files,
        after_kill=after_kill,
        after_kill_files=after_kill_files,
        after_kill_visible=after_kill_visible,
        after_kill_hidden=after_kill_hidden,
        killed_returncode=returncode,
        after_kill_temp=after_kill_temp,
        rerun=rerun,
        rerun_files=snapshot(output / MONTH),
        rerun_hidden=hidden_leftovers(output),
        rerun_temp=render_folders(temp),
    )


def _kill_at_staged(env: dict[str, str], log: Path, pause: Path) -> int:
    """Run the DAG until its publish task sits at ``publish:staged``, then SIGKILL it all."""
    paused_env = {
        **env,
        "VAPI_CHARGEBACK_PAUSE_AT": "publish:staged",
        "VAPI_CHARGEBACK_PAUSE_DIR": str(pause),
    }
    marker = pause / "publish-staged.paused"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(localrun.BIN / "airflow"),
                "dags",
                "test",
                localrun.DAG_ID,
                STATEMENT_DATE.isoformat(),
                *localrun.KEEP_DRAFT,
            ],
            env=paused_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + PAUSE_TIMEOUT_SECONDS
        while not marker.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the DAG never reached publish:staged; see {log}")
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=60)


@pytest.mark.slow
def test_publish_task_killed_mid_write_leaves_the_previous_set_then_a_rerun_completes(
    runs: Runs,
) -> None:
    assert runs.killed_returncode == -signal.SIGKILL
    assert runs.after_kill == runs.first, "readers still get the first run's complete set"
    assert runs.after_kill_files == runs.first_files
    assert runs.after_kill_visible == sorted([MONTH, "_audit", "_runs"])
    assert runs.after_kill_hidden and all(
        name.startswith(".staging-") for name in runs.after_kill_hidden
    ), "the killed run's staged set is left only as a hidden dot-entry"

    assert runs.rerun["run_id"] != runs.first["run_id"]
    assert {k: v for k, v in runs.rerun.items() if k != "run_id"} == {
        k: v for k, v in runs.first.items() if k != "run_id"
    }
    rerun_files, first_files = dict(runs.rerun_files), dict(runs.first_files)
    rerun_files.pop("manifest.json"), first_files.pop("manifest.json")
    assert rerun_files == first_files
    assert runs.rerun_hidden == []
    assert [name.startswith(f"vapi-chargeback-{MONTH}-") for name in runs.after_kill_temp] == [
        True
    ], "the killed publisher left its render folder in the temp directory"
    assert runs.rerun_temp == [], "the rerun's publish removed it (and its own)"


def occurrences(roots: list[Path], needle: bytes) -> tuple[int, dict[str, int]]:
    """(files searched, path → count) for every regular file under ``roots``."""
    searched, hits = 0, {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                searched += 1
                count = path.read_bytes().count(needle)
                if count:
                    hits[str(path)] = count
    return searched, hits


def test_the_search_finds_a_planted_key(tmp_path: Path) -> None:
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "leak.log").write_bytes(b"Authorization: Bearer " + KEY.encode())
    assert occurrences([tmp_path], KEY.encode()) == (1, {str(tmp_path / "deep" / "leak.log"): 1})


@pytest.mark.slow
def test_the_api_key_is_in_no_file_or_log_of_the_runs(runs: Runs) -> None:
    searched, hits = occurrences(runs.roots, KEY.encode())
    assert searched >= 20, "the search must have covered the runs' files"
    names = {path.name for root in runs.roots for path in root.rglob("*")}
    assert {"airflow.db", "emulator.log", "dags-test-killed.log", "batch-000.json"} <= names
    assert hits == {}
