"""The review task's branches, through the operator the DAG runs and a month published on disk.

No Airflow database: the task instance is a stand-in that keeps XComs, and the provider's
``upsert_hitl_detail`` (the one call that writes the request to the metadata DB) is
replaced by a recorder, so a test sees exactly what the approver would be asked. The
answer arrives as the resume event Airflow 3.3 builds from the response (or, after the
timeout, from the request's defaults).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.providers.standard.operators import hitl
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowSkipException,
    DownstreamTasksSkipped,
    TaskAwaitingInput,
)

from vapi_chargeback.airflow.review import AUTO_APPROVER, REQUEST_KEY, StatementReview
from vapi_chargeback.close.audit import AUDIT_DIR
from vapi_chargeback.close.invoices import Invoice
from vapi_chargeback.close.tieout import tie_out
from vapi_chargeback.statement import Reconciliation, Statement
from vapi_chargeback.storage import publish_statement, read_published

from support.statement_samples import COMPONENTS, sample_statement

MONTH = "2026-10"
RESPONDED_AT = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)


@dataclass
class TaskInstance:
    """What the operator reads of its task instance: ids and XComs."""

    dag_id: str = "vapi_chargeback_monthly"
    run_id: str = "manual__2026-11-02T00:00:00+00:00"
    task_id: str = "review"
    map_index: int = -1
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))  # as the XCom backend stores it

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        assert task_ids == self.task_id
        return self.xcoms[key]


@dataclass
class Month:
    """A draft of October published under ``output``, and the run that published it."""

    output: Path
    config: Path
    run: dict[str, Any]
    published: dict[str, Any]

    def operator(self) -> StatementReview:
        with DAG("vapi_chargeback_monthly", schedule=None, start_date=datetime(2026, 1, 1)):
            review = StatementReview(task_id="review", run=self.run, published=self.published)
            review >> EmptyOperator(task_id="finalize")
        return review

    def audit_events(self) -> list[dict[str, Any]]:
        folder = self.output / AUDIT_DIR / MONTH
        files = sorted(folder.glob("*.json")) if folder.exists() else []
        return [json.loads(path.read_text()) for path in files]


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every Required Actions request the operator writes, instead of the metadata DB."""
    written: list[dict[str, Any]] = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **request: written.append(request))
    return written


def publish(tmp_path: Path, statement: Statement, *, approval: str) -> Month:
    output = tmp_path / "output"
    publish_statement(statement, output)
    manifest = read_published(output, MONTH)
    assert manifest is not None
    config = tmp_path / "chargeback.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "org": {"name": "Test Org", "timezone": "Europe/Berlin"},
                "components": list(COMPONENTS),
                "variable_key": "costCenter",
                "finance_email": "finance@example.com",
                "cost_centers": [
                    {"id": center.id, "name": center.name, "owner_email": center.owner_email}
                    for center in statement.cost_centers
                ],
                "approval": approval,
                "approval_timeout_days": 5,
            }
        )
    )
    run = {
        "month": MONTH,
        "timezone": "Europe/Berlin",
        "period_start": statement.period_start.isoformat(),
        "period_end": statement.period_end.isoformat(),
        "run_id": manifest["run_id"],
        "config_path": str(config),
        "mapping_path": str(tmp_path / "assistant_teams.csv"),
        "config_sha256": "0" * 64,
        "mapping_sha256": "0" * 64,
        "output_url": output.as_uri(),
        "work_url": (output / "_runs" / MONTH / "run").as_uri(),
        "batch_count": 1,
        "query_count": 1,
    }
    published = {
        "action": "draft",
        "month": MONTH,
        "status": manifest["status"],
        "version": manifest["version"],
        "run_id": manifest["run_id"],
        "message": f"{MONTH}: publishing draft v1",
    }
    return Month(output, config, run, published)


def context(operator: StatementReview, ti: TaskInstance) -> dict[str, Any]:
    return {"ti": ti, "task_instance": ti, "task": operator}


def answer(chosen: str, *, user: str | None, timedout: bool = False) -> dict[str, Any]:
    """The resume event of a response (``user``) or of the timeout sweep (no user)."""
    return {
        "chosen_options": [chosen],
        "params_input": {"comment": "shared pool split looks wrong"} if user else {"comment": None},
        "responded_at": RESPONDED_AT,
        "responded_by_user": {"id": user, "name": user} if user else None,
        "timedout": timedout,
    }


def beyond_tolerance() -> Statement:
    """The sample month (Vapi usage 170.50) tied to an invoice of 179.03: 5.00 % above."""
    base = sample_statement()
    invoice = Invoice(MONTH, "INV-2026-10-X", Decimal("179.03"), 2)
    tie = tie_out(MONTH, base.lines, invoice, components=COMPONENTS, fixed_pools=["platform"])
    assert not tie.approvable
    lines_total = Decimal("182.50") + tie.difference_usd
    return replace(
        base,
        lines=[*base.lines, *tie.lines],
        invoice=tie.statement_invoice(),
        reconciliation=Reconciliation(
            org_total_usd=Decimal("170.50"),
            shared_total_usd=Decimal("12.00"),
            lines_total_usd=lines_total,
            difference_usd=Decimal("0.00"),
            adjustments_usd=tie.difference_usd,
            invoice_id=invoice.invoice_id,
            invoice_usd=invoice.amount_usd,
        ),
    )


