"""The daily DAG, run by ``airflow dags test``, against the emulator over real HTTP.

The run of 13 November 2026, whose figures cover 1–12 November. The demo org's
``support`` cost center is given the budget that puts its 80 % threshold between its
spend through the 11th and through the 12th, so 12 November is the known day it crosses
80 %. The published figures are held against a monthly statement of the same instant,
made the monthly way (``support.mtd_cut``): every line, cent for cent.

Alerts, to a loopback mail sink through the ``smtp_default`` connection: the days before
are run in-process (the 50 % and forecast alerts go then), so the DAG run of the 13th
mails the 80 % alert exactly once; a rerun of that day mails nothing; the run of the first
day past 100 % mails that threshold, alone. Three DAG runs in all.
"""

from __future__ import annotations

import json
import secrets
import shutil
import smtplib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest

from vapi_chargeback import localrun
from vapi_chargeback.analytics.client import VapiAnalyticsClient
from vapi_chargeback.budgets.alert_log import read_alert_log
from vapi_chargeback.budgets.alerts import send_alerts
from vapi_chargeback.budgets.outputs import read_mtd
from vapi_chargeback.budgets.run import MtdSettings, run_mtd
from vapi_chargeback.config import load_config
from vapi_chargeback.money import CENT
from vapi_emulator.mailsink import LoopbackController, MailSink

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
BUDGETS_MARKER = "\n# Month to date (DAG vapi_chargeback_daily)"
"""Where the shipped config's daily: and budgets: blocks begin; the test puts its own there."""


@dataclass(frozen=True)
class Org:
    calls: Path
    base_url: str
    api_key: str
    config: Path
    budget: Decimal
    spent_before: Decimal
    """``support``'s spend through the day before the crossing day."""
    over_day: date
    """The first run day whose figures have ``support`` at or over its budget."""


def spend_through(
    base_url: str,
    api_key: str,
    run_day: date,
    output: Path,
    config: Path = CONFIG_DIR / "chargeback.yaml",
) -> Decimal:
    settings = MtdSettings(
        config_path=str(config),
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
        shipped, marker, _ = config.read_text(encoding="utf-8").partition(BUDGETS_MARKER)
        assert marker, f"{CONFIG_DIR}/chargeback.yaml changed: update this test"
        config.write_text(
            shipped
            + f'\ndaily:\n  time: "07:00"\nbudgets:\n  {CENTER}:\n    amount_usd: {budget}\n',
            encoding="utf-8",
        )
        over_day = RUN_DAY
        while spend_through(base_url, api_key, over_day, probes, config) < budget:
            over_day += timedelta(days=1)
            assert over_day.month == 11, "support never reaches its budget in November"
        yield Org(calls, base_url, api_key, config, budget, before, over_day)


class LoopbackSender:
    """Hands a message to the mail sink over SMTP, as the DAG's sender does."""

    def __init__(self, port: int) -> None:
        self.port = port

    def send(self, message: EmailMessage, *, envelope_from: str, recipients: Sequence[str]) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.send_message(message, from_addr=envelope_from, to_addrs=list(recipients))


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    controller = LoopbackController(sink)
    controller.start()
    try:
        yield sink, int(controller.port)
    finally:
        controller.stop()


def test_the_daily_run_publishes_the_month_to_date_of_the_monthly_statement_at_that_instant(
    org: Org, mail: tuple[MailSink, int], tmp_path_factory: pytest.TempPathFactory
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
    sink, port = mail
    env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
        }
    )
    # The days before, as the daily runs of the 12th and earlier left them: 50 % and the
    # forecast alert already mailed (in-process; the DAG's alerts step is this call).
    with VapiAnalyticsClient(org.base_url, org.api_key) as client:
        run_mtd(
            MtdSettings(
                config_path=str(org.config),
                output_url=output.as_uri(),
                default_output_url=output.as_uri(),
                run_day=CROSSING_DAY,
                run_id="earlier-day",
            ),
            client,
            now=NOW,
        )
    earlier = read_mtd(output, CROSSING_DAY - timedelta(days=1))
    assert earlier is not None
    before = send_alerts(
        output,
        earlier,
        load_config(org.config),
        LoopbackSender(port),
        from_address="chargeback@example.com",
        run_id="earlier-day",
    )
    assert before.sent == [f"{CENTER}:threshold:50", f"{CENTER}:forecast:100"], before
    mailed_before = len(sink.received)

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
    assert statement.budgets_usd == {CENTER: org.budget}  # the monthly Summary's budgets
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

    # The alert of the crossing day: one mail, 80 % alone, to the owner with finance copied.
    owner = load_config(org.config).cost_centers
    owner_email = next(c.owner_email for c in owner if c.id == CENTER)
    crossing = sink.received[mailed_before:]
    assert len(crossing) == 1, [m.message["Subject"] for m in crossing]
    (alert,) = crossing
    assert set(alert.recipients) == {owner_email, "finance@example.com"}
    message = alert.message
    assert (message["To"], message["Cc"]) == (owner_email, "finance@example.com")
    assert "Budget alert: Customer Support has spent" in str(message["Subject"])
    body = message.get_body(("plain",)).get_content()
    assert "crossed 80 % of its monthly budget for the first time" in body
    assert f"{support.spent_usd:,.2f} USD through Thursday 12 November 2026" in body
    assert f"{support.forecast_usd:,.2f}" in body
    assert all(a.name in body and a.assistant_id in body for a in support.top_assistants)
    assert "50 % on 2026-11-11; forecast on 2026-11-11" in body
    assert "Thu 12 Nov" in body  # the day-by-day trend reaches the crossing day
    ledger = read_alert_log(output, MONTH)
    assert ledger is not None
    eighty = ledger.alerts[f"{CENTER}:threshold:80"]
    assert (eighty.status, eighty.due_on, eighty.attempts) == ("sent", CROSSING_DAY, 1)
    assert eighty.message_id == message["Message-ID"]

    # A rerun of the same day mails nothing; the ledger is as it was.
    localrun.dags_test(
        RUN_DAY, env, log_name="dags-test-daily-rerun.log", dag_id=localrun.DAILY_DAG_ID
    )
    assert len(sink.received) == mailed_before + 1
    assert read_alert_log(output, MONTH) == ledger

    # The first day past the budget mails the 100 % threshold, in its own mail.
    localrun.dags_test(
        org.over_day, env, log_name="dags-test-daily-over.log", dag_id=localrun.DAILY_DAG_ID
    )
    over = sink.received[mailed_before + 1 :]
    assert len(over) == 1
    body = over[0].message.get_body(("plain",)).get_content()
    assert "crossed 100 % of its monthly budget for the first time" in body
    assert "Over budget by" in body
    final = read_alert_log(output, MONTH)
    assert final is not None
    assert sorted(final.alerts) == sorted(
        f"{CENTER}:{key}"
        for key in ("threshold:50", "threshold:80", "threshold:100", "forecast:100")
    )
    assert final.alerts[f"{CENTER}:threshold:100"].due_on == org.over_day - timedelta(days=1)
    assert all(record.attempts == 1 for record in final.alerts.values())
