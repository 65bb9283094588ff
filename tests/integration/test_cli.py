"""``vapi-chargeback``, run as users run it: the installed entry point in its own process,
against the emulator (its own process too) on loopback.

The figures the summary prints are checked against the published CSV and the emulator's
own request counter, and the files against a ``runner.run_month`` of the same month in
this process: the command line adds no behaviour of its own.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from vapi_chargeback import localrun, pipeline, runner
from vapi_chargeback.analytics.client import VapiAnalyticsClient

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "chargeback.yaml"
CLI = localrun.BIN / "vapi-chargeback"
MONTH = "2026-10"
FLAGS = ("--config", "--month", "--output", "--api-url", "--expect-empty-month", "--json", "-v")


@dataclass(frozen=True)
class Api:
    url: str
    key: str

    def analytics_requests(self) -> int:
        stats = httpx.get(f"{self.url}/_stats", timeout=10).json()
        return int(stats["requests"].get("POST /analytics", 0))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    work = tmp_path_factory.mktemp("cli-emulator")
    calls = localrun.generate_calls(work / "calls.parquet", month=MONTH, calls_per_month=3000)
    key = secrets.token_urlsafe(16)
    with localrun.serve_emulator([calls], key, log=work / "emulator.log") as url:
        yield Api(url, key)


def cli(*args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("VAPI_")}
    if key is not None:
        env["VAPI_API_KEY"] = key
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def hashes(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }


def test_run_publishes_the_month_and_prints_its_summary(api: Api, tmp_path: Path) -> None:
    output = tmp_path / "out"
    before = api.analytics_requests()

    done = cli(
        "run", "--config", str(CONFIG), "--month", MONTH, "--output", str(output),
        "--api-url", api.url, key=api.key,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    folder = output / MONTH
    with (folder / f"chargeback-{MONTH}.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    total = sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0))
    summary = dict(
        line.strip().split(None, 1) for line in done.stdout.splitlines()[1:] if line.strip()
    )
    assert done.stdout.startswith(f"Published {MONTH}\n")
    assert summary["month"] == f"{MONTH} (Europe/Berlin)"
    assert summary["folder"] == folder.as_uri()
    assert summary["total"].startswith(f"{total:,.2f} USD")
    assert summary["lines"].startswith(f"{len(rows):,} in ")
    requests = api.analytics_requests() - before
    assert requests >= 1
    assert summary["requests"].startswith(f"{requests} POST /analytics")
    assert api.key not in done.stdout + done.stderr

    settings = pipeline.RunSettings(
        config_path=str(CONFIG),
        output_url=(tmp_path / "in-process").as_uri(),
        default_output_url=(tmp_path / "unused").as_uri(),
        month=MONTH,
        run_id="in-process",
    )
    with VapiAnalyticsClient(api.url, api.key) as client:
        runner.run_month(settings, client)
    assert hashes(folder) == hashes(tmp_path / "in-process" / MONTH)


def test_json_summary_matches_the_manifest(api: Api, tmp_path: Path) -> None:
    output = tmp_path / "out"

    done = cli(
        "run", "--config", str(CONFIG), "--month", MONTH, "--output", output.as_uri(),
        "--api-url", api.url, "--json", key=api.key,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    manifest = json.loads((output / MONTH / "manifest.json").read_text(encoding="utf-8"))
    assert (summary["month"], summary["run_id"]) == (MONTH, manifest["run_id"])
    assert summary["total_usd"] == manifest["totals"]["cost_usd"]
    assert Decimal(summary["org_total_usd"]) + Decimal(summary["shared_total_usd"]) == Decimal(
        summary["total_usd"]
    )
    assert list(summary["step_seconds"]) == ["plan", "fetch", "allocate", "reconcile", "publish"]


def test_a_bad_config_exits_1_naming_file_and_line(api: Api, tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    shutil.copy(CONFIG.parent / "assistant_teams.csv", folder)
    text = CONFIG.read_text(encoding="utf-8")
    assert "  timezone: Europe/Berlin\n" in text
    line = text.splitlines().index("  timezone: Europe/Berlin") + 1
    (folder / CONFIG.name).write_text(
        text.replace("timezone: Europe/Berlin", "timezone: Mars/Olympus_Mons", 1), encoding="utf-8"
    )
    before = api.analytics_requests()

    done = cli(
        "run", "--config", str(folder / CONFIG.name), "--month", MONTH,
        "--output", str(tmp_path / "out"), "--api-url", api.url, key=api.key,
    )  # fmt: skip

    assert done.returncode == 1
    assert done.stdout == ""
    assert f"{folder / CONFIG.name}:{line}: org.timezone" in done.stderr
    assert done.stderr.startswith("vapi-chargeback: error: ") and "Traceback" not in done.stderr
    assert api.analytics_requests() == before
    assert not (tmp_path / "out").exists()


def test_a_refused_key_exits_1_with_the_api_error(api: Api, tmp_path: Path) -> None:
    done = cli(
        "run", "--config", str(CONFIG), "--month", MONTH, "--output", str(tmp_path / "out"),
        "--api-url", api.url, key="not-the-key",
    )  # fmt: skip

    assert done.returncode == 1
    assert "401" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / MONTH).exists()


def test_without_the_key_variable_it_exits_2_and_names_it(tmp_path: Path) -> None:
    done = cli("run", "--month", MONTH, "--output", str(tmp_path / "out"), key=None)

    assert done.returncode == 2
    assert "VAPI_API_KEY" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_help_exits_0_and_explains_every_flag() -> None:
    top = cli("--help", key=None)
    run = cli("run", "--help", key=None)

    assert top.returncode == run.returncode == 0
    assert "run" in top.stdout
    for flag in FLAGS:
        assert flag in run.stdout, flag
    assert "VAPI_API_KEY" in run.stdout
