"""The production topology, natively: CeleryExecutor on PostgreSQL and Redis, driven over REST.

``docker-compose.yml`` is what users deploy, but CI has no Docker engine. So this starts the
very processes the compose file runs — its Airflow commands are read from it — as local
processes on a fresh PostgreSQL database and a Redis database of their own, puts the
emulator behind a loopback proxy, and then does what an operator does:

1. unpause the DAG and trigger a month through the stable REST API (``/api/v2``, JWT from
   the simple auth manager's ``/auth/token``);
2. ``airflow backfill create`` three months (it only queues them; the scheduler runs them);
3. SIGKILL the Celery worker while a fetch task is in the middle of its request, start a
   new worker, and see the task retried there and the run finish.

Every month's statements are checked on disk: the manifest lists every file with its
sha256, and Σ ``cost_usd`` of the CSV equals the manifest's totals and the org total from
an independent query to the emulator. Each phase prints its time. Run with
``make test-stack``; skipped (loudly) where PostgreSQL or Redis cannot be reached, failed
instead when ``CI=true``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_stack import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_HOST,
    REDIS_PORT,
    AirflowStack,
    FatalWaitError,
    HoldingProxy,
    ManagedProcess,
    PhaseClock,
    free_port,
    services_unavailable_reason,
    wait_until,
)
from e2e.statement_checks import org_total

from vapi_chargeback.config import load_config

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
BIN = ROOT / ".venv" / "bin"
DAG_ID = "vapi_chargeback_monthly"

DATA_FIRST_MONTH = "2026-02"
DATA_MONTHS = 6
CALLS_PER_MONTH = 1500
"""Small on purpose: this test is about the topology, the e2e tests are about volume."""

REST_MONTH = "2026-07"
REST_LOGICAL_DATE = "2026-08-02T00:00:00Z"
"""A manual run's data interval is the last complete month before its logical date."""
BACKFILL_MONTHS = ["2026-04", "2026-05", "2026-06"]
BACKFILL_FROM, BACKFILL_TO = "2026-04-01", "2026-06-30"
"""``--to-date`` is inclusive: these give exactly April, May and June."""
KILL_MONTH = "2026-03"
KILL_LOGICAL_DATE = "2026-04-02T00:00:00Z"
"""Not 04-01: the April backfill run already has that logical date, and it must be unique."""

FIRST_WORKER, SECOND_WORKER = "worker-1", "worker-2"
RUN_TIMEOUT_S = 240
RECOVERY_TIMEOUT_S = 360

HOST_SPECIFIC = {
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
}
"""Compose settings naming container hosts or paths; the native stack has its own values."""


def compose_airflow(doc: dict[str, Any]) -> tuple[set[str], dict[str, str]]:
    """The commands of compose's always-on Airflow services, and its literal common settings."""
    common = doc["x-airflow-common"]["environment"]
    commands = {
        str(service["command"])
        for service in doc["services"].values()
        if isinstance(service.get("environment"), dict)
        and "AIRFLOW__CORE__EXECUTOR" in service["environment"]
        and "healthcheck" in service
        and not service.get("profiles")
    }
    literal = {
        key: str(value)
        for key, value in common.items()
        if key.startswith("AIRFLOW__")
        and value is not None
        and "${" not in str(value)
        and key not in HOST_SPECIFIC
    }
    return commands, literal


@dataclass
class Emulator:
    base_url: str
    api_key: str


@dataclass
class Stack:
    """What the tests drive: the Airflow stack, the proxy in front of the emulator, the output."""

    airflow: AirflowStack
    proxy: HoldingProxy
    emulator: Emulator
    output: Path
    clock: PhaseClock
    compose: dict[str, Any]

    def worker(self, name: str) -> ManagedProcess:
        return next(p for p in self.airflow.processes if p.name == name)


