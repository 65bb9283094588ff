"""Start and stop the production topology natively: what ``docker-compose.yml`` runs, minus Docker.

There is no Docker engine on the CI machines, so the stack test starts the same Airflow
processes the compose file starts — ``api-server``, ``scheduler``, ``dag-processor``,
``triggerer`` and ``celery worker`` — as plain subprocesses with a temporary
``AIRFLOW_HOME``, against the machine's PostgreSQL (a fresh database per run) and Redis (a
database number claimed for the run). Every process gets its own process group, so stopping
it — or SIGKILLing it to play a crashed worker container — takes its children with it, and
:meth:`AirflowStack.close` leaves nothing behind even when the test fails half-way.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vapi_chargeback.localrun import free_port

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_DB_CHOICES = range(8, 16)
"""Redis database numbers the stack may claim; 0–7 are left to whoever else uses this Redis."""
REDIS_CLAIM_KEY = "vapi-chargeback:stack-test:claim"
REDIS_CLAIM_TTL_S = 30 * 60

FAB_AUTH_MANAGER = "vapi_chargeback.airflow.auth_manager.ChargebackFabAuthManager"
"""docker-compose.yml's auth manager (its literal settings override this anyway)."""
ADMIN_USER = "stack"
HOSTNAME_ENV = "STACK_WORKER_HOSTNAME"

API_TIMEOUT_S = 30.0
STOP_GRACE_S = 20.0
FINAL_STATES = frozenset({"success", "failed"})


def hostname_from_env() -> str:
    """Airflow ``[core] hostname_callable`` for the workers.

    Two workers on one machine share a host name; in compose each is its own container. The
    test sets a distinct name per worker process so a task instance's ``hostname`` shows
    which worker ran which try. Stdlib only: every task process imports this.
    """
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


def services_unavailable_reason() -> str | None:
    """Why the stack cannot run here (PostgreSQL or Redis unreachable), or None if it can."""
    import psycopg2
    import redis

    problems = []
    try:
        psycopg2.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3
        ).close()
    except psycopg2.Error as exc:
        problems.append(
            f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}): {' '.join(str(exc).split())}"
        )
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {REDIS_HOST}:{REDIS_PORT}: {exc}")
    return "; ".join(problems) or None


def wait_until(
    what: str,
    probe: Callable[[], Any],
    *,
    timeout_s: float,
    interval_s: float = 1.0,
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout_s``.

    Exceptions from the probe count as "not yet" (a server still starting refuses
    connections), but the last one is reported if time runs out — except a
    :class:`FatalWaitError`, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except FatalWaitError:
            raise
        except Exception as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f"; last error: {last_error!r}" if last_error else ""
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise TimeoutError(
                f"timed out after {timeout_s:.0f} s waiting for {what}{detail}{extra}"
            )
        time.sleep(interval_s)


class FatalWaitError(AssertionError):
    """Waiting longer cannot help (a stack process died, the DAG failed to import)."""


class ManagedProcess:
    """One long-running service process in its own process group, logging to a file."""

    def __init__(
        self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.killed = False
        """Set by :meth:`kill`: this process is meant to be dead, not a failure."""

    def start(self) -> ManagedProcess:
        with self.log_path.open("ab") as log:
            # start_new_session: a group of its own, so a group signal reaches the Celery pool
            # and task processes too, like stopping a container.
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        """Signal the whole process group; the group outlives its leader, so try regardless."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the group, as when a worker container or its machine dies: no clean-up runs.

        Returns once no process of the group is left (pool children and task processes
        included), so nothing of the old worker can still finish the task.
        """
        self.killed = True
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=10)
            wait_until(f"{self.name}'s process group to vanish", self._group_gone, timeout_s=10)

    def _group_gone(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return True
        return False

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the group, wait, then SIGKILL whatever is left of it."""
        if self.popen is None:
            return
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace_s)
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"[{self.name}: no log at {self.log_path}]"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])


def stop_all(processes: list[ManagedProcess], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every group at once, give them ``grace_s`` together, then SIGKILL the rest."""
    for proc in processes:
        proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in processes:
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in processes:
        proc.stop(grace_s=0)


class PhaseClock:
    """Times the named phases of the stack test and prints each one as it ends."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.phases: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        print(f"\nstack: {name} …", flush=True)
        try:
            yield
        finally:
            took = time.monotonic() - start
            self.phases.append((name, took))
            print(f"stack: {name}: {took:.1f} s", flush=True)

    def summary(self) -> str:
        total = time.monotonic() - self.started
        width = max((len(name) for name, _ in self.phases), default=10)
        rows = [f"  {name:<{width}}  {took:7.1f} s" for name, took in self.phases]
        return "\n".join(["stack: phase times", *rows, f"  {'total':<{width}}  {total:7.1f} s"])


class HoldingProxy:
    """A loopback HTTP proxy in front of the emulator that can hold ``/analytics`` requests.

    The killed-worker check needs a fetch task that is reliably in the middle of its
    request when the worker dies. While armed, the proxy parks the first matching requests
    (signalling :attr:`held`) until :meth:`release`; otherwise it forwards everything
    unchanged, so the DAG always talks to the emulator through it.
    """

    def __init__(self, upstream: str, hold_path: str = "/analytics") -> None:
        self.upstream = upstream.rstrip("/")
        self.hold_path = hold_path
        self.armed = threading.Event()
        self.held = threading.Event()
        self.released = threading.Event()
        self.requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test prints what matters."""

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append(f"{self.command} {self.path}")
                if proxy.armed.is_set() and self.path.startswith(proxy.hold_path):
                    proxy.held.set()
                    proxy.released.wait(timeout=300)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body or None,
                    headers=headers,
                    method=self.command,
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:
                        status, payload = response.status, response.read()
                        content_type = response.headers.get("Content-Type", "application/json")
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                    content_type = exc.headers.get("Content-Type", "application/json")
                # The client may be gone (its worker was SIGKILLed while we held it).
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="holding-proxy")

    def __enter__(self) -> HoldingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def arm(self) -> None:
        self.held.clear()
        self.released.clear()
        self.armed.set()

    def release(self) -> None:
        self.armed.clear()
        self.released.set()


@dataclass(frozen=True)
class StackUser:
    """A FAB user the stack creates: who signs in, with which roles."""

    username: str
    email: str
    roles: tuple[str, ...]
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)


