"""The real DAG, run by ``airflow dags test``, against the emulator over real HTTP.

This is the product end to end: generated calls → vapi-emulator on loopback → the DAG →
statements on disk. The totals are checked against the emulator with an independent
query made here, not against anything the pipeline computed.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from vapi_chargeback import localrun
from vapi_chargeback.config import load_config
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import build_plan

from support.statement_checks import (
    CONFIG,
    ROOT,
    assert_month_statements,
    csv_rows,
    file_hashes,
    fixed_shared_total,
    org_total,
)

MONTHS = ("2026-08", "2026-09", "2026-10")
CALLS_PER_MONTH = 6000

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]


@dataclass
class Emulator:
    base_url: str
    api_key: str
    access_log: Path

    def analytics_requests(self) -> int:
        """``POST /analytics`` requests the emulator has received, from its ``GET /_stats``."""
        stats = httpx.get(f"{self.base_url}/_stats", timeout=10).json()
        return int(stats["requests"].get("POST /analytics", 0))


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    work = tmp_path_factory.mktemp("emulator")
    calls = work / "calls.parquet"
    localrun.generate_calls(
        calls, month=MONTHS[0], months=len(MONTHS), calls_per_month=CALLS_PER_MONTH
    )
    api_key = secrets.token_urlsafe(16)
    access_log = work / "access.log"
    with localrun.serve_emulator([calls], api_key, log=access_log) as base_url:
        yield Emulator(base_url, api_key, access_log)


@pytest.fixture(scope="module")
def airflow(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    output = tmp_path_factory.mktemp("output")
    env = localrun.airflow_env(
        project_dir=ROOT,
        airflow_home=home,
        api_base_url=emulator.base_url,
        api_key=emulator.api_key,
        output_url=output.as_uri(),
        config_path=CONFIG,
    )
    localrun.migrate(env)
    return env


def output_dir(env: dict[str, str]) -> Path:
    return Path(env["AIRFLOW_VAR_VAPI_CHARGEBACK_OUTPUT"].removeprefix("file://"))


def run_month(env: dict[str, str], month: str, *, keep_draft: bool = False) -> Path:
    first = date.fromisoformat(f"{month}-01")
    logical = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    extra = localrun.KEEP_DRAFT if keep_draft else ()
    log_name = f"dags-test-{month}-{time.time_ns()}.log"
    localrun.dags_test(logical, env, log_name=log_name, extra_args=extra)
    return output_dir(env) / month


def test_october_statements_add_up_to_the_org_total(
    emulator: Emulator, airflow: dict[str, str]
) -> None:
    requests_before = emulator.analytics_requests()
    folder = run_month(airflow, "2026-10")
    requests = emulator.analytics_requests() - requests_before

    config = load_config(CONFIG)
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    assert requests == len(plan.batches), "one POST /analytics per planned batch, no more"
    assert_month_statements(folder, "2026-10", emulator)


def test_rerun_is_byte_identical(emulator: Emulator, airflow: dict[str, str]) -> None:
    """Unchanged inputs, same bytes; only the manifest's record of which run published differs.

    Drafts (review and finalize not run): a rerun replaces a draft. A final month is locked
    instead: its rerun writes nothing at all.
    """
    folder = run_month(airflow, "2026-09", keep_draft=True)
    first_files = file_hashes(folder)
    first_manifest = json.loads((folder / "manifest.json").read_text())
    run_month(airflow, "2026-09", keep_draft=True)
    second_files = file_hashes(folder)
    second_manifest = json.loads((folder / "manifest.json").read_text())

    assert first_manifest["status"] == second_manifest["status"] == "draft"
    assert first_manifest["run_id"] != second_manifest["run_id"]
    first_files.pop("manifest.json")
    second_files.pop("manifest.json")
    assert first_files == second_files
    assert {k: v for k, v in first_manifest.items() if k != "run_id"} == {
        k: v for k, v in second_manifest.items() if k != "run_id"
    }


def test_rerun_of_a_final_month_writes_nothing(emulator: Emulator, airflow: dict[str, str]) -> None:
    """approval: auto (the project's config) makes the month final; a rerun leaves every byte."""
    folder = output_dir(airflow) / "2026-10"
    if not (folder / "manifest.json").exists():
        run_month(airflow, "2026-10")
    first_files = file_hashes(folder)
    assert json.loads((folder / "manifest.json").read_text())["status"] == "final"
    run_month(airflow, "2026-10")
    assert file_hashes(folder) == first_files


def test_three_months_give_three_correct_folders(
    emulator: Emulator, airflow: dict[str, str]
) -> None:
    for month in MONTHS:
        folder = output_dir(airflow) / month
        if not (folder / "manifest.json").exists():
            run_month(airflow, month)
        rows = csv_rows(folder, month)
        assert {row["period"] for row in rows} == {month}
        total = sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0))
        assert total == org_total(emulator, month) + fixed_shared_total(), month


