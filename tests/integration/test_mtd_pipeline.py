"""Month to date over real HTTP equals the monthly statement of the same instant.

The daily run of 27 October 2026 (Europe/Berlin, so the cut month holds the end of summer
time on the 25th) is held against a monthly statement made the monthly way from the calls
created before 27 October 00:00 local, with the fixed pools prorated (``support.mtd_cut``):
every line, cent for cent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.budgets.outputs import read_mtd
from vapi_chargeback.budgets.run import MtdSettings, run_mtd
from vapi_emulator.data import generate_calls_file
from vapi_emulator.server import run_emulator

from support.mtd_cut import cut_statement, mtd_csv_lines, prorated_config_copy, statement_lines

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "include" / "config"
KEY = "sk-mtd-test"
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
RUN_DAY = date(2026, 10, 27)


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(path, "2026-10", calls_per_month=3_000)
    return path


@pytest.fixture(scope="module")
def base_url(calls: Path) -> Iterator[str]:
    with run_emulator([calls], KEY) as url:
        yield url


def test_month_to_date_is_the_monthly_statement_cut_at_the_same_instant(
    calls: Path, base_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    settings = MtdSettings(
        config_path=str(CONFIG_DIR / "chargeback.yaml"),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        run_day=RUN_DAY,
        run_id="mtd-test",
    )
    with VapiAnalyticsClient(base_url, KEY) as client:
        published = run_mtd(settings, client, now=NOW)
    report = read_mtd(output, date(2026, 10, 26))
    assert report is not None and published["through_day"] == "2026-10-26"
    assert (report.elapsed_days, report.total_days) == (26, 31)
    assert "26 of 31" in report.pools_note

    config = prorated_config_copy(CONFIG_DIR, tmp_path / "config", 26, 31)
    statement = cut_statement(calls, report.as_of, "2026-10", config, tmp_path, now=NOW)
    mtd_lines = mtd_csv_lines((output / report.relative_csv).read_bytes())
    assert mtd_lines == statement_lines(statement)
    for center in report.cost_centers:
        lines = [line for line in statement.lines if line.cost_center_id == center.cost_center_id]
        assert center.spent_usd == sum((line.cost_usd for line in lines), Decimal(0))
        assert center.forecast_usd >= center.spent_usd
        assert len(center.daily_usd) == 26
    assert statement.reconciliation is not None
    assert report.org_usage_usd == statement.reconciliation.org_total_usd
    assert report.total_usd == statement.reconciliation.lines_total_usd
