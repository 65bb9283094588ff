"""Closing the books end to end: ``airflow dags test`` parks the review, finance answers over REST.

The project's config with ``approval: manual``, the emulator on loopback, a mail sink on
loopback (aiosmtpd) and an ``airflow api-server`` sharing the run's SQLite metadata
database. Each month runs as ``airflow dags test``, which waits in ``review`` until a
response is recorded from outside; the test answers as the Required Actions page does
(``PATCH …/taskInstances/review/-1/hitlDetails`` with the simple auth manager's token):

- October, approved: the month becomes final (the approver and the time as answered),
  and only then is it mailed, each subject citing its statement id;
- September, rejected: the run ends green with ``finalize`` and ``deliver`` skipped, the
  month stays a draft, the rejection is in the audit trail and nobody gets a mail.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import localrun
from vapi_chargeback.close.audit import AUDIT_DIR
from vapi_chargeback.config import load_config
from vapi_emulator.mailsink import LoopbackController, MailSink

from support.approval import APPROVER, Approver, api_server, wait_until, with_approver
from support.statement_checks import CONFIG, ROOT, csv_rows

FIRST_MONTH, MONTHS = "2026-09", 2
APPROVED, REJECTED = "2026-10", "2026-09"
CALLS_PER_MONTH = 1500
"""Small: this test is about the approval, the other e2e tests are about volume."""
REVIEW_TIMEOUT_S = 120
RUN_TIMEOUT_S = 420
"""Deadlines, not waits: an idle machine answers in seconds, but two CI runs on two cores
took over 180 s for the run's tasks after the approval (finalize, deliver, tidy_runs)."""

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]


@dataclass
class Setup:
    env: dict[str, str]
    output: Path
    mail: MailSink
    approver: Approver
    config: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("approval")
    config = manual_config(work / "config")
    calls = localrun.generate_calls(
        work / "calls.parquet", month=FIRST_MONTH, months=MONTHS, calls_per_month=CALLS_PER_MONTH
    )
    api_key = secrets.token_urlsafe(16)
    home = work / "airflow-home"
    home.mkdir()
    output = work / "output"
    mail = MailSink()
    controller = LoopbackController(mail)
    controller.start()
    try:
        with localrun.serve_emulator([calls], api_key, log=work / "emulator.log") as base_url:
            env = localrun.airflow_env(
                project_dir=ROOT,
                airflow_home=home,
                api_base_url=base_url,
                api_key=api_key,
                output_url=output.as_uri(),
                config_path=config,
            )
            env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": controller.port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
                }
            )
            env, password = with_approver(env, home)
            localrun.migrate(env)
            with api_server(env, home / "api-server.log") as url:
                approver = Approver(url, password)
                try:
                    yield Setup(env, output, mail, approver, config)
                finally:
                    approver.close()
    finally:
        controller.stop()


def manual_config(folder: Path) -> Path:
    """The project's chargeback.yaml and mapping, with ``approval: manual``."""
    folder.mkdir()
    text = CONFIG.read_text()
    assert "\napproval: auto" in text, f"{CONFIG} changed: update this test"
    config = folder / CONFIG.name
    config.write_text(text.replace("\napproval: auto", "\napproval: manual"))
    shutil.copy(CONFIG.parent / load_config(CONFIG).mapping, folder)
    shutil.copy(CONFIG.parent / load_config(CONFIG).fx.rates, folder)
    return config


@dataclass
class Run:
    """One ``airflow dags test`` running in the background; the month it produces."""

    month: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self) -> None:
        try:
            code = self.process.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
        assert code == 0, f"dags test of {self.month} exited {code}; log {self.log}:\n{tail}"


def start_month(setup: Setup, month: str) -> Run:
    """``airflow dags test`` for the month, as ``localrun.dags_test`` runs it, not waited for."""
    first = datetime.strptime(month, "%Y-%m")
    logical = f"{first.year + first.month // 12}-{first.month % 12 + 1:02d}-01"
    log = Path(setup.env["AIRFLOW_HOME"]) / f"dags-test-{month}-{time.time_ns()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(localrun.BIN / "airflow"), "dags", "test", localrun.DAG_ID, logical],
            env=setup.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Run(month, process, log)


