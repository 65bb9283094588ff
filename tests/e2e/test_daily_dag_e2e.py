"""The daily DAG, run by ``airflow dags test``, against the emulator over real HTTP.

One DAG run: the run of 13 November 2026, whose figures cover 1–12 November. The demo
org's ``support`` cost center is given the budget that puts its 80 % threshold between
its spend through the 11th and through the 12th, so 12 November is the known day it
crosses 80 % (the alerts' tests run the days around it). The published figures are held
against a monthly statement of the same instant, made the monthly way
(``support.mtd_cut``): every line, cent for cent.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback import localrun
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.budgets.outputs import read_mtd
from vapi_chargeback.budgets.run import MtdSettings, run_mtd
from vapi_chargeback.money import CENT

from support.mtd_cut import cut_statement, mtd_csv_lines, prorated_config_copy, statement_lines

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "include" / "config"
MONTH = "2026-11"
CALLS = 3_000
CROSSING_DAY = date(2026, 11, 12)
"""The day ``support`` crosses 80 % of its budget."""
RUN_DAY = date(2026, 11, 13)
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
CENTER = "support"


@dataclass(frozen=True)
class Org:
    calls: Path
    base_url: str
    api_key: str
    config: Path
    budget: Decimal
    spent_before: Decimal
    """``support``'s spend through the day before the crossing day."""


def spend_through(base_url: str, api_key: str, run_day: date, output: Path) -> Decimal:
    settings = MtdSettings(
        config_path=str(CONFIG_DIR / "chargeback.yaml"),
        output_url=output.as_uri(),
        default_output_url=output.as_uri(),
        run_day=run_day,
        run_id=f"probe-{run_day}",
    )
    with VapiAnalyticsClient(base_url, api_key) as client:
        figures = run_mtd(settings, client, now=NOW)
    return Decimal(figures["cost_centers"][CENTER]["spent_usd"])


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    work = tmp_path_factory.mktemp("daily")
    calls = localrun.generate_calls(work / "calls.parquet", month=MONTH, calls_per_month=CALLS)
    api_key = secrets.token_urlsafe(16)
    with localrun.serve_emulator([calls], api_key, log=work / "access.log") as base_url:
        probes = work / "probes"
        before = spend_through(base_url, api_key, CROSSING_DAY, probes)
        after = spend_through(base_url, api_key, RUN_DAY, probes)
        # 80 % of the budget halfway between the two days' spend.
        budget = ((before + after) / 2 / Decimal("0.8")).quantize(CENT)
        assert before < budget * Decimal("0.8") <= after < budget, (before, after, budget)
        config_dir = work / "config"
        shutil.copytree(CONFIG_DIR, config_dir)
        config = config_dir / "chargeback.yaml"
        with config.open("a", encoding="utf-8") as handle:
            handle.write(
                f'\ndaily:\n  time: "07:00"\nbudgets:\n  {CENTER}:\n    amount_usd: {budget}\n'
            )
        yield Org(calls, base_url, api_key, config, budget, before)


def test_the_daily_run_publishes_the_month_to_date_of_the_monthly_statement_at_that_instant(
    org: Org, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("airflow-home")
    output = tmp_path_factory.mktemp("output")
    env = localrun.airflow_env(
        project_dir=ROOT,
        airflow_home=home,
        api_base_url=org.base_url,
        api_key=org.api_key,
        output_url=output.as_uri(),
        config_path=org.config,
    )
    localrun.migrate(env)
    localrun.dags_test(RUN_DAY, env, log_name="dags-test-daily.log", dag_id=localrun.DAILY_DAG_ID)

    report = read_mtd(output, CROSSING_DAY)
    assert report is not None, sorted(str(p) for p in output.rglob("*"))
    assert (report.period, report.elapsed_days, report.total_days) == (MONTH, 12, 30)
    assert (output / report.relative_csv).exists()
    support = report.cost_center(CENTER)
    assert support.budget_usd == org.budget
    assert support.thresholds_crossed == (Decimal(50), Decimal(80))
    assert org.spent_before * 100 < 80 * org.budget <= support.spent_usd * 100
    assert support.forecast_usd >= support.spent_usd
    assert [day for day, _ in support.daily_usd][-1] == CROSSING_DAY
    assert support.top_assistants and all(a.name for a in support.top_assistants)

    cut = tmp_path_factory.mktemp("cut")
    config = prorated_config_copy(org.config.parent, cut / "config", 12, 30)
    statement = cut_statement(org.calls, report.as_of, MONTH, config, cut, now=NOW)
    assert mtd_csv_lines((output / report.relative_csv).read_bytes()) == statement_lines(statement)
    assert statement.reconciliation is not None
    assert report.total_usd == statement.reconciliation.lines_total_usd
    for center in report.cost_centers:
        assert center.spent_usd == sum(
            (
                line.cost_usd
                for line in statement.lines
                if line.cost_center_id == center.cost_center_id
            ),
            Decimal(0),
        )
