"""A run whose API key is refused mails ``alerts_email`` once, with the month and the error.

The real monthly DAG under ``airflow dags test``, against the emulator (which requires its
own bearer key) with another key in the ``vapi_default`` connection, and an aiosmtpd sink
on loopback as the ``smtp_default`` connection. ``fetch`` meets the 401, fails for good on
its first try (a permanent error), and its ``on_failure_callback`` sends the alert through
the SMTP provider's notifier; the tasks after it never run, so they mail nothing. The
refused key must appear nowhere in the mail: not in its headers, not in its decoded body.
A transient failure (the API unreachable) is retried and mails once, after the last try.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml

from vapi_chargeback import localrun
from vapi_emulator.mailsink import LoopbackController, MailSink, ReceivedMail

from support.statement_checks import CONFIG, ROOT

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

MONTH = "2026-10"
ALERTS = "chargeback-oncall@example.com"
FROM = "chargeback@example.com"


@pytest.fixture
def sink() -> Iterator[tuple[MailSink, int]]:
    mails = MailSink()
    controller = LoopbackController(mails)
    controller.start()
    try:
        yield mails, controller.port
    finally:
        controller.stop()


def config_with_alerts(tmp_path: Path) -> Path:
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG.parent, config_dir)
    config_path = config_dir / CONFIG.name
    document = yaml.safe_load(config_path.read_text())
    document["alerts_email"] = ALERTS
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    return config_path


def run_failing_month(
    tmp_path: Path, smtp_port: int, api_url: str, api_key: str, **extra: object
) -> dict[str, tuple[str, int]]:
    """``airflow dags test`` of October, expected to fail; task id → (state, try number)."""
    home = tmp_path / "home"
    env = localrun.airflow_env(
        project_dir=ROOT,
        airflow_home=home,
        api_base_url=api_url,
        api_key=api_key,
        output_url=(tmp_path / "out").as_uri(),
        config_path=config_with_alerts(tmp_path),
    )
    if extra:
        connection = {"conn_type": "vapi", "host": api_url, "password": api_key, "extra": extra}
        env["AIRFLOW_CONN_VAPI_DEFAULT"] = json.dumps(connection)
    env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": smtp_port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
        }
    )
    env["VAPI_CHARGEBACK_RETRY_DELAY_SECONDS"] = "1"
    localrun.migrate(env)
    with pytest.raises(RuntimeError, match="failed"):
        localrun.dags_test(
            date(2026, 11, 1),
            env,
            log_name="dags-test.log",
            extra_args=["--conf", json.dumps({"deliver": False})],
        )
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, state, try_number FROM task_instance WHERE map_index <= 0"
        ).fetchall()
    assert not (tmp_path / "out" / MONTH).exists()
    return {task: (state, tries) for task, state, tries in rows}


def html_body(mail: ReceivedMail) -> str:
    body = mail.message.get_body(("html", "plain"))
    assert body is not None
    return str(body.get_content())


def test_a_refused_key_sends_one_alert_with_the_month_and_the_error_and_no_key(
    tmp_path: Path, sink: tuple[MailSink, int]
) -> None:
    mails, port = sink
    calls = localrun.generate_calls(
        tmp_path / "calls.parquet", month=MONTH, months=1, calls_per_month=500
    )
    refused_key = "sk-refused-" + secrets.token_hex(12)
    with localrun.serve_emulator(
        [calls], secrets.token_urlsafe(16), log=tmp_path / "emulator.log"
    ) as api_url:
        tasks = run_failing_month(tmp_path, port, api_url, refused_key)

    assert tasks["fetch"] == ("failed", 1)
    (mail,) = mails.received
    assert mail.recipients == (ALERTS,)
    assert mail.envelope_from == FROM
    subject = str(mail.message["Subject"])
    assert "vapi_chargeback_monthly" in subject and "fetch[0]" in subject and MONTH in subject
    content = html_body(mail)
    assert f"<td>{MONTH}</td>" in content
    assert "AuthenticationError" in content and "401" in content
    assert "no retry follows" in content
    assert refused_key not in mail.data.decode("utf-8", errors="replace")
    assert refused_key not in content and refused_key not in subject


def test_a_transient_failure_mails_once_after_its_last_retry(
    tmp_path: Path, sink: tuple[MailSink, int]
) -> None:
    """Nothing listens on the API's port: each fetch try fails (a transport error, which
    Airflow retries); the first try's failure mails nobody, the last one mails once."""
    mails, port = sink
    api_url = f"http://127.0.0.1:{localrun.free_port()}"
    key = secrets.token_urlsafe(16)
    tasks = run_failing_month(tmp_path, port, api_url, key, deadline=2.0, max_retries=1)

    assert tasks["fetch"] == ("failed", 2), tasks
    (mail,) = mails.received
    content = html_body(mail)
    assert "TransportError" in content
    assert "2 of up to 2" in content