def require_services() -> None:
    """Skip loudly where PostgreSQL or Redis are missing; on CI that is a failure."""
    reason = services_unavailable_reason()
    if reason is None:
        return
    message = (
        "STACK TEST NOT RUN: the native CeleryExecutor stack needs PostgreSQL on "
        f"{PG_HOST}:{PG_PORT} (trust auth, user {PG_USER}) and Redis on {REDIS_HOST}:{REDIS_PORT}"
        f" — {reason}. "
        "Start them as DESIGN §5 says (or run .ci/run)."
    )
    print(f"\n{'!' * 100}\n{message}\n{'!' * 100}", flush=True)
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def start_emulator(airflow: AirflowStack, work: Path) -> Emulator:
    """Generate the demo org's calls and serve them with ``vapi-emulator`` on a free port."""
    calls = work / "calls.parquet"
    subprocess.run(
        [
            str(BIN / "vapi-emulator"), "generate", "--month", DATA_FIRST_MONTH,
            "--months", str(DATA_MONTHS), "--calls", str(CALLS_PER_MONTH), "--out", str(calls),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    port, api_key = free_port(), secrets.token_urlsafe(16)
    argv = [
        str(BIN / "vapi-emulator"), "serve", "--calls", str(calls),
        "--host", "127.0.0.1", "--port", str(port), "--api-key", api_key,
    ]  # fmt: skip
    process = airflow.spawn("vapi-emulator", argv, dict(os.environ))
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.alive(), process.log_tail()
        with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
            return bool(response.status == 200)

    wait_until("vapi-emulator /health", healthy, timeout_s=120, on_timeout=process.log_tail)
    return Emulator(base_url, api_key)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole topology, healthy, with the real DAG parsed and unpaused; torn down after."""
    require_services()
    clock = PhaseClock()
    work = tmp_path_factory.mktemp("stack")
    output = work / "statements"
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    commands, compose_settings = compose_airflow(compose)
    print(f"\nstack: compose runs {sorted(commands)}; shared settings {compose_settings}")

    airflow: AirflowStack | None = None
    proxy: HoldingProxy | None = None
    # A CI runner stopping pytest with SIGTERM must still get the teardown below: the stack's
    # processes run in sessions of their own and would otherwise outlive it.
    previous_handler = signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        with clock.phase("metadata database, Redis database, demo org, emulator"):
            airflow = AirflowStack(
                home=work / "airflow-home",
                project_dir=ROOT,
                dags_folder=ROOT / "dags",
                plugins_folder=ROOT / "plugins",
                extra_env={},
            )
            airflow.create_backends()
            emulator = start_emulator(airflow, work)
            proxy = HoldingProxy(emulator.base_url).__enter__()
            connection = {"conn_type": "vapi", "host": proxy.url, "password": emulator.api_key}
            airflow.extra_env.update(
                compose_settings,
                AIRFLOW_CONN_VAPI_DEFAULT=json.dumps(connection),
                AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT=output.as_uri(),
                AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG=str(CONFIG),
            )
        with clock.phase("airflow db migrate"):
            airflow.migrate()
        with clock.phase("start api-server, scheduler, dag-processor, triggerer, worker"):
            started = start_compose_processes(airflow, commands)
            airflow.wait_healthy([FIRST_WORKER])
            print(f"stack: running {started}")
        with clock.phase("DAG parsed and unpaused over REST"):
            dag = airflow.wait_dag(DAG_ID)
            assert dag["is_paused"], "DAGs are created paused, as in compose"
            patched = airflow.api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
            assert patched["is_paused"] is False
        yield Stack(airflow, proxy, emulator, output, clock, compose)
    finally:
        with clock.phase("stop every process, drop the database"):
            if proxy is not None:
                proxy.__exit__(None, None, None)
            if airflow is not None:
                airflow.close()
        signal.signal(signal.SIGTERM, previous_handler)
        print(clock.summary(), flush=True)


def exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"stack test stopped by signal {signum}")


def start_compose_processes(airflow: AirflowStack, commands: set[str]) -> list[str]:
    """Start each Airflow command compose runs, in compose's order: api-server first."""
    known = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}
    assert commands == known, f"compose runs {sorted(commands)}; this test knows {sorted(known)}"
    airflow.start_api_server()
    airflow.wait_api_server()
    for command in ("scheduler", "dag-processor", "triggerer"):
        airflow.start(command, command)
    # Celery's default node name, celery@<host name>, as the compose worker has it.
    airflow.start_worker(FIRST_WORKER, node="celery@%h")
    return sorted(commands)


def native_healthcheck(test: list[str] | str, airflow: AirflowStack) -> list[str]:
    """A compose healthcheck ``test`` as a command for the native process.

    Compose un-escapes ``$$`` and the container's shell expands ``$HOSTNAME``; the
    container-internal ports become the native stack's ports.
    """
    kind, *args = ["CMD-SHELL", test] if isinstance(test, str) else test
    ports = {
        "http://localhost:8080/": f"{airflow.api.base_url}/",
        "http://localhost:8974/": f"http://127.0.0.1:{airflow.health_port}/",
    }
    native = []
    for arg in args:
        for container, local in ports.items():
            arg = arg.replace(container, local)
        native.append(arg.replace("$$", "$"))
    assert kind in ("CMD", "CMD-SHELL"), f"unknown healthcheck kind {kind!r}"
    return native if kind == "CMD" else ["/bin/sh", "-c", native[0]]


# --- statement checks ---------------------------------------------------------------------


def check_statements(stack: Stack, month: str) -> Decimal:
    """The month's folder is complete and adds up; returns Σ cost_usd."""
    folder = stack.output / month
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["period"] == month
    for relative, entry in manifest["files"].items():
        digest = hashlib.sha256((folder / relative).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{month}/{relative} differs from its manifest entry"
    config = load_config(CONFIG)
    expected = {
        f"chargeback-{month}.csv",
        f"chargeback-{month}.xlsx",
        *(f"cost-centers/{center.id}-{month}.xlsx" for center in config.cost_centers),
    }
    assert expected <= set(manifest["files"]), f"{month}: manifest lacks {expected}"

    csv_name = f"chargeback-{month}.csv"
    with (folder / csv_name).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    total = sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0))
    assert {row["period"] for row in rows} == {month}
    assert len(rows) == manifest["files"][csv_name]["rows"] == manifest["totals"]["lines"]
    assert total == Decimal(manifest["totals"]["cost_usd"]), f"{month}: CSV vs manifest totals"
    check = manifest["reconciliation"]
    assert check["ok"] is True and Decimal(check["difference_usd"]) == 0
    assert Decimal(check["org_total_usd"]) == org_total(stack.emulator, month)
    assert total == Decimal(check["org_total_usd"]) + Decimal(check["shared_total_usd"])
    print(f"stack: {month}: {len(rows)} lines, Σ cost_usd {total} = manifest = org + shared")
    return total


