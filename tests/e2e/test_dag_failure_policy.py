"""The real DAG's error policy under ``airflow dags test``: permanent errors fail on the
first try, transient ones are retried, an unfinished month is refused before anything is
fetched, a month without calls is refused unless expected, and a hanging API cannot hold
the run longer than its bounds.

One Airflow home and two emulators (a healthy one and one that never answers) serve
every case; the task instances' states and try numbers are read from the run's own
metadata database, not from log text.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from vapi_chargeback import localrun
from vapi_chargeback.storage import read_published

from support.statement_checks import CONFIG, ROOT

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

CALLS_MONTH = "2026-10"
EMPTY_MONTH = "2026-07"
"""Generated calls cover October only: July is a month the API has no calls for."""
HANG_DEADLINE_S = 4.0
"""The client's deadline in the hanging-API run (production: 300 s)."""
RETRY_DELAY_S = 1
FETCH_TRIES = 2
"""FETCH_RETRIES in the DAG, plus the first try."""


@dataclass(frozen=True)
class Run:
    returncode: int
    seconds: float
    log: str
    tasks: dict[str, tuple[str, int]]
    """task id (``fetch[0]`` for mapped ones) → (state, try number)."""


@dataclass(frozen=True)
class Api:
    base_url: str
    api_key: str

    def analytics_requests(self) -> int:
        stats = httpx.get(f"{self.base_url}/_stats", timeout=10).json()
        return int(stats["requests"].get("POST /analytics", 0))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("failure-policy")


@pytest.fixture(scope="module")
def calls(work: Path) -> Path:
    return localrun.generate_calls(
        work / "calls.parquet", month=CALLS_MONTH, months=1, calls_per_month=1500
    )


@pytest.fixture(scope="module")
def api(work: Path, calls: Path) -> Iterator[Api]:
    key = secrets.token_urlsafe(16)
    with localrun.serve_emulator([calls], key, log=work / "emulator.log") as base_url:
        yield Api(base_url, key)


@pytest.fixture(scope="module")
def hanging_api(work: Path, calls: Path) -> Iterator[Api]:
    key = secrets.token_urlsafe(16)
    faults = "rate=1,kinds=timeout,hang=600,max_streak=1000"
    with localrun.serve_emulator(
        [calls], key, log=work / "hanging.log", extra_args=["--faults", faults]
    ) as base_url:
        yield Api(base_url, key)


@pytest.fixture(scope="module")
def home(work: Path, api: Api) -> Path:
    home = work / "home"
    localrun.migrate(environment(home, api, work / "out"))
    return home


def environment(home: Path, api: Api, output: Path, **extra: object) -> dict[str, str]:
    env = localrun.airflow_env(
        project_dir=ROOT,
        airflow_home=home,
        api_base_url=api.base_url,
        api_key=api.api_key,
        output_url=output.as_uri(),
        config_path=CONFIG,
    )
    connection = {"conn_type": "vapi", "host": api.base_url, "password": api.api_key}
    if extra:
        connection["extra"] = json.dumps(extra)
    env["AIRFLOW_CONN_VAPI_DEFAULT"] = json.dumps(connection)
    # A second's pause before a retry keeps the retried cases short.
    env["VAPI_CHARGEBACK_RETRY_DELAY_SECONDS"] = str(RETRY_DELAY_S)
    env["AIRFLOW__SMTP__SMTP_HOST"] = "127.0.0.1"
    return env


def dags_test(env: dict[str, str], logical: date, conf: dict[str, object] | None = None) -> Run:
    command = [str(localrun.BIN / "airflow"), "dags", "test", localrun.DAG_ID, logical.isoformat()]
    command += ["--conf", json.dumps({"deliver": False, **(conf or {})})]
    started = time.monotonic()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=800)
    seconds = time.monotonic() - started
    database = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(database) as connection:
        (run_id,) = connection.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
            (localrun.DAG_ID,),
        ).fetchone()
        rows = connection.execute(
            "SELECT task_id, map_index, state, try_number FROM task_instance WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    tasks = {
        (task if index < 0 else f"{task}[{index}]"): (state, tries)
        for task, index, state, tries in rows
    }
    return Run(completed.returncode, seconds, completed.stdout + completed.stderr, tasks)