@dataclass
class ApiClient:
    """The stable REST API (``/api/v2``) with a JWT from the auth manager's ``/auth/token``."""

    base_url: str
    username: str
    password: str
    _token: str | None = field(default=None, repr=False)

    def token(self) -> str:
        import httpx

        if self._token is None:
            response = httpx.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=API_TIMEOUT_S,
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2{path}``; raise with the response body on any error status."""
        import httpx

        response = httpx.request(
            method,
            f"{self.base_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=API_TIMEOUT_S,
            **kwargs,
        )
        if response.is_error:
            raise AssertionError(
                f"{method} /api/v2{path} → {response.status_code}: {response.text}"
            )
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        result = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)
        return list(result["task_instances"])

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return list(self.get(path)["task_instances"])


class AirflowStack:
    """Fresh metadata database, Redis database and ``AIRFLOW_HOME``; the compose processes.

    Settings mirror ``docker-compose.yml``'s ``x-airflow-common`` environment (CeleryExecutor,
    one JWT secret and one execution-API URL for every process, FAB auth manager), with
    loopback addresses and free ports instead of service names, and a few timeouts shortened
    so a crashed worker is noticed within the test's time budget.
    """

    def __init__(
        self,
        *,
        home: Path,
        project_dir: Path,
        dags_folder: Path,
        plugins_folder: Path,
        extra_env: Mapping[str, str],
        worker_concurrency: int = 4,
    ) -> None:
        self.home = home
        self.project_dir = project_dir
        self.logs = home / "process-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.db_name = f"vapi_stack_{uuid.uuid4().hex[:12]}"
        self.redis_db: int | None = None
        self.api_port = free_port()
        self.health_port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.processes: list[ManagedProcess] = []
        self.celery_nodes: dict[str, str] = {}
        """Worker process name → its Celery node name, as remote-control pings answer."""
        self.api = ApiClient(f"http://127.0.0.1:{self.api_port}", ADMIN_USER, self.password)
        self.worker_concurrency = worker_concurrency
        self._dags_folder = dags_folder
        self._plugins_folder = plugins_folder
        self.extra_env = dict(extra_env)
        self._closed = False
        # Generated once: every process must share them, as compose shares one .env.
        self._fernet_key = _fernet_key()
        self._jwt_secret = secrets.token_urlsafe(32)
        self._api_secret_key = secrets.token_urlsafe(32)
        self._trigger_log_port = free_port()

    # --- set-up -------------------------------------------------------------------------

    def create_backends(self) -> None:
        """Create the uniquely named database and claim a free Redis database."""
        import psycopg2
        import redis

        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:  # not `with conn`: that opens a transaction block
                cur.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            conn.close()
        for number in REDIS_DB_CHOICES:
            client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
            # Claim only an empty database: someone else's data there is not ours to flush.
            if client.dbsize() == 0 and client.set(
                REDIS_CLAIM_KEY, self.db_name, nx=True, ex=REDIS_CLAIM_TTL_S
            ):
                self.redis_db = number
                break
        if self.redis_db is None:
            raise RuntimeError(f"no empty Redis database among {list(REDIS_DB_CHOICES)}")

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment of every Airflow process: inherited AIRFLOW_* settings removed."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "_AIRFLOW")) and k not in {"PYTHONPATH", HOSTNAME_ENV}
        }
        venv_bin = self.project_dir / ".venv" / "bin"
        # The driver is named: SQLAlchemy 2.1 defaults postgresql:// to psycopg 3.
        pg_psycopg2 = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.db_name}"
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "PATH": f"{venv_bin}{os.pathsep}{base.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(
                [str(self.project_dir / "include"), str(Path(__file__).resolve().parent)]
            ),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_psycopg2,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{pg_psycopg2}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__CORE__FERNET_KEY": self._fernet_key,
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__API__SECRET_KEY": self._api_secret_key,
            "AIRFLOW__API__BASE_URL": self.api.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api.base_url}/execution/",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self._dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self._plugins_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.health_port),
            # Only the runs the test creates: no scheduled month appears when it unpauses
            # (the test that needs scheduled runs restarts the scheduler with them on).
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # A SIGKILLed worker stops heartbeating; notice within seconds, not five minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # The DAG's first retry delay (60 s by default): the killed fetch is retried sooner.
            "VAPI_CHARGEBACK_RETRY_DELAY_SECONDS": "10",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self._trigger_log_port),
        }
        base.update(settings)
        base.update(self.extra_env)
        base.update(overrides)
        return base

    def airflow(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command against the stack; fail with its output if it fails."""
        argv = [str(self.project_dir / ".venv" / "bin" / "airflow"), *args]
        result = subprocess.run(
            argv,
            env=self.env(),
            cwd=self.project_dir,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"`airflow {' '.join(args)}` exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
            )
        return result

    def migrate(self) -> None:
        """Airflow's tables and, with the FAB auth manager, FAB's (users, roles)."""
        self.airflow("db", "migrate")

    def create_users(self, users: list[StackUser]) -> None:
        """The chargeback roles, the admin the API client signs in as, and ``users``: what
        compose's init service does (roles module, ``airflow users create``), in one process."""
        admin = StackUser(ADMIN_USER, "stack@example.test", ("Admin",), self.password)
        payload = [
            {"username": u.username, "password": u.password, "email": u.email, "roles": u.roles}
            for u in [admin, *users]
        ]
        script = self.project_dir / "tests" / "support" / "fab_users.py"
        result = subprocess.run(
            [str(self.project_dir / ".venv" / "bin" / "python"), str(script)],
            input=json.dumps(payload),
            env=self.env(),
            cwd=self.project_dir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise AssertionError(f"creating FAB users failed:\n{result.stderr[-4000:]}")

    def spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> ManagedProcess:
        """Start any process the stack owns (the emulator too), so :meth:`close` stops it."""
        proc = ManagedProcess(name, argv, env, self.project_dir, self.logs / f"{name}.log")
        self.processes.append(proc)
        return proc.start()

    def start(self, name: str, *args: str, **env: str) -> ManagedProcess:
        """Start ``airflow <args>`` with the stack's environment (plus ``env``)."""
        argv = [str(self.project_dir / ".venv" / "bin" / "airflow"), *args]
        return self.spawn(name, argv, self.env(**env))

    def restart(self, name: str, *args: str, **env: str) -> ManagedProcess:
        """Stop the process ``name`` and start ``airflow <args>`` in its place (plus ``env``)."""
        old = next(proc for proc in self.processes if proc.name == name)
        old.stop()
        self.processes.remove(old)
        return self.start(name, *args, **env)

    def start_api_server(self) -> ManagedProcess:
        return self.start(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port),
            "--workers", "1",
        )  # fmt: skip

    def start_worker(self, name: str, node: str | None = None) -> ManagedProcess:
        """A Celery worker with its own Celery node name, task host name and log-server port.

        ``node`` is the Celery node name (``%h`` = this host), by default ``<name>@%h``; the
        compose worker keeps Celery's default ``celery@<container host name>``.
        """
        node = node or f"{name}@%h"
        self.celery_nodes[name] = node.replace("%h", socket.gethostname())
        return self.start(
            name,
            "celery", "worker", "--celery-hostname", node,
            "--concurrency", str(self.worker_concurrency),
            AIRFLOW__CORE__HOSTNAME_CALLABLE=f"{Path(__file__).stem}.hostname_from_env",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            **{HOSTNAME_ENV: f"stack-{name}"},
        )  # fmt: skip

    # --- health -------------------------------------------------------------------------

    def diagnostics(self) -> str:
        """Each process's exit status and log tail: what a failed wait prints."""
        parts = []
        for proc in self.processes:
            state = "running" if proc.alive() else f"exited {proc.popen and proc.popen.poll()}"
            parts.append(f"[{proc.name}: {state}]\n{proc.log_tail()}")
        return "\n\n".join(parts)

    def assert_processes_alive(self) -> None:
        dead = [p.name for p in self.processes if not (p.killed or p.alive())]
        if dead:
            raise FatalWaitError(f"stack processes died: {dead}\n{self.diagnostics()}")

    def wait_api_server(self, timeout_s: float = 180) -> None:
        def probe() -> bool:
            self.assert_processes_alive()
            with urllib.request.urlopen(f"{self.api.base_url}/api/v2/version", timeout=5) as r:
                return bool(r.status == 200)

        wait_until(
            "api-server /api/v2/version", probe, timeout_s=timeout_s, on_timeout=self.diagnostics
        )

    def wait_healthy(self, workers: list[str], timeout_s: float = 240) -> None:
        """Scheduler health server, dag-processor and triggerer heartbeats, Celery pings."""

        def probe() -> bool:
            self.assert_processes_alive()
            url = f"http://127.0.0.1:{self.health_port}/health"
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status != 200:
                    return False
            health = self.api.get("/monitor/health")
            if any(
                (health.get(part) or {}).get("status") != "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            ):
                return False
            return self.workers_answering(workers, timeout_s=2.0)

        wait_until(
            "scheduler, dag-processor, triggerer and workers to be healthy",
            probe,
            timeout_s=timeout_s,
            interval_s=2.0,
            on_timeout=self.diagnostics,
        )

    def workers_answering(self, workers: list[str], timeout_s: float) -> bool:
        """Celery remote-control ping, as compose's worker healthcheck does."""
        from celery import Celery

        app = Celery(broker=f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}")
        try:
            replies = app.control.ping(timeout=timeout_s)
        finally:
            app.close()
        answered = {node for reply in replies for node in reply}
        return {self.celery_nodes[name] for name in workers} <= answered

    # --- DAG runs -----------------------------------------------------------------------

    def wait_dag(self, dag_id: str, timeout_s: float = 180) -> dict[str, Any]:
        """The DAG once the dag-processor has serialized it; import errors fail at once."""

        def probe() -> dict[str, Any] | None:
            self.assert_processes_alive()
            errors = self.api.get("/importErrors")["import_errors"]
            if errors:
                raise FatalWaitError(f"DAG import errors:\n{json.dumps(errors, indent=2)}")
            try:
                return dict(self.api.get(f"/dags/{dag_id}"))
            except AssertionError:
                return None

        return dict(
            wait_until(f"DAG {dag_id} to be parsed", probe, timeout_s=timeout_s, interval_s=2)
        )

    def wait_runs(
        self, dag_id: str, run_ids: list[str], timeout_s: float
    ) -> dict[str, dict[str, Any]]:
        """Poll until every run is final; fail with the task states of any run that failed."""
        runs: dict[str, dict[str, Any]] = {}

        def probe() -> bool:
            self.assert_processes_alive()
            for run_id in run_ids:
                runs[run_id] = self.api.dag_run(dag_id, run_id)
            return all(run["state"] in FINAL_STATES for run in runs.values())

        def states() -> str:
            lines = []
            for run_id in run_ids:
                with contextlib.suppress(Exception):
                    tis = self.api.task_instances(dag_id, run_id)
                    lines.append(
                        f"{run_id}: "
                        + ", ".join(f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis)
                    )
            return "\n".join(lines) + "\n\n" + self.diagnostics()

        wait_until(f"runs {run_ids}", probe, timeout_s=timeout_s, interval_s=3, on_timeout=states)
        failed = [run_id for run_id, run in runs.items() if run["state"] != "success"]
        if failed:
            raise AssertionError(f"runs failed: {failed}\n{states()}")
        return runs

    # --- tear-down ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process (workers first, api-server last), drop the DB, free Redis."""
        if self._closed:
            return
        self._closed = True
        stop_all(self.processes)
        self._drop_backends()

    def _drop_backends(self) -> None:
        import psycopg2
        import redis

        with contextlib.suppress(psycopg2.Error):
            conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.close()
        if self.redis_db is not None:
            with contextlib.suppress(redis.RedisError):
                redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.redis_db).flushdb()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