def trigger(stack: Stack, run_id: str, logical_date: str) -> None:
    body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": {}}
    run = stack.airflow.api.request("POST", f"/dags/{DAG_ID}/dagRuns", json=body)
    assert run["state"] == "queued" and run["run_type"] == "manual"


# --- the tests ----------------------------------------------------------------------------


def test_compose_healthchecks_pass_against_the_native_processes(stack: Stack) -> None:
    """Compose's healthcheck commands, run against the same processes, report them healthy."""
    airflow = stack.airflow
    from airflow.utils.net import getfqdn

    # In a container $HOSTNAME is both the host name Airflow records for its jobs (its own
    # getfqdn) and the one Celery names its node after (gethostname); natively they may differ.
    hostnames = {"airflow-worker": socket.gethostname()}
    with stack.clock.phase("compose healthchecks against the native processes"):
        for name, service in sorted(stack.compose["services"].items()):
            if service.get("profiles") or "healthcheck" not in service:
                continue
            if name in ("postgres", "redis"):
                continue  # the machine's own servers, probed in require_services
            argv = native_healthcheck(service["healthcheck"]["test"], airflow)
            env = airflow.env(HOSTNAME=hostnames.get(name, getfqdn()))
            result = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
            )
            print(f"stack: healthcheck {name}: {' '.join(argv)} → exit {result.returncode}")
            assert result.returncode == 0, f"{name}: {result.stdout[-2000:]}{result.stderr[-2000:]}"


