"""Shared pieces of the reliability tests: the pipeline without Airflow, an emulator, snapshots.

The pipeline steps run here through ``runner.run_month``, exactly as the DAG's tasks call
them (plan → fetch every batch, in plan order → allocate → reconcile → publish), so what
these tests prove about failures holds for the DAG; the e2e tests repeat the important
ones through ``airflow dags test``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.pipeline import RunSettings
from vapi_chargeback.runner import MonthRun, run_month
from vapi_emulator.app import create_app
from vapi_emulator.engine import Engine
from vapi_emulator.faults import EmulatorStats, FaultPlan
from vapi_emulator.server import run_app

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
DEMO_MAPPING = ROOT / "include" / "config" / "assistant_teams.csv"
MONTH = "2026-10"
KEY = "sk-reliability-3b9f1c2e-key-7d41"


PAUSE_WAIT_SECONDS = 60.0


def run_pipeline(
    output: Path,
    client: VapiAnalyticsClient,
    *,
    run_id: str,
    config: Path = DEMO_CONFIG,
    month: str = MONTH,
) -> MonthRun:
    """One run of the DAG's steps, in order (``runner.run_month``); the first failing step
    raises."""
    return run_month(_settings(output, run_id, config, month), client, fetch_concurrency=1)


PreparedRun = MonthRun
"""A run stopped before publish: what the publish task receives, and what fetch returned."""


def prepare_run(
    output: Path,
    client: VapiAnalyticsClient,
    *,
    run_id: str,
    config: Path = DEMO_CONFIG,
    month: str = MONTH,
) -> PreparedRun:
    """Every step but publish, as the DAG's tasks run them."""
    settings = _settings(output, run_id, config, month)
    return run_month(settings, client, publish=False, fetch_concurrency=1)


def _settings(output: Path, run_id: str, config: Path, month: str) -> RunSettings:
    return RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=month,
        run_id=run_id,
    )


def edited_config(folder: Path, old: str, new: str) -> Path:
    """A copy of the demo config (with its mapping and rates) in ``folder``, one text replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_MAPPING, folder / DEMO_MAPPING.name)
    shutil.copy(DEMO_CONFIG.with_name("fx_rates.csv"), folder)
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in the demo config any more; update the test"
    (folder / DEMO_CONFIG.name).write_text(text.replace(old, new, 1), encoding="utf-8")
    return folder / DEMO_CONFIG.name


_PUBLISH_CHILD = """
import json, sys
from vapi_chargeback.pipeline import RunInfo, publish_run
run = RunInfo.model_validate_json(open(sys.argv[1], encoding="utf-8").read())
publish_run(run, json.loads(open(sys.argv[2], encoding="utf-8").read()))
"""


class PublishProcess:
    """``pipeline.publish_run`` in a process of its own, as the publish task runs it.

    With ``pause_at`` it stops at that pause point of ``storage`` (see its docstring), so
    the test can kill it there with SIGKILL, or let it go on.
    """

    def __init__(self, prepared: PreparedRun, folder: Path, pause_at: str | None) -> None:
        run, reconciled = prepared.run, prepared.reconciled
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.pause_at = pause_at
        (folder / "run.json").write_text(run.model_dump_json(), encoding="utf-8")
        (folder / "reconciled.json").write_text(json.dumps(reconciled), encoding="utf-8")
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("VAPI_CHARGEBACK_")
        }
        if pause_at:
            environment["VAPI_CHARGEBACK_PAUSE_AT"] = f"publish:{pause_at}"
            environment["VAPI_CHARGEBACK_PAUSE_DIR"] = str(folder)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PUBLISH_CHILD,
                str(folder / "run.json"),
                str(folder / "reconciled.json"),
            ],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait_paused(self) -> None:
        """Return once the child sits at its pause point; fail if it ends first."""
        marker = self.folder / f"publish-{self.pause_at}.paused"
        deadline = time.monotonic() + PAUSE_WAIT_SECONDS
        while not marker.exists():
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise AssertionError(f"publisher ended before pausing:\n{output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"publisher did not reach {self.pause_at} in time")
            time.sleep(0.02)
        assert int(marker.read_text()) == self.process.pid

    def resume(self) -> None:
        (self.folder / f"publish-{self.pause_at}.resume").write_text("go")

    def kill(self) -> None:
        """SIGKILL: no ``finally``, no ``atexit``, no cleanup of any kind runs."""
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def finish(self) -> str:
        """Wait for a normal exit; its output."""
        output, _ = self.process.communicate(timeout=120)
        text = output.decode() if output else ""
        assert self.process.returncode == 0, text
        return text


def make_client(base_url: str, **options: Any) -> VapiAnalyticsClient:
    """A client as the hook builds it, with test-sized waits unless told otherwise."""
    return VapiAnalyticsClient(base_url, KEY, **options)


def scripted_client(answer: Callable[[httpx.Request], httpx.Response]) -> VapiAnalyticsClient:
    """A client whose every request is answered by ``answer``; retries do not sleep."""
    return VapiAnalyticsClient(
        "http://127.0.0.1:9",
        KEY,
        transport=httpx.MockTransport(answer),
        sleep=lambda seconds: None,
        max_retries=2,
    )


@dataclass
class Emulator:
    base_url: str
    stats: EmulatorStats

    def analytics_requests(self) -> int:
        return int(self.stats.snapshot()["requests"].get("POST /analytics", 0))


@contextmanager
def emulator(calls: Sequence[Path], plan: FaultPlan | None = None) -> Iterator[Emulator]:
    """The emulator app on a free loopback port, with ``plan``'s faults and its counters."""
    engine = Engine(list(calls))
    engine.load()
    app = create_app(engine, KEY, faults=plan)
    with run_app(app) as base_url:
        yield Emulator(base_url, app.state.stats)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``folder`` (empty when it does not exist)."""
    if not folder.exists():
        return {}
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def visible_entries(output: Path) -> list[str]:
    """What a reader who skips dot-entries sees in the output root."""
    return sorted(path.name for path in output.iterdir() if not path.name.startswith("."))


def hidden_leftovers(output: Path) -> list[str]:
    """Dot-entries of the output root other than the (harmless, reused) month locks."""
    if not output.exists():
        return []
    return sorted(
        path.name
        for path in output.iterdir()
        if path.name.startswith(".") and not path.name.startswith(".lock-")
    )


def without_run_id(manifest: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in manifest.items() if key != "run_id"}


def copy_output(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def dumps_exact(document: Any) -> bytes:
    """JSON with ``Decimal`` written as the number it is (json cannot, by default)."""
    marker = "\x00decimal:"

    def default(value: Any) -> str:
        return f"{marker}{value}"

    text = json.dumps(document, default=default, separators=(",", ":"))
    return _unquote_decimals(text, marker).encode()


def _unquote_decimals(text: str, marker: str) -> str:
    escaped = json.dumps(marker)[1:-1]
    parts = text.split(f'"{escaped}')
    out = [parts[0]]
    for part in parts[1:]:
        number, _, rest = part.partition('"')
        out.append(number + rest)
    return "".join(out)
