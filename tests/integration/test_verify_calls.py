"""The verify step over real HTTP (issue 14): a month recounted from ``GET /call`` against
the emulator matches the analytics-based statement to the cent; under 30 % faults the
recount is the same; with the emulator's drift flag the report names exactly the
assistants and days the drift touched, and nothing is published.

The pipeline runs as the DAG's tasks run it (``runner.run_month``), no Airflow: the DAG's
``verify`` task is one line calling the same ``verify_run``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest

from vapi_chargeback import localrun, pipeline
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.pipeline import RunSettings, default_open_path
from vapi_chargeback.runner import MonthRun, run_month
from vapi_chargeback.verify.step import RECOUNT_FILE, REPORT_FILE, VERIFY_DIR, VerificationError
from vapi_emulator.app import create_app
from vapi_emulator.calls import DriftedEngine, DriftPlan
from vapi_emulator.data import generate_calls_file
from vapi_emulator.faults import FaultPlan
from vapi_emulator.server import run_app

from support.reliability import DEMO_CONFIG, KEY, MONTH, edited_config, emulator, make_client

ZONE = ZoneInfo("Europe/Berlin")
ENABLED = "invoice_tolerance_pct: 2\nverification:\n  enabled: true\n"


@pytest.fixture(scope="module")
def calls_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(path, MONTH, calls_per_month=3_000)
    return path


@pytest.fixture(scope="module")
def verifying_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo config with ``verification: enabled: true`` (the DAG param left empty)."""
    folder = tmp_path_factory.mktemp("config")
    return edited_config(folder, "invoice_tolerance_pct: 2\n", ENABLED)


def settings(output: Path, config: Path, run_id: str) -> RunSettings:
    return RunSettings(
        config_path=str(config),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        month=MONTH,
        run_id=run_id,
    )


def work(run: MonthRun) -> Path:
    return Path(default_open_path(run.run.work_url).path)


@pytest.fixture(scope="module")
def clean(
    calls_file: Path, verifying_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, MonthRun]:
    output = tmp_path_factory.mktemp("clean")
    with emulator([calls_file]) as emu:
        month = run_month(
            settings(output, verifying_config, "clean"),
            make_client(emu.base_url),
            fetch_concurrency=1,
        )
    return output, month


