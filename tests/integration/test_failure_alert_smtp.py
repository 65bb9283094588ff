"""The DAGs' failure callback through the SMTP provider's notifier to a real server on loopback.

The error handed to the callback quotes the API key (as a careless exception might), an
``Authorization`` header and a Jinja expression naming the connection's password: the
mail must carry none of the secrets, and the expression must stay text (the notifier's
template rendering is bypassed). Connections and the config Variable come from
``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*``, as in the delivery tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from vapi_chargeback.airflow import hook, settings
from vapi_chargeback.airflow.failure_alerts import (
    CONFIG_VARIABLE,
    DEFAULT_CONFIG,
    VAPI_CONN_ID,
    FailureAlert,
)
from vapi_emulator.mailsink import LoopbackController, MailSink

KEY = "sk-live-9c1d2e3f4a5b6c7d"
ALERTS = "oncall@example.com"
FROM = "chargeback@example.com"


@dataclass
class FakeTaskInstance:
    planned: dict[str, Any] | None
    dag_id: str = "vapi_chargeback_monthly"
    task_id: str = "reconcile"
    map_index: int = -1
    run_id: str = "scheduled__2026-11-01"
    try_number: int = 3
    max_tries: int = 2
    log_url: str = "http://localhost:8080/log"

    def xcom_pull(self, task_ids: str) -> dict[str, Any] | None:
        assert task_ids == "plan"
        return self.planned


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    config = tmp_path / "chargeback.yaml"
    config.write_text(
        yaml.safe_dump({"alerts_email": ALERTS, "delivery": {"from_email": FROM}, "org": 1})
    )
    mails = MailSink()
    controller = LoopbackController(mails)
    controller.start()
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": controller.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(smtp))
    vapi = {"conn_type": "vapi", "host": "http://127.0.0.1:1", "password": KEY}
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", json.dumps(vapi))
    monkeypatch.setenv("AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG", str(config))
    try:
        yield mails
    finally:
        controller.stop()


def test_the_alert_reaches_the_server_once_without_any_secret(sink: MailSink) -> None:
    error = RuntimeError(
        "ReconciliationError: lines 1,234.56 != org total 1,234.57 (diff 0.01)\n"
        f"request had Authorization: Bearer {KEY} and api_key={KEY}\n"
        "{{ conn.vapi_default.password }}"
    )
    context = {"ti": FakeTaskInstance({"month": "2026-10"}), "exception": error, "params": {}}

    FailureAlert(Path("/nonexistent"))(context)

    (mail,) = sink.received
    assert mail.recipients == (ALERTS,) and mail.envelope_from == FROM
    message = mail.message
    assert (
        str(message["Subject"])
        == "[Vapi chargeback] FAILED vapi_chargeback_monthly reconcile 2026-10"
    )
    body = message.get_body(("html",))
    assert body is not None
    content = body.get_content()
    assert "diff 0.01" in content and "Try" in content and "3 of up to 3" in content
    assert "{{ conn.vapi_default.password }}" in content
    assert KEY not in content and KEY not in mail.data.decode("utf-8", errors="replace")


def test_without_alerts_email_nothing_is_sent(sink: MailSink, tmp_path: Path) -> None:
    config = tmp_path / "quiet.yaml"
    config.write_text("delivery: {}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_VAR_VAPI_CHARGEBACK_CONFIG", str(config))
        FailureAlert(tmp_path)({"ti": FakeTaskInstance(None), "exception": None, "params": {}})
    assert sink.received == []


def test_the_callback_reads_the_settings_the_pipeline_reads() -> None:
    """It keeps its own copies so that it imports nothing of the pipeline: they must agree."""
    assert CONFIG_VARIABLE == settings.CONFIG_VARIABLE
    assert DEFAULT_CONFIG == settings.DEFAULT_CONFIG
    assert hook.VapiAnalyticsHook.default_conn_name == VAPI_CONN_ID


@pytest.mark.parametrize(
    ("planned", "params", "interval", "month"),
    [
        ({"month": "2026-10"}, {}, None, "2026-10"),
        (
            {"month": "2026-11", "through_day": "2026-11-12"},
            {},
            None,
            "2026-11 (through 2026-11-12)",
        ),
        (None, {"month": "2026-07"}, None, "2026-07"),
        (None, {"day": "2026-11-13"}, None, "2026-11 (day 2026-11-13)"),
        (None, {}, ("2026-10-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00"), "2026-10"),
        (None, {}, None, None),
    ],
    ids=["planned", "daily-planned", "param-month", "param-day", "data-interval", "unknown"],
)
def test_the_month_is_the_plans_else_the_params_else_the_interval(
    planned: dict[str, Any] | None,
    params: dict[str, Any],
    interval: tuple[str, str] | None,
    month: str | None,
) -> None:
    from datetime import datetime

    from vapi_chargeback.airflow.failure_alerts import failed_task

    context: dict[str, Any] = {"ti": FakeTaskInstance(planned), "exception": None, "params": params}
    if interval:
        start, end = (datetime.fromisoformat(value) for value in interval)
        context.update(data_interval_start=start, data_interval_end=end)
    assert failed_task(context).month == month
