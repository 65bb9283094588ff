"""The production topology, natively: CeleryExecutor on PostgreSQL and Redis, driven over REST.

``docker-compose.yml`` is what users deploy, but CI has no Docker engine. So this starts the
very processes the compose file runs — its Airflow commands are read from it — as local
processes on a fresh PostgreSQL database and a Redis database of their own, puts the
emulator behind a loopback proxy, and then does what an operator does:

1. unpause the DAG and trigger a month through the stable REST API (``/api/v2``, JWT from
   the simple auth manager's ``/auth/token``);
2. ``airflow backfill create`` three months (it only queues them; the scheduler runs them);
3. SIGKILL the Celery worker while a fetch task is in the middle of its request, start a
   new worker, and see the task retried there and the run finish;
4. with ``approval: manual`` and ``approvers`` naming finance by e-mail, trigger a month,
   see its draft wait in ``review``; a viewer's and an admin's answers over REST are refused
   (403, the month stays a draft), finance's is taken: the same run makes it final;
5. sign in as a cost-center owner, finance and a viewer (the FAB auth manager on
   PostgreSQL, users and roles as compose's init creates them): the owner's statements
   page lists and serves only their own workbooks, every other file — another owner's,
   org-wide, guessed — is the same 403; finance sees and downloads everything; the
   viewer gets no page;
6. ``airflow dags test`` the month before the latest one due (it takes the 1st of the latest
   month as logical date), then restart the scheduler with scheduled runs on: the latest
   month's scheduled run is created all the same, waits in ``settled`` while
   chargeback.yaml's ``settlement_delay_hours`` says the month has not settled, and
   completes once the file says it has.

Connection ``vapi_default`` reaches the tasks as compose gives it to its worker: a JSON file
read through the workers' local-filesystem secrets backend, and the emulator's API key holds
a quote and a backslash, which a hand-built JSON string would break on.

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
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from airflow_stack import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_HOST,
    REDIS_PORT,
    AirflowStack,
    ApiClient,
    FatalWaitError,
    HoldingProxy,
    ManagedProcess,
    PhaseClock,
    StackUser,
    free_port,
    services_unavailable_reason,
    wait_until,
)
from dateutil.relativedelta import relativedelta

from vapi_chargeback.config import load_config
from vapi_chargeback.demo_rates import add_rates
from vapi_chargeback.period import StatementPeriod

from support.statement_checks import org_total

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
APPROVAL_MONTH = "2026-02"
APPROVAL_LOGICAL_DATE = "2026-03-02T00:00:00Z"
APPROVAL_LINE = "\napproval: auto"
FINANCE = StackUser("fiona", "Finance@Example.test", ("Chargeback Finance",))
OWNER_CENTER = "sales"
OWNER = StackUser(
    "oscar",
    next(c.owner_email for c in load_config(CONFIG).cost_centers if c.id == OWNER_CENTER),
    ("Chargeback Owner",),
)
VIEWER = StackUser("victor", "victor@example.test", ("Viewer",))
APPROVERS_LINE = "\napprovers: [finance@example.test]"
"""Finance by e-mail, in another case than the account's: the auth manager ignores case."""
PAGE = "/chargeback/"
FORBIDDEN = "You may not open this file. Finance can send it to you."

WAIT_ZONE, WAIT_DELAY_HOURS = "Pacific/Pago_Pago", 24 * 31
"""The config while a scheduled month must wait: a month ends there (UTC−11) among the
last places on Earth, and 31 days is the longest delay chargeback.yaml accepts — longer
than the scheduler ever holds a due month back, whatever today's date."""
DELAY_LINE = "settlement_delay_hours: 6"
ZONE_LINE = "timezone: Europe/Berlin"

FIRST_WORKER, SECOND_WORKER = "worker-1", "worker-2"
SHARD_WORKER = "worker-shards"
"""A second worker beside the first while the sharded run allocates (stopped after it)."""
SHARDS = 4
"""``allocate_shards`` of every run the tests trigger: allocate as four mapped tasks."""
RUN_TIMEOUT_S = 240
RECOVERY_TIMEOUT_S = 360
SCHEDULE_TIMEOUT_S = 120

HOST_SPECIFIC = {
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__CELERY__BROKER_URL",
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
    config: Path
    """The stack's chargeback.yaml: a copy of the project's, for tests to edit."""
    recent: tuple[str, str]
    """The month before the latest one due, and that latest one (the first scheduled run)."""

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.airflow.processes if p.name == name)


