"""The ``review`` task: finance approves or rejects a published draft in Airflow's Required Actions.

:class:`StatementReview` is the standard provider's ``ApprovalOperator`` (Airflow ≥ 3.1,
"human in the loop"): the task writes a request — subject, a body that says what to check
and where the files are — and waits, holding no worker slot, until someone answers on the
Required Actions page of the UI or through the REST API
(``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/review/-1/hitlDetails``). On
Airflow 3.3 the task waits in the ``awaiting_input`` state and the scheduler's sweep
enforces the timeout, ``approval_timeout_days`` from chargeback.yaml, read when the task
runs; the default answer after it is Reject.

What the task does, decided by :func:`vapi_chargeback.airflow.steps.review` from what
publish wrote:

- publish wrote no draft (a final month that computes as booked, or whose differences
  were carried into a later month): nothing to review, the task is skipped;
- the draft cannot be approved (its invoice is beyond tolerance, or another run replaced
  it): the task fails for good before asking, naming both amounts;
- ``approval: auto``: no question; the approval is recorded as :data:`AUTO_APPROVER`;
- else it asks, assigned to chargeback.yaml's ``approvers`` (user names or e-mails):
  the api-server refuses anyone else's answer with a 403, from the Required Actions page
  and over REST alike (:mod:`vapi_chargeback.airflow.auth_manager` matches the names; no
  ``approvers`` leaves it to whoever may answer the DAG's actions). **Approve**:
  ``finalize`` makes the month final with the responder's name and time, as the operator
  reports them, not re-derived. **Reject**, by a person or
  the timeout: the rejection goes to the audit trail, ``finalize`` is skipped and the
  month stays a draft (``deliver`` mails it only with ``deliver_drafts: true``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from vapi_chargeback.airflow import steps
from vapi_chargeback.airflow.steps import ReviewDecision

if TYPE_CHECKING:
    from airflow.sdk.execution_time.hitl import HITLUser

AUTO_APPROVER = "auto (approval: auto in chargeback.yaml)"
DEFAULT_TIMEOUT = timedelta(days=7)
"""Only until the task runs: it then waits ``approval_timeout_days`` from the config."""
REQUEST_KEY = "review_request"
"""XCom key of what the approver was shown; the answer is handled in another process."""
COMMENT = "comment"
STATEMENTS_PAGE = "/plugin/chargeback-statements"


class StatementReview(ApprovalOperator):
    """Approve or reject the month a run published; see the module docstring."""

    template_fields = (*ApprovalOperator.template_fields, "run", "published")

    def __init__(self, *, run: Any, published: Any, **kwargs: Any) -> None:
        # The DAG's params, merged in by Airflow: the operator keeps only its own (the form).
        kwargs.pop("params", None)
        super().__init__(
            subject="Approve the chargeback statements",
            defaults=[ApprovalOperator.REJECT],
            # Set here so the DAG's execution_timeout is not taken for the response
            # timeout; execute replaces it with the config's approval_timeout_days.
            response_timeout=DEFAULT_TIMEOUT,
            params={
                COMMENT: Param(
                    None,
                    source="task",
                    type=["null", "string"],
                    title="Comment",
                    description="Why you reject the month (kept in its audit trail).",
                )
            },
            **kwargs,
        )
        self.run = run
        self.published = published

    def execute(self, context: Any) -> Any:
        request = steps.review(self.run, self.published)
        month = request["month"]
        if request["action"] == "skip":
            raise AirflowSkipException(request["message"])
        if request["action"] == "auto":
            self.log.info("%s: approval: auto in chargeback.yaml, approved without asking", month)
            return ReviewDecision(
                month=month,
                decision="approved",
                by=AUTO_APPROVER,
                at=datetime.now(UTC),
                how="auto",
                reviewed=dict(self.published),
            ).model_dump(mode="json")
        summary = request["summary"]
        self.subject = f"Approve the chargeback statements for {month}"
        self.body = request_body(summary, statements_url())
        self.response_timeout = timedelta(days=request["timeout_days"])
        self.assigned_users = assignees(self.run)
        context["ti"].xcom_push(key=REQUEST_KEY, value=request)
        self.log.info(
            "%s: waiting up to %d days for an answer (then Reject); answer at %s",
            month,
            request["timeout_days"],
            required_actions_url(context),
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" in event:
            return super().execute_complete(context=context, event=event)  # raises
        request = context["ti"].xcom_pull(task_ids=self.task_id, key=REQUEST_KEY)
        decision = decision_from(event, request["month"], dict(self.published))
        if decision.decision == "rejected":
            # Recorded before the operator skips finalize: if recording fails, the task
            # fails and is retried, rather than the month ending rejected without a record.
            steps.reject(self.run, decision, request["timeout_days"])
            self.log.info(
                "%s stays a draft: rejected by %s; finalize is skipped",
                decision.month,
                decision.by or f"the {request['timeout_days']}-day timeout",
            )
        super().execute_complete(context=context, event=event)
        return decision.model_dump(mode="json")


def decision_from(event: dict[str, Any], month: str, reviewed: dict[str, Any]) -> ReviewDecision:
    """The answer a resume event carries: a person's, or the timeout's default (no user)."""
    user = event.get("responded_by_user") or {}
    timed_out = bool(event.get("timedout")) or not user
    comment = str((event.get("params_input") or {}).get(COMMENT) or "").strip()
    return ReviewDecision(
        month=month,
        decision="approved"
        if event["chosen_options"] == [ApprovalOperator.APPROVE]
        else "rejected",
        by=None if timed_out else str(user.get("name") or user.get("id")),
        at=_aware(event["responded_at"]),
        how="timeout" if timed_out else "person",
        comment=comment or None,
        reviewed=reviewed,
    )


def assignees(run: Any) -> list[HITLUser]:
    """The config's ``approvers``, read when the task runs, as the request's assigned users.

    Each entry is both id and name: the auth manager matches it against the responder's id,
    user name or e-mail (``auth_manager``), so the config names people, not database ids.
    """
    from vapi_chargeback.config import load_config
    from vapi_chargeback.pipeline import RunInfo

    config = load_config(Path(RunInfo.model_validate(run).config_path))
    return [{"id": approver, "name": approver} for approver in config.approvers]


def request_body(summary: dict[str, Any], page_url: str | None) -> str:
    """The request's Markdown body: the publish step's facts and what to check."""
    body = str(summary["body"])
    if page_url:
        body += f"\n\nOpen the statements in Airflow: [Chargeback statements]({page_url})"
    return body


def statements_url() -> str | None:
    """The statements page under ``[api] base_url``; ``None`` where that is not set."""
    from airflow.sdk.configuration import conf

    base = conf.get("api", "base_url", fallback=None)
    return f"{base.rstrip('/')}{STATEMENTS_PAGE}" if base else None


def required_actions_url(context: Any) -> str:
    """Where a person answers this task in the UI (the path alone without ``[api] base_url``)."""
    ti = context["ti"]
    path = f"/dags/{ti.dag_id}/runs/{ti.run_id}/tasks/{ti.task_id}/required_actions"
    try:
        return str(StatementReview.generate_link_to_ui_from_context(context=context))
    except ValueError:
        return f"{path} (set [api] base_url for a full link)"


def _aware(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
