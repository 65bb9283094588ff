"""Shared pieces of the reliability tests: the pipeline without Airflow, an emulator, snapshots.

The pipeline steps run here exactly as the DAG's tasks call them (plan → fetch every
batch → allocate → reconcile → publish), so what these tests prove about failures holds
for the DAG; the e2e tests repeat the important ones through ``airflow dags test``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.pipeline import (
    RunSettings,
    allocate_run,
    fetch_batch,
    plan_run,
    publish_run,
    reconcile_run,
)
from vapi_emulator.app import create_app
from vapi_emulator.engine import Engine
from vapi_emulator.faults import EmulatorStats, FaultInjector, FaultPlan, RequestStats
from vapi_emulator.server import run_app

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
DEMO_MAPPING = ROOT / "include" / "config" / "assistant_teams.csv"
MONTH = "2026-10"
KEY = "sk-reliability-3b9f1c2e-key-7d41"


def run_pipeline(
    output: Path,
    client: VapiAnalyticsClient,
    *,
    run_id: str,
    config: Path = DEMO_CONFIG,
    month: str = MONTH,
) -> dict[str, Any]:
    """One run of the DAG's steps, in order; the first failing step raises."""
    settings = RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=month,
        run_id=run_id,
    )
    run = plan_run(settings)
    fetched = [
        fetch_batch(run, index, client).model_dump(mode="json") for index in range(run.batch_count)
    ]
    return publish_run(run, reconcile_run(run, allocate_run(run, fetched)))


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
    app = create_app(engine, KEY)
    stats = EmulatorStats(plan)
    app.add_middleware(FaultInjector, stats=stats)
    app.add_middleware(RequestStats, stats=stats)
    with run_app(app) as base_url:
        yield Emulator(base_url, stats)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``folder`` (empty when it does not exist)."""
    if not folder.exists():
        return {}
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


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