def test_every_workbook_opens_in_libreoffice_with_its_charts(
    emulator: Emulator, airflow: dict[str, str], tmp_path: Path
) -> None:
    """Every workbook the runs wrote, opened by a real spreadsheet program (issue 18): one
    soffice call converts them all to PDF; page 1 is landscape with the Summary one page
    wide, and is kept as test-artifacts/libreoffice/*.png; the charts plot the CSV's figures."""
    from support.libreoffice import (
        convert_to_pdf,
        keep_first_page,
        page_size,
        page_text,
        require_tools,
        summary_row,
    )
    from support.workbook_charts import assert_charts_plot_the_published_csv

    tools = require_tools()
    for month in MONTHS:
        if not (output_dir(airflow) / month / "manifest.json").exists():
            run_month(airflow, month)
    workbooks = sorted(output_dir(airflow).rglob("*.xlsx"))
    assert len(workbooks) > len(MONTHS), "a finance workbook and owners' workbooks per month"

    conversion = convert_to_pdf(tools, workbooks, tmp_path / "pdf")
    print(f"LibreOffice converted {len(workbooks)} workbooks in {conversion.seconds:.1f} s")
    for workbook, pdf in conversion.pdfs.items():
        name = workbook.relative_to(output_dir(airflow)).with_suffix("").as_posix()
        width, height = page_size(tools, pdf)
        assert width > height, f"{name}: page 1 is {width} x {height} pt, not landscape"
        row = summary_row(workbook)
        first_page = page_text(tools, pdf, 1)
        assert any(row.first in line and row.last in line for line in first_page.splitlines()), (
            f"{name}: Summary row {row.first!r} … {row.last_header} {row.last!r} is not on one "
            f"line of page 1: the Summary is wider than a page"
        )
        keep_first_page(tools, pdf, f"e2e-{name.replace('/', '--')}")
        assert_charts_plot_the_published_csv(workbook)


def test_every_focus_file_passes_the_finops_validator_and_adds_up(
    airflow: dict[str, str],
) -> None:
    """Every FOCUS file this module's runs wrote (issue 12), month folders and kept versions,
    judged by focus-validator 2.2.1: no failure but the contradictory InvoiceId rule, Σ
    BilledCost the month's statement total; the journal beside it balances and credits that
    total (in the reporting currency where one is configured).
    Reads what the earlier tests published and starts no DAG run of its own."""
    import csv

    from support.focus_validator import assert_valid, require_validator

    require_validator()
    manifests = sorted(output_dir(airflow).rglob("manifest.json"))
    assert manifests, "no DAG run of this module published a month: run the module whole"
    checked = []
    for manifest_path in manifests:
        folder = manifest_path.parent
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        month, total = manifest["period"], Decimal(manifest["totals"]["cost_usd"])
        focus = folder / f"focus-{month}.csv"
        checked.append(focus)
        assert focus.name in manifest["files"], f"{folder}: no FOCUS file in the manifest"
        with focus.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert sum(Decimal(row["BilledCost"]) for row in rows) == total, focus
        assert sum(Decimal(row["cost_usd"]) for row in csv_rows(folder, month)) == total
        verdict = assert_valid(focus)
        print(f"focus-validator: {focus.relative_to(output_dir(airflow))} {verdict.seconds:.1f} s")
        with (folder / f"journal-{month}.csv").open(newline="", encoding="utf-8") as handle:
            journal = list(csv.DictReader(handle))
        debits = sum(Decimal(row["debit"] or 0) for row in journal)
        assert debits == sum(Decimal(row["credit"] or 0) for row in journal), month
        booked = (manifest.get("fx") or {}).get("total", manifest["totals"]["cost_usd"])
        assert [row["credit"] for row in journal if not row["cost_center_id"]] == [booked], month
    assert sorted(output_dir(airflow).rglob("focus-*.csv")) == sorted(checked)
