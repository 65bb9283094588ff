"""The daily DAG's ``alerts`` task body against a real SMTP server on loopback.

The connection comes from ``AIRFLOW_CONN_SMTP_DEFAULT`` (no database), as in the delivery
tests: connection lookup, the from-address rule and ``SmtpHookSender`` are the DAG's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from vapi_chargeback.airflow.alerts import MtdMissingError, alerts
from vapi_chargeback.budgets.alert_log import read_alert_log
from vapi_emulator.mailsink import LoopbackController, MailSink

from support.mtd_samples import CENTERS, FINANCE, center, report

FROM = "chargeback@example.com"
MTD = report(center("support", "850.00"), center("sales", "100.00"), center("ops", "5.00"))


@dataclass
class Setup:
    output: Path
    config_path: Path
    sink: MailSink
    port: int


def write_config(path: Path, *, budgets: bool = True, **delivery: Any) -> None:
    document: dict[str, Any] = {
        "org": {"name": "Test Org", "timezone": "Europe/Berlin"},
        "components": ["llm"],
        "variable_key": "costCenter",
        "finance_email": FINANCE,
        "cost_centers": [
            {"id": cid, "name": name, "owner_email": mail} for cid, (name, mail) in CENTERS.items()
        ],
        "delivery": {"from_email": FROM, "retry_backoff_seconds": 1, **delivery},
    }
    if budgets:
        document["budgets"] = {"support": {"amount_usd": "1000.00"}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def smtp_connection(port: int, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, **extra},
        }
    )


def run_info(setup: Setup) -> dict[str, Any]:
    """What the plan task hands on for the run of 11 October (figures through the 10th)."""
    return {
        "month": "2026-10",
        "timezone": "Europe/Berlin",
        "period_start": "2026-10-01T00:00:00+02:00",
        "period_end": "2026-10-11T00:00:00+02:00",
        "run_id": "scheduled__2026-10-11",
        "config_path": str(setup.config_path),
        "mapping_path": str(setup.config_path.parent / "assistant_teams.csv"),
        "config_sha256": "0" * 64,
        "mapping_sha256": "0" * 64,
        "output_url": setup.output.as_uri(),
        "work_url": (setup.output / "_runs" / "mtd").as_uri(),
        "batch_count": 1,
        "query_count": 1,
        "through_day": "2026-10-10",
        "elapsed_days": 10,
        "total_days": 31,
        "pools_note": "none",
    }


PUBLISHED = {"through_day": "2026-10-10"}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    output = tmp_path / "output"
    (output / MTD.relative_json).parent.mkdir(parents=True)
    (output / MTD.relative_json).write_bytes(MTD.to_json())
    config_path = tmp_path / "chargeback.yaml"
    write_config(config_path)
    sink = MailSink()
    controller = LoopbackController(sink)
    controller.start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(controller.port))
        yield Setup(output, config_path, sink, controller.port)
    finally:
        controller.stop()


def test_the_owner_gets_the_alert_with_finance_copied_once(setup: Setup) -> None:
    result = alerts(run_info(setup), PUBLISHED)

    assert result["sent"] == ["support:threshold:50", "support:threshold:80"]
    (mail,) = setup.sink.received
    assert mail.envelope_from == FROM
    assert sorted(mail.recipients) == sorted([CENTERS["support"][1], FINANCE])
    assert mail.message["Cc"] == FINANCE
    assert "Budget alert: Customer Support has spent 85.0 %" in str(mail.message["Subject"])
    ledger = read_alert_log(setup.output, "2026-10")
    assert ledger is not None
    assert {r.run_id for r in ledger.alerts.values()} == {"scheduled__2026-10-11"}

    again = alerts(run_info(setup), PUBLISHED)
    assert again["sent"] == [] and again["skipped"] == result["sent"]
    assert len(setup.sink.received) == 1


def test_skipped_without_the_connection_or_without_budgets(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT")
    with pytest.raises(AirflowSkipException, match="no Airflow connection 'smtp_default'"):
        alerts(run_info(setup), PUBLISHED)
    write_config(setup.config_path, budgets=False)
    with pytest.raises(AirflowSkipException, match="no budgets"):
        alerts(run_info(setup), PUBLISHED)
    assert setup.sink.received == []
    assert read_alert_log(setup.output, "2026-10") is None


def test_the_from_address_rule_and_missing_figures(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(setup.config_path, from_email=None)
    with pytest.raises(AirflowFailException, match="no from-address for budget alerts"):
        alerts(run_info(setup), PUBLISHED)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT", smtp_connection(setup.port, from_email="noreply@example.com")
    )
    alerts(run_info(setup), PUBLISHED)
    assert setup.sink.received[0].envelope_from == "noreply@example.com"

    with pytest.raises(MtdMissingError, match="no month-to-date figures through 2026-10-09"):
        alerts(run_info(setup), {"through_day": "2026-10-09"})