def next_month(month: str) -> date:
    first = date.fromisoformat(f"{month}-01")
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def test_an_unfinished_month_fails_at_plan_once_and_fetches_nothing(
    home: Path, api: Api, work: Path
) -> None:
    output = work / "out-unfinished"
    now = datetime.now(UTC)
    current = f"{now:%Y-%m}"
    before = api.analytics_requests()

    run = dags_test(environment(home, api, output), now.date(), {"month": current})

    assert run.returncode != 0
    assert run.tasks["plan"] == ("failed", 1), run.tasks
    assert "fetch[0]" not in run.tasks and run.tasks.get("allocate", ("",))[0] != "success"
    assert f"{current} is not complete yet" in run.log
    assert "settles" in run.log and "UTC" in run.log
    assert api.analytics_requests() == before, "nothing may be fetched"
    assert not output.exists() or not any(output.iterdir()), "nothing may be written"
    assert run.seconds < 120, f"refused in {run.seconds:.0f} s; it must not wait for retries"


def test_a_month_without_calls_is_refused_then_published_when_expected(
    home: Path, api: Api, work: Path
) -> None:
    output = work / "out-empty"
    env = environment(home, api, output)

    refused = dags_test(env, next_month(EMPTY_MONTH))
    assert refused.tasks["reconcile"] == ("failed", 1), refused.tasks
    assert f"no calls at all in {EMPTY_MONTH}" in refused.log
    assert api.base_url in refused.log
    assert "expect_empty_month" in refused.log
    assert read_published(output, EMPTY_MONTH) is None

    # verify_calls through the DAG's param: the verify task recounts the (empty) month from
    # GET /call with the hook's connection, and publish puts its block in the manifest.
    expected = dags_test(
        env, next_month(EMPTY_MONTH), {"expect_empty_month": True, "verify_calls": True}
    )
    assert expected.returncode == 0, expected.log[-3000:]
    assert expected.tasks["verify"] == ("success", 1), expected.tasks
    manifest = read_published(output, EMPTY_MONTH)
    assert manifest is not None
    assert manifest["reconciliation"]["empty_month_expected"] is True
    assert manifest["totals"]["calls"] == 0
    verification = manifest["verification"]
    assert verification["passed"] is True and verification["calls"] == 0
    assert verification["lines"]["matched"] == verification["lines"]["compared"]
    assert len(verification["pages_sha256"]) == verification["pages"] >= 1


def test_a_refused_key_fails_fetch_on_the_first_try(home: Path, api: Api, work: Path) -> None:
    env = environment(home, Api(api.base_url, "not-the-key"), work / "out-401")
    run = dags_test(env, next_month(CALLS_MONTH))
    assert run.tasks["fetch[0]"] == ("failed", 1), run.tasks
    assert "AuthenticationError" in run.log
    assert "not retried" in run.log


def test_a_hanging_api_is_retried_and_fails_within_its_bound(
    home: Path, hanging_api: Api, work: Path
) -> None:
    """A hang is transient: the client gives up at its deadline, Airflow tries once more."""
    env = environment(
        home,
        hanging_api,
        work / "out-hang",
        deadline=HANG_DEADLINE_S,
        read_timeout=1.0,
        max_retries=1,
    )
    run = dags_test(env, next_month(CALLS_MONTH))

    assert run.returncode != 0
    assert run.tasks["fetch[0]"] == ("failed", FETCH_TRIES), (run.tasks, run.log[-6000:])
    assert "TransportError" in run.log
    startup = 90.0
    """Airflow's own start, parse and plan, generously: measured ~20-40 s here."""
    bound = FETCH_TRIES * (HANG_DEADLINE_S + 5.0) + 2 * RETRY_DELAY_S + startup
    assert run.seconds < bound, f"the run took {run.seconds:.0f} s, bound {bound:.0f} s"