def test_a_clean_month_matches_to_the_cent_and_is_published_with_its_verification(
    clean: tuple[Path, MonthRun],
) -> None:
    output, month = clean
    assert "verify" in month.step_seconds, "the config's verification.enabled was not followed"
    manifest = json.loads((output / MONTH / "manifest.json").read_text())
    block = manifest["verification"]
    assert block["passed"] is True and block["differences"] == 0
    assert block["lines"]["compared"] == block["lines"]["matched"] > 50
    assert block["days"]["compared"] == block["days"]["matched"] > 500
    assert block["days"]["columns"] == ["calls", "minutes", "cost", *manifest["components"]]

    with (output / MONTH / f"chargeback-{MONTH}.csv").open(encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    usage = [line for line in lines if line["allocation"].startswith(("direct", "unallocated"))]
    recount = list(csv.DictReader(io.StringIO((work(month) / RECOUNT_FILE).read_text())))
    calls = sum(int(row["calls"]) for row in recount)
    # Calls without an assistant are re-spread by the demo's pool: the lines' calls hold them too.
    assert calls == block["calls"] == sum(int(line["calls"]) for line in lines)
    assert calls >= sum(int(line["calls"]) for line in usage)

    # The raw pages are not kept: only their digests, every one, in the manifest and report.
    report = json.loads((work(month) / REPORT_FILE).read_text())
    assert sorted(p.name for p in (work(month) / VERIFY_DIR).iterdir()) == [
        "drift-report.json",
        "recount.csv",
    ]
    assert len(block["pages_sha256"]) == block["pages"] == len(report["pages_sha256"])
    assert block["pages_sha256"] == report["pages_sha256"]
    assert block["recount"]["sha256"] == report["recount_sha256"]

    # The Other column explained by type, adding up to the workbook's Other of usage lines.
    other = {
        center: sum(
            (
                Decimal(line["cost_usd"])
                - sum(Decimal(line[f"{c}_usd"]) for c in manifest["components"])
            )
            for line in usage
            if line["cost_center_id"] == center
        )
        for center in {line["cost_center_id"] for line in usage}
    }
    for center, parts in block["other_by_type_usd"].items():
        assert sum(map(Decimal, parts.values())) == other[center], center
        assert "analysis" in parts
    assert any("voicemail-detection" in parts for parts in block["other_by_type_usd"].values())

    book = openpyxl.load_workbook(output / MONTH / f"chargeback-{MONTH}.xlsx", read_only=True)
    sheets = book.sheetnames
    assert sheets.index("Reconciliation") + 1 == sheets.index("Verification")
    rows = list(book["Verification"].iter_rows(values_only=True))
    assert rows[1][:2] == ("Result", "PASSED")
    assert rows[-1][0] == "Grain", "a month that matched lists no differences"
    owner = openpyxl.load_workbook(output / MONTH / "cost-centers" / f"sales-{MONTH}.xlsx")
    by_type = list(owner["Other by type"].iter_rows(values_only=True))
    header = by_type.index(next(row for row in by_type if row[0] == "Cost center"))
    sales = by_type[header + 1]
    assert sales[0] == "sales"
    assert sum(Decimal(str(v)) for v in sales[2:] if v is not None) == Decimal(str(sales[1]))


@pytest.mark.slow
def test_under_30_percent_faults_the_recount_is_identical(
    calls_file: Path,
    verifying_config: Path,
    clean: tuple[Path, MonthRun],
    tmp_path: Path,
) -> None:
    plan = FaultPlan.parse(
        "rate=0.3,kinds=429,503,timeout,reset,slow,garbage,hang=1,delay=0.05,retry_after=0", seed=5
    )
    with emulator([calls_file], plan) as emu:
        client = make_client(
            emu.base_url, read_timeout=0.5, backoff_base=0.01, backoff_cap=0.05, max_retries=6
        )
        month = run_month(
            settings(tmp_path, verifying_config, "faulty"), client, fetch_concurrency=1
        )
        stats = emu.stats.snapshot()
    assert sum(stats["faults"].values()) >= 3
    _, reference = clean
    assert (work(month) / RECOUNT_FILE).read_bytes() == (
        work(reference) / RECOUNT_FILE
    ).read_bytes()
    faulty = json.loads((tmp_path / MONTH / "manifest.json").read_text())["verification"]
    expected = json.loads((clean[0] / MONTH / "manifest.json").read_text())["verification"]
    assert faulty["requests"] > expected["requests"]
    for block in (faulty, expected):
        del block["requests"], block["report"]
    assert faulty == expected


@pytest.fixture
def drifted(calls_file: Path, tmp_path: Path) -> Iterator[str]:
    """The emulator as its own process with the drift flag: 0.5 % of calls dropped from
    the analytics (``GET /call`` still lists them)."""
    with localrun.serve_emulator(
        [calls_file],
        KEY,
        log=tmp_path / "emulator.log",
        extra_args=["--drift-drop", "0.5", "--drift-seed", "11"],
    ) as url:
        yield url


def test_drift_is_named_assistant_by_day_and_the_month_is_not_published(
    drifted: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    with pytest.raises(VerificationError) as refused:
        run_month(settings(output, DEMO_CONFIG, "drift"), make_client(drifted), verify=True)
    message = str(refused.value)
    assert isinstance(refused.value, PermanentError)
    assert message.startswith(f"{MONTH} is not published: recounted from ")
    assert "beyond tolerance (0.01 USD and 0 %)" in message and "Worst: " in message
    assert not (output / MONTH).exists(), "a month that does not verify must not be published"

    drift = httpx.get(f"{drifted}/_drift", headers={"Authorization": f"Bearer {KEY}"}).json()
    start, end = datetime(2026, 10, 1, tzinfo=ZONE), datetime(2026, 11, 1, tzinfo=ZONE)
    dropped = [
        (call["assistantId"] or "", datetime.fromisoformat(call["createdAt"]).astimezone(ZONE))
        for call in drift["calls"]
    ]
    dropped = [(assistant, moment) for assistant, moment in dropped if start <= moment < end]
    assert dropped and all(call["kind"] == "drop" for call in drift["calls"])
    expected = {f"{assistant.lower()}@{moment.date().isoformat()}" for assistant, moment in dropped}

    runs = output / "_runs" / MONTH
    (folder,) = runs.iterdir()
    report = json.loads((folder / REPORT_FILE).read_text())
    assert report["passed"] is False
    assert set(report["affected_days"]) == expected
    missing = sum(
        Decimal(d["difference"])
        for d in report["differences"]
        if d["grain"] == "day" and d["column"] == "calls"
    )
    assert missing == len(dropped)
    worst = report["differences"][0]
    assert worst["over_tolerance"] and worst["column"] == "cost"
    assert worst["assistant_id"] in message


def test_within_tolerance_the_month_is_published_with_its_differences_named(
    calls_file: Path, tmp_path: Path
) -> None:
    """Re-costed calls within a generous tolerance: published, and the Verification sheet
    names the differences, largest first, as the drift report does."""
    config = edited_config(
        tmp_path / "config",
        "invoice_tolerance_pct: 2\n",
        ENABLED + "  tolerance_usd: 1000\n  tolerance_pct: 50\n",
    )
    engine = DriftedEngine([calls_file], DriftPlan(recost_percent=0.5, seed=4))
    with run_app(create_app(engine, KEY)) as url:
        month = run_month(settings(tmp_path / "out", config, "tolerated"), make_client(url))
    block = json.loads((tmp_path / "out" / MONTH / "manifest.json").read_text())["verification"]
    assert block["passed"] is True and block["differences"] > 0
    assert block["lines"]["matched"] < block["lines"]["compared"]
    report = json.loads((work(month) / REPORT_FILE).read_text())
    book = openpyxl.load_workbook(tmp_path / "out" / MONTH / f"chargeback-{MONTH}.xlsx")
    rows = list(book["Verification"].iter_rows(values_only=True))
    header = next(i for i, row in enumerate(rows) if row[0] == "Grain")
    listed = rows[header + 1 :]
    assert len(listed) == min(len(report["differences"]), 200) and report["over_tolerance"] == 0
    first = report["differences"][0]
    assert listed[0][2:7] == (
        first["cost_center_id"],
        first["team"] or None,
        first["assistant_id"] or None,
        first["allocation"],
        first["column"],
    )
    assert all(row[10] == "no" for row in listed)
    costs = [abs(Decimal(str(row[9]))) for row in listed if row[6] == "cost"]
    assert costs == sorted(costs, reverse=True) and costs[0] > 0
    largest = dict((row[0], row[1]) for row in rows[:header])["Largest"]
    assert first["column"] in largest and first["cost_center_id"] in largest


def test_a_large_org_plan_compares_days_by_cost(
    calls_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The large-org plan without day breakdowns asks the core query by week: days compare
    by the daily-cost query's cost, lines by every column; a clean month matches to the cent."""
    config = edited_config(tmp_path / "config", "invoice_tolerance_pct: 2\n", ENABLED)
    config.write_text(config.read_text().replace("step: day\n", "step: week\n"))
    monkeypatch.setattr(pipeline, "COARSE_PLAN_MIN_ASSISTANTS", 0)
    with emulator([calls_file]) as emu:
        month = run_month(settings(tmp_path, config, "windowed"), make_client(emu.base_url))
    plan = json.loads((work(month) / "plan.json").read_text())
    assert plan["daily_cost_query"] != plan["core_query"]
    block = json.loads((tmp_path / MONTH / "manifest.json").read_text())["verification"]
    assert block["days"]["columns"] == ["cost"]
    assert block["passed"] and block["differences"] == 0
    assert block["days"]["matched"] == block["days"]["compared"] > 500
    assert block["lines"]["matched"] == block["lines"]["compared"]
