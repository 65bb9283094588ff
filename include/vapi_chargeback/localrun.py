"""Run the real DAG locally with ``airflow dags test`` against a Vapi API of your choice.

Shared by ``make demo``, the end-to-end tests and the benchmarks, so that what the tests
prove is what the demo does: same environment, same command, same DAG, and one way to
start the emulator (:func:`emulator_process`) and to pick a port (:func:`free_port`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

DAG_ID = "vapi_chargeback_monthly"
DAILY_DAG_ID = "vapi_chargeback_daily"
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
EMULATOR_START_TIMEOUT_S = 60.0


def generate_calls(
    out: Path,
    *,
    month: str,
    months: int = 1,
    calls_per_month: int | None = None,
    quiet: bool = True,
) -> Path:
    """``vapi-emulator generate`` as its own process, exactly as a user runs it; returns ``out``.

    ``quiet`` keeps its progress lines out of the caller's output (tests); the demo shows them.
    """
    command = [str(BIN / "vapi-emulator"), "generate", "--month", month, "--months", str(months)]
    if calls_per_month is not None:
        command += ["--calls", str(calls_per_month)]
    subprocess.run([*command, "--out", str(out)], check=True, capture_output=quiet)
    return out


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now, for a server this process is about to start.

    The one helper for it (emulator, test servers, benchmarks): the kernel picks the port,
    so parallel runs do not collide on a fixed number.
    """
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class EmulatorProcess:
    """A running ``vapi-emulator serve``: where it answers, its process id, its log."""

    url: str
    pid: int
    log: Path


@contextmanager
def serve_emulator(
    calls: Sequence[Path],
    api_key: str,
    *,
    log: Path,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``vapi-emulator serve`` as its own process on a free loopback port; yield its URL.

    A separate process, as in production: the pipeline talks to it over real HTTP and its
    memory is not the pipeline's. :func:`emulator_process` is the same, yielding the pid too.
    """
    with emulator_process(calls, api_key, log=log, extra_args=extra_args) as running:
        yield running.url


@contextmanager
def emulator_process(
    calls: Sequence[Path],
    api_key: str,
    *,
    log: Path,
    extra_args: Sequence[str] = (),
    launcher: Sequence[str] = (),
    start_timeout: float = EMULATOR_START_TIMEOUT_S,
) -> Iterator[EmulatorProcess]:
    """The launcher behind :func:`serve_emulator`: every emulator process starts here.

    Waits for ``/health`` at most ``start_timeout`` seconds (loading 1.5M calls takes
    5–20 s) and fails with the log's tail if the process exits first; terminates it on
    the way out. ``launcher`` replaces the ``vapi-emulator`` command (a benchmark runs the
    CLI through ``python -c`` to raise a limit first); ``serve`` and its options follow it.
    """
    port = free_port()
    command = [*(launcher or [str(BIN / "vapi-emulator")]), "serve"]
    command += ["--host", LOOPBACK, "--port", str(port)]
    for path in calls:
        command += ["--calls", str(path)]
    command += [f"--api-key={api_key}", *extra_args]  # a key may start with "-"
    base_url = f"http://{LOOPBACK}:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(process, base_url, log, start_timeout)
            yield EmulatorProcess(base_url, process.pid, log)
        finally:
            process.terminate()
            process.wait(timeout=15)


def _wait_healthy(
    process: subprocess.Popen[bytes], base_url: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"vapi-emulator exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"vapi-emulator did not answer on {base_url} in {timeout:.0f}s; log: {log}")


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


KEEP_DRAFT = ("--mark-success-pattern", "review|finalize")
"""``dags test`` arguments that leave the month a draft: ``review`` and ``finalize`` are
marked successful without running, so no approval is recorded. For tests whose subject is
the published draft itself (reruns replacing it byte for byte, fault runs compared with
clean ones), which an approval time in the final files would make differ."""


def dags_test(
    logical_date: date,
    env: dict[str, str],
    *,
    log_name: str,
    extra_args: Sequence[str] = (),
    dag_id: str = DAG_ID,
) -> Path:
    """Run the DAG for ``logical_date`` — for the monthly DAG the month before it, for
    ``vapi_chargeback_daily`` the run of that day — and return the log file."""
    command = ["dags", "test", dag_id, logical_date.isoformat(), *extra_args]
    return _airflow(command, env, log_name=log_name)


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