def test_manual_approval_asks_with_the_config_timeout_and_reject_as_default(
    tmp_path: Path, requests: list[dict[str, Any]]
) -> None:
    month = publish(tmp_path, sample_statement(), approval="manual")
    operator, ti = month.operator(), TaskInstance()

    with pytest.raises(TaskAwaitingInput) as parked:
        operator.execute(context(operator, ti))

    assert parked.value.timeout == timedelta(days=5), "approval_timeout_days, read at run time"
    (request,) = requests
    assert request["subject"] == "Approve the chargeback statements for 2026-10"
    assert request["options"] == ["Approve", "Reject"]
    assert request["defaults"] == ["Reject"]
    body = request["body"]
    assert "VAPI-2026-10-ORG-v1" in body and "182.50" in body
    assert "not tied to an invoice" in body
    assert f"({month.output.as_uri()}/{MONTH}/chargeback-2026-10.xlsx)" in body
    assert ti.xcoms[REQUEST_KEY]["timeout_days"] == 5


def test_an_approval_carries_the_responder_and_the_reviewed_draft(
    tmp_path: Path, requests: list[dict[str, Any]]
) -> None:
    month = publish(tmp_path, sample_statement(), approval="manual")
    operator, ti = month.operator(), TaskInstance()
    with pytest.raises(TaskAwaitingInput):
        operator.execute(context(operator, ti))

    result = operator.execute_complete(context(operator, ti), answer("Approve", user="fiona"))

    assert result["decision"] == "approved"
    assert (result["by"], result["how"]) == ("fiona", "person")
    assert datetime.fromisoformat(result["at"]) == RESPONDED_AT
    assert result["reviewed"] == month.published
    assert month.audit_events() == [], "the approval itself is finalize's to record"


@pytest.mark.parametrize(
    ("event", "actor", "reason"),
    [
        pytest.param(
            answer("Reject", user="fiona"),
            "fiona",
            "shared pool split looks wrong",
            id="a-person-rejects",
        ),
        pytest.param(
            answer("Reject", user=None, timedout=True),
            None,
            "no answer within 5 days: the approval request timed out and took its default, Reject",
            id="the-timeout-rejects",
        ),
    ],
)
def test_a_rejection_is_recorded_and_skips_finalize(
    tmp_path: Path,
    requests: list[dict[str, Any]],
    event: dict[str, Any],
    actor: str | None,
    reason: str,
) -> None:
    month = publish(tmp_path, sample_statement(), approval="manual")
    operator, ti = month.operator(), TaskInstance()
    with pytest.raises(TaskAwaitingInput):
        operator.execute(context(operator, ti))
    manifest_before = (month.output / MONTH / "manifest.json").read_bytes()

    with pytest.raises(DownstreamTasksSkipped) as skipped:
        operator.execute_complete(context(operator, ti), event)

    assert skipped.value.tasks == ["finalize"]
    (rejected,) = month.audit_events()
    assert (rejected["event"], rejected["actor"], rejected["reason"]) == ("rejected", actor, reason)
    assert rejected["version"] == 1
    assert (month.output / MONTH / "manifest.json").read_bytes() == manifest_before
    assert read_published(month.output, MONTH)["status"] == "draft"  # type: ignore[index]


def test_auto_approval_asks_nobody(tmp_path: Path, requests: list[dict[str, Any]]) -> None:
    month = publish(tmp_path, sample_statement(), approval="auto")
    operator = month.operator()

    result = operator.execute(context(operator, TaskInstance()))

    assert requests == [], "no Required Actions request"
    assert (result["decision"], result["by"], result["how"]) == ("approved", AUTO_APPROVER, "auto")
    assert result["by"] == "auto (approval: auto in chargeback.yaml)"
    assert result["reviewed"] == month.published


@pytest.mark.parametrize("approval", ["manual", "auto"])
def test_an_invoice_beyond_tolerance_fails_for_good_before_asking(
    tmp_path: Path, requests: list[dict[str, Any]], approval: str
) -> None:
    month = publish(tmp_path, beyond_tolerance(), approval=approval)
    operator = month.operator()

    with pytest.raises(AirflowFailException) as failed:
        operator.execute(context(operator, TaskInstance()))

    message = str(failed.value)
    assert "2026-10 cannot be approved" in message
    assert "179.03 USD" in message and "170.50 USD" in message, "both amounts named"
    assert "not retried" in message
    assert requests == []


def test_nothing_to_review_when_publish_wrote_no_draft(
    tmp_path: Path, requests: list[dict[str, Any]]
) -> None:
    month = publish(tmp_path, sample_statement(), approval="manual")
    unchanged = {
        "action": "unchanged",
        "month": MONTH,
        "status": "final",
        "message": "2026-10 v1 is final and computes exactly as booked: nothing written",
    }
    operator = replace(month, published=unchanged).operator()

    with pytest.raises(AirflowSkipException, match="computes exactly as booked"):
        operator.execute(context(operator, TaskInstance()))

    assert requests == []
