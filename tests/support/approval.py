"""Answer the DAG's review task as a person does in the UI: through an api-server's REST API.

``airflow dags test`` parks the review task in ``awaiting_input`` and waits until a
response is recorded from outside. The Required Actions page records it with
``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails``,
signed in through the simple auth manager; so does :class:`Approver`, against an
``airflow api-server`` that shares the test's metadata database (:func:`api_server`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vapi_chargeback.localrun import DAG_ID, free_port

BIN = Path(sys.executable).parent
APPROVER = "fiona"
"""The finance user who answers, as the simple auth manager names her."""
START_TIMEOUT_S = 90.0
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


def with_approver(env: dict[str, str], home: Path) -> tuple[dict[str, str], str]:
    """``env`` plus the simple auth manager with one ``user``-role account; its password."""
    password = secrets.token_urlsafe(12)
    passwords = home / "approver-passwords.json"
    passwords.write_text(json.dumps({APPROVER: password}))
    env = {
        **env,
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{APPROVER}:user",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
    }
    return env, password


@contextlib.contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """``airflow api-server --apps core`` on a free loopback port with ``env``; yields its URL."""
    port = free_port()
    command = [str(BIN / "airflow"), "api-server", "--apps", "core"]
    command += ["-H", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as sink:
        # Its own process group, so stopping it also stops the server processes it forks.
        process = subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(
                f"api-server health on {url} (log {log})",
                lambda: _healthy(url, process, log),
                timeout_s=START_TIMEOUT_S,
                interval_s=0.25,
            )
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@dataclass
class Approver:
    """A signed-in finance user on the REST API, answering review tasks."""

    url: str
    password: str
    username: str = APPROVER

    def __post_init__(self) -> None:
        token = httpx.post(
            f"{self.url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        token.raise_for_status()
        self.client = httpx.Client(
            base_url=f"{self.url}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )

    def pending(self, dag_id: str = DAG_ID, run_id: str = "~") -> list[dict[str, Any]]:
        """Open requests (no response yet) of ``dag_id``, as the Required Actions page lists them."""
        response = self.client.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/hitlDetails",
            params={"response_received": "false"},
        )
        response.raise_for_status()
        return list(response.json()["hitl_details"])

    def answer(
        self, run_id: str, option: str, *, comment: str | None = None, task_id: str = "review"
    ) -> dict[str, Any]:
        """Choose ``option`` (Approve or Reject) for the run's review task, as the form does."""
        response = self.client.patch(
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": {"comment": comment}},
        )
        response.raise_for_status()
        return dict(response.json())

    def task_states(self, run_id: str) -> dict[str, str | None]:
        response = self.client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {ti["task_id"]: ti["state"] for ti in response.json()["task_instances"]}

    def close(self) -> None:
        self.client.close()


def wait_until(
    what: str, probe: Callable[[], Any], *, timeout_s: float, interval_s: float = 0.5
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"api-server exited:\n{log.read_text(errors='replace')[-3000:]}")
    try:
        return httpx.get(f"{url}/api/v2/monitor/health", timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False