def test_rest_triggered_run_writes_its_month(stack: Stack) -> None:
    with stack.clock.phase(f"REST-triggered run ({REST_MONTH})"):
        trigger(stack, "stack-rest", REST_LOGICAL_DATE)
        run = stack.airflow.wait_runs(DAG_ID, ["stack-rest"], timeout_s=RUN_TIMEOUT_S)
        assert run["stack-rest"]["data_interval_start"].startswith(f"{REST_MONTH}-01")
        check_statements(stack, REST_MONTH)


def test_backfill_runs_three_months(stack: Stack) -> None:
    with stack.clock.phase(f"backfill {BACKFILL_MONTHS[0]}..{BACKFILL_MONTHS[-1]}"):
        stack.airflow.airflow(
            "backfill", "create", "--dag-id", DAG_ID,
            "--from-date", BACKFILL_FROM, "--to-date", BACKFILL_TO,
            "--reprocess-behavior", "completed",
        )  # fmt: skip
        # The CLI only queues the runs; the scheduler executes them.
        runs = stack.airflow.api.get(f"/dags/{DAG_ID}/dagRuns", run_type="backfill", limit=100)
        run_ids = sorted(run["dag_run_id"] for run in runs["dag_runs"])
        assert len(run_ids) == len(BACKFILL_MONTHS), run_ids
        finished = stack.airflow.wait_runs(DAG_ID, run_ids, timeout_s=RUN_TIMEOUT_S)
        months = sorted(run["data_interval_start"][:7] for run in finished.values())
        assert months == BACKFILL_MONTHS
        for month in BACKFILL_MONTHS:
            check_statements(stack, month)


def test_worker_killed_mid_fetch_is_survived(stack: Stack) -> None:
    """SIGKILL the worker's whole process group during a fetch; a new worker finishes the run."""
    airflow, run_id = stack.airflow, "stack-killed-worker"
    with stack.clock.phase(f"worker SIGKILLed mid-fetch, run recovered ({KILL_MONTH})"):
        stack.proxy.arm()
        trigger(stack, run_id, KILL_LOGICAL_DATE)

        def fetch_in_flight() -> bool:
            airflow.assert_processes_alive()
            if airflow.api.dag_run(DAG_ID, run_id)["state"] == "failed":
                raise FatalWaitError(f"{run_id} failed before its fetch")
            return stack.proxy.held.is_set()

        wait_until(
            "a fetch request to reach the emulator proxy",
            fetch_in_flight,
            timeout_s=RUN_TIMEOUT_S,
            on_timeout=airflow.diagnostics,
        )
        running = [
            ti["map_index"]
            for ti in airflow.api.task_instances(DAG_ID, run_id)
            if ti["task_id"] == "fetch" and ti["state"] == "running"
        ]
        assert running, "the held request belongs to a running fetch task"
        worker = stack.worker(FIRST_WORKER)
        worker.kill()
        print(f"stack: SIGKILLed {FIRST_WORKER} (process group {worker.pid}) mid-fetch {running}")
        stack.proxy.release()
        started = time.monotonic()
        airflow.start_worker(SECOND_WORKER)
        airflow.wait_runs(DAG_ID, [run_id], timeout_s=RECOVERY_TIMEOUT_S)
        print(f"stack: run finished {time.monotonic() - started:.0f} s after the kill")

        for map_index in running:
            tries = airflow.api.tries(DAG_ID, run_id, "fetch", map_index)
            first, last = tries[0], tries[-1]
            assert (first["state"], first["hostname"]) == ("failed", f"stack-{FIRST_WORKER}")
            assert (last["state"], last["hostname"]) == ("success", f"stack-{SECOND_WORKER}")
            assert last["try_number"] > first["try_number"]
        check_statements(stack, KILL_MONTH)