def recent_months(now: datetime) -> tuple[str, str]:
    """(M−1, M): M is the latest month that has ended in UTC−12 — with catchup off, the month
    the scheduler runs first — and M−1 the month a manual run on M's 1st produces."""
    day = (now - timedelta(hours=12)).date()
    latest = date(day.year, day.month, 1) - relativedelta(months=1)
    before = latest - relativedelta(months=1)
    return f"{before:%Y-%m}", f"{latest:%Y-%m}"


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


def start_emulator(airflow: AirflowStack, work: Path, recent_first: str) -> Emulator:
    """Generate the demo org's calls and serve them with ``vapi-emulator`` on a free port.

    Two sets: the fixed months of the REST, backfill and killed-worker checks, and the two
    months before today that the scheduling check needs.
    """
    files = []
    for name, first, months in (
        ("fixed", DATA_FIRST_MONTH, DATA_MONTHS),
        ("recent", recent_first, 2),
    ):
        calls = work / f"calls-{name}.parquet"
        subprocess.run(
            [
                str(BIN / "vapi-emulator"), "generate", "--month", first, "--months", str(months),
                "--calls", str(CALLS_PER_MONTH), "--out", str(calls),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )  # fmt: skip
        files += ["--calls", str(calls)]
    port, api_key = free_port(), secrets.token_urlsafe(16) + '"\\'
    argv = [
        str(BIN / "vapi-emulator"), "serve", *files,
        "--host", "127.0.0.1", "--port", str(port), f"--api-key={api_key}",
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

    recent = recent_months(datetime.now(UTC))
    first = date.fromisoformat(f"{DATA_FIRST_MONTH}-01")
    fixed = {f"{first + relativedelta(months=n):%Y-%m}" for n in range(DATA_MONTHS)}
    assert not fixed & set(recent), f"today's months {recent} overlap the fixed ones {fixed}"
    config = work / "config" / CONFIG.name
    config.parent.mkdir()
    shutil.copy(CONFIG, config)
    shutil.copy(CONFIG.parent / load_config(CONFIG).mapping, config.parent)
    # The shipped EUR rates end; today's months get the demo's synthetic rates, as make demo.
    shutil.copy(CONFIG.parent / load_config(CONFIG).fx.rates, config.parent)
    add_rates(config, StatementPeriod.for_month(recent[-1], load_config(CONFIG).timezone).last_day)

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
            emulator = start_emulator(airflow, work, recent[0])
            proxy = HoldingProxy(emulator.base_url).__enter__()
            connection = {"conn_type": "vapi", "host": proxy.url, "password": emulator.api_key}
            connections = work / "secrets" / "connections.json"
            connections.parent.mkdir()
            connections.write_text(json.dumps({"vapi_default": connection}))
            worker = compose["services"]["airflow-worker"]["environment"]
            airflow.extra_env.update(
                compose_settings,
                AIRFLOW__WORKERS__SECRETS_BACKEND=worker["AIRFLOW__WORKERS__SECRETS_BACKEND"],
                AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS=json.dumps(
                    {"connections_file_path": str(connections)}
                ),
                AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT=output.as_uri(),
                AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG=str(config),
            )
        with clock.phase("airflow db migrate, chargeback roles, FAB users"):
            airflow.migrate()
            airflow.create_users([FINANCE, OWNER, VIEWER])
        with clock.phase("start api-server, scheduler, dag-processor, triggerer, worker"):
            started = start_compose_processes(airflow, commands)
            airflow.wait_healthy([FIRST_WORKER])
            print(f"stack: running {started}")
        with clock.phase("DAG parsed and unpaused over REST"):
            dag = airflow.wait_dag(DAG_ID)
            assert dag["is_paused"], "DAGs are created paused, as in compose"
            patched = airflow.api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
            assert patched["is_paused"] is False
        yield Stack(airflow, proxy, emulator, output, clock, compose, config, recent)
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


def write_settlement(stack: Stack, *, zone: str, delay_hours: int) -> None:
    """The project's chargeback.yaml with another org zone and settlement delay."""
    text = CONFIG.read_text()
    assert DELAY_LINE in text and ZONE_LINE in text, f"{CONFIG} changed: update this test"
    text = text.replace(DELAY_LINE, f"settlement_delay_hours: {delay_hours}")
    stack.config.write_text(text.replace(ZONE_LINE, f"timezone: {zone}"))


def instant(api_value: str) -> datetime:
    return datetime.fromisoformat(api_value).astimezone(UTC)


def trigger(stack: Stack, run_id: str, logical_date: str) -> None:
    """A manual run, with allocate spread over :data:`SHARDS` mapped tasks (issue 16)."""
    conf = {"allocate_shards": SHARDS}
    body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
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
    """Also the sharded DAG on two Celery workers: allocate mapped over :data:`SHARDS` shards
    (map indexes 0..N-1, each summing the stored batches dealt to it; no task cuts the
    batches first; one merge), the statement complete and reconciled."""
    airflow = stack.airflow
    with stack.clock.phase(f"REST-triggered run ({REST_MONTH}), {SHARDS} shards, two workers"):
        extra = airflow.start_worker(SHARD_WORKER)
        try:
            airflow.wait_healthy([FIRST_WORKER, SHARD_WORKER])
            trigger(stack, "stack-rest", REST_LOGICAL_DATE)
            run = airflow.wait_runs(DAG_ID, ["stack-rest"], timeout_s=RUN_TIMEOUT_S)
        finally:
            extra.stop()
            airflow.processes.remove(extra)  # stopped on purpose: not a process that died
        assert run["stack-rest"]["data_interval_start"].startswith(f"{REST_MONTH}-01")
        check_statements(stack, REST_MONTH)
        instances = airflow.api.task_instances(DAG_ID, "stack-rest")
        shards = {ti["map_index"]: ti for ti in instances if ti["task_id"] == "allocate_shard"}
        assert sorted(shards) == list(range(SHARDS))
        assert {ti["state"] for ti in shards.values()} == {"success"}
        assert not [ti for ti in instances if ti["task_id"] == "partition"]
        merge = [ti for ti in instances if ti["task_id"] == "allocate"]
        assert [(ti["map_index"], ti["state"]) for ti in merge] == [(-1, "success")]
        hosts = {ti["map_index"]: ti["hostname"] for ti in shards.values()}
        assert set(hosts.values()) <= {f"stack-{FIRST_WORKER}", f"stack-{SHARD_WORKER}"}
        print(f"stack: allocate_shard map index -> worker: {hosts}")


def as_user(stack: Stack, user: StackUser) -> ApiClient:
    return ApiClient(stack.airflow.api.base_url, user.username, user.password)


def raw(client: ApiClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request as ``client``'s user, any status: refusals are what some checks want."""
    headers = {"Authorization": f"Bearer {client.token()}"}
    return httpx.request(method, f"{client.base_url}{path}", headers=headers, timeout=30, **kwargs)


def test_a_draft_approved_over_rest_becomes_final(stack: Stack) -> None:
    """Issues 11 and 19: the review task waits (no worker slot) for an answer; only the
    approvers chargeback.yaml names may give it, over REST as on the Required Actions page."""
    airflow, run_id = stack.airflow, "stack-approval"
    text = CONFIG.read_text()
    assert APPROVAL_LINE in text, f"{CONFIG} changed: update this test"
    stack.config.write_text(text.replace(APPROVAL_LINE, "\napproval: manual" + APPROVERS_LINE))
    hitl = f"/dags/{DAG_ID}/dagRuns/{run_id}/hitlDetails"
    try:
        with stack.clock.phase(f"manual approval over REST ({APPROVAL_MONTH})"):
            trigger(stack, run_id, APPROVAL_LOGICAL_DATE)

            def asking() -> dict[str, Any] | None:
                airflow.assert_processes_alive()
                if airflow.api.dag_run(DAG_ID, run_id)["state"] == "failed":
                    raise FatalWaitError(f"{run_id} failed before its review")
                pending = airflow.api.get(hitl, response_received="false")["hitl_details"]
                # The operator records its request, then defers: under load the request
                # shows while its task is still running, for a moment.
                if not pending or pending[0]["task_instance"]["state"] == "running":
                    return None
                return pending[0]

            request = wait_until(
                f"{run_id}'s review to ask for approval",
                asking,
                timeout_s=RUN_TIMEOUT_S,
                on_timeout=airflow.diagnostics,
            )
            assert request["subject"] == f"Approve the chargeback statements for {APPROVAL_MONTH}"
            assert request["task_instance"]["state"] == "awaiting_input"
            draft = json.loads((stack.output / APPROVAL_MONTH / "manifest.json").read_text())
            assert draft["status"] == "draft" and draft["statement_ids"]["org"] in request["body"]

            assert request["assigned_users"] == [
                {"id": "finance@example.test", "name": "finance@example.test"}
            ]

            path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
            answer = {"chosen_options": ["Approve"], "params_input": {}}
            for who in (as_user(stack, VIEWER), airflow.api):
                refused = raw(who, "PATCH", f"/api/v2{path}", json=answer)
                assert refused.status_code == 403, (who.username, refused.text)
                print(f"stack: {who.username}'s approval refused: {refused.json()['detail']}")
            still = airflow.api.get(path)
            assert still["response_received"] is False and still["responded_by_user"] is None
            assert airflow.api.dag_run(DAG_ID, run_id)["state"] == "running"
            assert (
                json.loads((stack.output / APPROVAL_MONTH / "manifest.json").read_text())["status"]
                == "draft"
            )

            response = as_user(stack, FINANCE).request("PATCH", path, json=answer)
            assert response["responded_by"]["name"] == FINANCE.username
            airflow.wait_runs(DAG_ID, [run_id], timeout_s=RUN_TIMEOUT_S)

            final = json.loads((stack.output / APPROVAL_MONTH / "manifest.json").read_text())
            assert (final["status"], final["approved_by"]) == ("final", FINANCE.username)
            assert final["approved_run_id"] == run_id
            assert final["statement_ids"] == draft["statement_ids"]
            states = {
                ti["task_id"]: ti["state"] for ti in airflow.api.task_instances(DAG_ID, run_id)
            }
            assert (states["review"], states["finalize"]) == ("success", "success")
            check_statements(stack, APPROVAL_MONTH)
    finally:
        stack.config.write_text(text)


def test_each_user_sees_only_what_their_role_allows(stack: Stack) -> None:
    """Issue 19 on the real api-server: the page and its downloads by who is signed in."""
    months = [REST_MONTH, APPROVAL_MONTH]
    own = [f"files/{m}/cost-centers/{OWNER_CENTER}-{m}.xlsx" for m in months]
    with stack.clock.phase("statements page as owner, finance and viewer"):
        owner, finance = as_user(stack, OWNER), as_user(stack, FINANCE)
        page = raw(owner, "GET", PAGE)
        assert page.status_code == 200, page.text
        links = re.findall(r"href='([^']+)'", page.text)
        assert sorted(links) == sorted(own), links
        assert "Total USD" not in page.text and "support" not in page.text
        for link in own:
            body = raw(owner, "GET", f"{PAGE}{link}")
            assert body.status_code == 200
            relative = link.split("/", 2)[2]
            assert body.content == (stack.output / link.split("/")[1] / relative).read_bytes()
        refused = [
            f"files/{REST_MONTH}/cost-centers/support-{REST_MONTH}.xlsx",
            f"files/{REST_MONTH}/chargeback-{REST_MONTH}.xlsx",
            f"files/{REST_MONTH}/chargeback-{REST_MONTH}.csv",
            f"files/{REST_MONTH}/focus-{REST_MONTH}.csv",
            f"files/{REST_MONTH}/journal-{REST_MONTH}.csv",
            f"files/{REST_MONTH}/manifest.json",
            f"files/{REST_MONTH}/cost-centers/nosuch-{REST_MONTH}.xlsx",
            "files/2031-01/cost-centers/support-2031-01.xlsx",
        ]
        for link in refused:
            response = raw(owner, "GET", f"{PAGE}{link}")
            assert (response.status_code, response.json()) == (403, {"detail": FORBIDDEN}), link

        everything = raw(finance, "GET", PAGE)
        assert everything.status_code == 200
        finance_links = set(re.findall(r"href='(files/[^']+)'", everything.text))
        assert set(own) | set(refused[:3]) <= finance_links
        for link in refused[:3]:
            assert raw(finance, "GET", f"{PAGE}{link}").status_code == 200, link

        viewer = raw(as_user(stack, VIEWER), "GET", PAGE)
        assert viewer.status_code == 403
        print(f"stack: owner sees {len(links)} files, finance {len(finance_links)}, viewer none")


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
        worker = stack.process(FIRST_WORKER)
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


def test_a_manual_run_leaves_the_scheduled_month_alone_which_waits_to_settle(stack: Stack) -> None:
    """Issue 17. ``dags test DAG <1st of M>`` covers M−1 and used to take the logical date of
    M's scheduled run: the scheduler then never created M ("run already exists"). And the
    settlement delay is chargeback.yaml's, read by the ``settled`` sensor at run time."""
    airflow, (before, latest) = stack.airflow, stack.recent
    first_of_latest = datetime.fromisoformat(f"{latest}-01T00:00:00+00:00")
    due = first_of_latest + relativedelta(months=1, hours=12)

    with stack.clock.phase(f"manual run: airflow dags test {DAG_ID} {first_of_latest:%Y-%m-%d}"):
        airflow.airflow("dags", "test", DAG_ID, f"{first_of_latest:%Y-%m-%d}")
        runs = airflow.api.get(f"/dags/{DAG_ID}/dagRuns", run_type="manual", limit=100)
        (manual,) = [
            run
            for run in runs["dag_runs"]
            if run["logical_date"] and instant(run["logical_date"]) == first_of_latest
        ]
        assert manual["state"] == "success"
        assert manual["data_interval_start"].startswith(f"{before}-01")
        check_statements(stack, before)

    with stack.clock.phase(f"scheduler with scheduled runs: {latest} created, waits to settle"):
        period = StatementPeriod.for_month(latest, WAIT_ZONE)
        settles = period.settled_at(WAIT_DELAY_HOURS).astimezone(UTC)
        can_wait = settles > datetime.now(UTC) + timedelta(minutes=10)
        if can_wait:
            write_settlement(stack, zone=WAIT_ZONE, delay_hours=WAIT_DELAY_HOURS)
        else:
            # Only in the hour before 12:00 UTC on the 1st after a 31-day month.
            print(f"\n{'!' * 80}\nstack: {latest} settles {settles:%Y-%m-%d %H:%M} UTC even with"
                  f" the longest delay; its wait is not checked this hour\n{'!' * 80}")  # fmt: skip
        airflow.restart("scheduler", "scheduler", AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="True")
        airflow.wait_healthy([])

        def scheduled_run() -> dict[str, Any] | None:
            airflow.assert_processes_alive()
            runs = airflow.api.get(f"/dags/{DAG_ID}/dagRuns", run_type="scheduled", limit=100)
            return next(
                (r for r in runs["dag_runs"] if r["data_interval_start"].startswith(f"{latest}-")),
                None,
            )

        run = wait_until(
            f"the scheduler to create {latest}'s run beside the manual run of {first_of_latest}",
            scheduled_run,
            timeout_s=SCHEDULE_TIMEOUT_S,
            interval_s=2,
            on_timeout=stack.process("scheduler").log_tail,
        )
        run_id = run["dag_run_id"]
        assert instant(run["logical_date"]) == due, (
            "a scheduled month's logical date is when it is due"
        )

        def waiting() -> dict[str, dict[str, Any]] | None:
            airflow.assert_processes_alive()
            tis = {ti["task_id"]: ti for ti in airflow.api.task_instances(DAG_ID, run_id)}
            state = tis["settled"]["state"]
            if state in ("failed", "upstream_failed", "skipped"):
                raise FatalWaitError(f"settled is {state}")
            if can_wait and state == "success":
                raise FatalWaitError(f"{latest} did not wait, though it settles at {settles}")
            return tis if state in ("up_for_reschedule", "success") else None

        tis = wait_until(
            f"{run_id}'s settled sensor to check the month",
            waiting,
            timeout_s=RUN_TIMEOUT_S,
            on_timeout=airflow.diagnostics,
        )
        if can_wait:
            assert tis["settled"]["state"] == "up_for_reschedule"
            assert tis["plan"]["state"] is None and tis["plan"]["try_number"] == 0, tis["plan"]
            print(
                f"stack: {run_id} waits in settled until {settles:%Y-%m-%d %H:%M} UTC; plan not run"
            )

    with stack.clock.phase(
        f"{latest}: the project's settlement delay again, the same run completes"
    ):
        stack.config.write_text(CONFIG.read_text())
        if can_wait:
            # The sensor checks again every 10 minutes; clearing it checks now.
            body = {"dry_run": False, "dag_run_id": run_id, "task_ids": ["settled"],
                    "only_failed": False}  # fmt: skip
            airflow.api.request("POST", f"/dags/{DAG_ID}/clearTaskInstances", json=body)
        airflow.wait_runs(DAG_ID, [run_id], timeout_s=RUN_TIMEOUT_S)
        check_statements(stack, latest)