def review_request(setup: Setup, run: Run) -> dict[str, Any]:
    """The month's open approval request, once the review task has written it *and* is
    waiting for it (state ``awaiting_input``, when the Required Actions page offers it).

    The request exists a moment before the task has paused: an answer sent in between is
    stored, but ``airflow dags test`` then waits for an answer forever (seen under load, the
    run's state update came 1.1 s after the request). A person answers a waiting task;
    so does this test.
    """

    def probe() -> dict[str, Any] | None:
        if run.process.poll() is not None:
            tail = "\n".join(run.log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"dags test of {run.month} ended before asking:\n{tail}")
        request = next(
            (item for item in setup.approver.pending() if run.month in item["subject"]), None
        )
        if request is None:
            return None
        states = setup.approver.task_states(request["task_instance"]["dag_run_id"])
        return request if states.get("review") == "awaiting_input" else None

    return dict(wait_until(f"the review of {run.month}", probe, timeout_s=REVIEW_TIMEOUT_S))


def manifest(setup: Setup, month: str) -> dict[str, Any]:
    return dict(json.loads((setup.output / month / "manifest.json").read_text()))


def audit(setup: Setup, month: str) -> list[dict[str, Any]]:
    folder = setup.output / AUDIT_DIR / month
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def mails_about(setup: Setup, month: str) -> list[Any]:
    return [mail for mail in setup.mail.received if month in str(mail.message["Subject"])]


def test_approved_over_rest_the_month_becomes_final_and_only_then_is_mailed(setup: Setup) -> None:
    run = start_month(setup, APPROVED)
    request = review_request(setup, run)
    run_id = request["task_instance"]["dag_run_id"]

    assert request["subject"] == f"Approve the chargeback statements for {APPROVED}"
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    draft = manifest(setup, APPROVED)
    assert draft["status"] == "draft" and draft["approved_by"] is None
    org_id = draft["statement_ids"]["org"]
    assert org_id == f"VAPI-{APPROVED}-ORG-v1" and org_id in request["body"]
    assert draft["totals"]["cost_usd"] in request["body"]
    assert mails_about(setup, APPROVED) == [], "a draft is not mailed"

    before = datetime.now(UTC)
    response = setup.approver.answer(run_id, "Approve")
    run.wait()

    assert response["responded_by"]["name"] == APPROVER
    final = manifest(setup, APPROVED)
    assert (final["status"], final["version"], final["approved_by"]) == ("final", 1, APPROVER)
    assert before <= datetime.fromisoformat(final["approved_at"]) <= datetime.now(UTC)
    assert final["statement_ids"] == draft["statement_ids"]
    assert {row["statement_id"] for row in csv_rows(setup.output / APPROVED, APPROVED)} <= {
        org_id,
        *draft["statement_ids"]["cost_centers"].values(),
    }
    assert [event["event"] for event in audit(setup, APPROVED)] == [
        "draft-published",
        "approved",
        "delivered",
    ]

    config = load_config(setup.config)
    mails = {
        mail.recipients[0]: str(mail.message["Subject"]) for mail in mails_about(setup, APPROVED)
    }
    assert set(mails) == {config.finance_email, *(c.owner_email for c in config.cost_centers)}
    assert org_id in mails[config.finance_email]
    for center in config.cost_centers:
        assert final["statement_ids"]["cost_centers"][center.id] in mails[center.owner_email]
    assert not any("DRAFT" in subject for subject in mails.values())
    assert setup.approver.task_states(run_id)["finalize"] == "success"


def test_rejected_over_rest_the_month_stays_a_draft_and_nothing_is_mailed(setup: Setup) -> None:
    mailed_before = len(setup.mail.received)
    run = start_month(setup, REJECTED)
    request = review_request(setup, run)
    run_id = request["task_instance"]["dag_run_id"]
    draft_bytes = (setup.output / REJECTED / "manifest.json").read_bytes()

    setup.approver.answer(run_id, "Reject", comment="support's minutes look doubled")
    run.wait()

    assert (setup.output / REJECTED / "manifest.json").read_bytes() == draft_bytes
    assert manifest(setup, REJECTED)["status"] == "draft"
    rejected = audit(setup, REJECTED)[-1]
    assert (rejected["event"], rejected["actor"], rejected["reason"]) == (
        "rejected",
        APPROVER,
        "support's minutes look doubled",
    )
    states = setup.approver.task_states(run_id)
    assert (states["review"], states["finalize"], states["deliver"]) == (
        "success",
        "skipped",
        "skipped",
    )
    assert len(setup.mail.received) == mailed_before, "nothing mailed"
    assert "2026-09 stays a draft" in run.log.read_text(errors="replace")
