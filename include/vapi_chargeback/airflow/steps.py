"""The chargeback DAG's task bodies: Airflow's context in, one pipeline step, a small dict out.

Each DAG task is one line calling a function here, so the DAG file stays wiring and the
import/validate/``open_path`` boilerplate lives once. Every function goes through
:func:`failure_policy`, the project's one error policy on the Airflow side: an error
deriving from :class:`~vapi_chargeback.errors.PermanentError` (bad config or mapping,
a 400 or 401, a refused month, a statement that does not reconcile …) becomes Airflow's
non-retryable ``AirflowFailException`` — the task fails on its first try, with the
error's own message — while anything else (a 503 that outlasted the client's retries, a
storage timeout, a killed worker) is left to Airflow's retries.

Parsing the DAG imports this module, so heavy modules (the pipeline, pandas, httpx) are
imported inside the functions, at run time only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from airflow.sdk.exceptions import AirflowFailException
from pydantic import AwareDatetime, BaseModel, ConfigDict

from vapi_chargeback.errors import PermanentError

P = ParamSpec("P")
R = TypeVar("R")


def failure_policy(step: Callable[P, R]) -> Callable[P, R]:
    """Fail the task for good on a :class:`PermanentError`; let Airflow retry the rest."""

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            # The run's folder is leased while the step works in it: retention skips it.
            with work_lease(args):
                return step(*args, **kwargs)
        except PermanentError as error:
            raise AirflowFailException(
                f"{type(error).__name__}: {error}\n(not retried: a retry cannot fix this;"
                " fix the input, then clear the task or trigger the month again)"
            ) from error

    return run


def work_lease(args: Sequence[Any]) -> AbstractContextManager[None]:
    """The lease of the work folder of the run among a step's arguments (none: no lease).

    Retention (``housekeeping.tidy_runs``) skips a leased folder, so a step never loses
    the folder it works in.
    """
    for arg in args:
        if isinstance(arg, dict) and isinstance(arg.get("work_url"), str):
            from vapi_chargeback.airflow.settings import storage_path
            from vapi_chargeback.runfolders import run_lease

            return run_lease(storage_path(arg["work_url"]))
    return nullcontext()


class ReviewDecision(BaseModel):
    """The review task's result (its XCom): who decided what, when, about which draft."""

    model_config = ConfigDict(frozen=True)

    month: str
    decision: Literal["approved", "rejected"]
    by: str | None
    """The responder's name as Airflow reports it; ``None`` when the timeout decided."""
    at: AwareDatetime
    how: Literal["person", "auto", "timeout"]
    comment: str | None = None
    reviewed: dict[str, Any]
    """The publish task's result: the draft that was reviewed, which ``finalize`` approves."""

    def reason(self, timeout_days: int) -> str:
        """A rejection's reason for the audit trail."""
        if self.how == "timeout":
            return (
                f"no answer within {timeout_days} days: the approval request timed out and took"
                " its default, Reject"
            )
        return self.comment or "rejected in the review step, without a comment"


@failure_policy
def plan(context: Any, project_dir: Path) -> dict[str, Any]:
    from vapi_chargeback.airflow.settings import run_settings, storage_path
    from vapi_chargeback.pipeline import plan_run

    settings = run_settings(context, project_dir)
    return plan_run(settings, open_path=storage_path).model_dump(mode="json")


@failure_policy
def fetch(run: dict[str, Any], batch: int) -> dict[str, Any]:
    from vapi_chargeback.airflow.hook import VapiAnalyticsHook
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.pipeline import RunInfo, fetch_batch

    info = RunInfo.model_validate(run)
    with VapiAnalyticsHook().get_conn() as client:
        return fetch_batch(info, batch, client, open_path=storage_path).model_dump(mode="json")


@failure_policy
def shards(context: Any, fetched: list[dict[str, Any]]) -> list[int]:
    """The shard numbers allocate is mapped over: the param ``allocate_shards``, else by the
    month's size (``sharded.shard_count``)."""
    from vapi_chargeback.sharded import shard_count

    return list(range(shard_count(fetched, context["params"].get("allocate_shards"))))


@failure_policy
def allocate_shard(
    run: dict[str, Any], fetched: list[dict[str, Any]], shard: int, shards: list[int]
) -> dict[str, Any]:
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.pipeline import RunInfo
    from vapi_chargeback.sharded import allocate_shard_run

    return allocate_shard_run(
        RunInfo.model_validate(run),
        list(fetched),
        shard,
        len(shards),
        open_path=storage_path,
    )


@failure_policy
def allocate(
    run: dict[str, Any], fetched: list[dict[str, Any]], parts: list[dict[str, Any]]
) -> dict[str, Any]:
    """Merge the shards' exact sums and round: the allocated statement, for reconcile."""
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.pipeline import RunInfo
    from vapi_chargeback.sharded import merge_run

    info = RunInfo.model_validate(run)
    return merge_run(info, list(fetched), list(parts), open_path=storage_path)


@failure_policy
def reconcile(run: dict[str, Any], allocated: dict[str, Any]) -> dict[str, Any]:
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.pipeline import RunInfo, reconcile_run

    return reconcile_run(RunInfo.model_validate(run), allocated, open_path=storage_path)


@failure_policy
def verify(
    context: Any, run: dict[str, Any], allocated: dict[str, Any], reconciled: dict[str, Any]
) -> dict[str, Any]:
    """Recount the month from ``GET /call`` when the param ``verify_calls`` (else the config's
    ``verification.enabled``) asks for it; hand publish reconcile's result, or the verified
    statement. Beyond tolerance ``VerificationError`` (permanent) stops the run before publish."""
    from vapi_chargeback.airflow.hook import VapiAnalyticsHook
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.pipeline import RunInfo
    from vapi_chargeback.verify.step import verification_enabled, verify_run

    info = RunInfo.model_validate(run)
    if not verification_enabled(info, context["params"].get("verify_calls")):
        return dict(reconciled)
    with VapiAnalyticsHook().get_conn() as client:
        return verify_run(info, allocated, reconciled, client, open_path=storage_path)


@failure_policy
def publish(run: dict[str, Any], reconciled: dict[str, Any]) -> dict[str, Any]:
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.pipeline import RunInfo, publish_run

    return publish_run(RunInfo.model_validate(run), reconciled, open_path=storage_path)


@failure_policy
def review(run: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
    """What the review task does with what publish wrote: ``skip``, ``auto`` or ``ask``.

    Refuses (``LifecycleError``, so the task fails on its first try, before anyone is
    asked) a draft that cannot be approved — its invoice beyond tolerance, with both
    amounts, or a draft another run has replaced since.
    """
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.close.lifecycle import DRAFT, LifecycleError
    from vapi_chargeback.config import load_config
    from vapi_chargeback.pipeline import RunInfo, review_summary

    info = RunInfo.model_validate(run)
    if published.get("status") != DRAFT:
        return {
            "action": "skip",
            "month": info.month,
            "message": f"nothing to review: {published.get('message') or published['action']}",
        }
    summary = review_summary(info, published, open_path=storage_path)
    if not summary["approvable"]:
        raise LifecycleError(f"{info.month} cannot be approved: " + "; ".join(summary["blockers"]))
    config = load_config(Path(info.config_path))
    return {
        "action": "auto" if config.approval == "auto" else "ask",
        "month": info.month,
        "timeout_days": config.approval_timeout_days,
        "summary": summary,
    }


@failure_policy
def finalize(run: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """Make the reviewed draft final with the approver and time the review task recorded."""
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.pipeline import RunInfo, finalize_run

    approval = ReviewDecision.model_validate(decision)
    return finalize_run(
        RunInfo.model_validate(run),
        approved_by=approval.by or "",
        approved_at=approval.at,
        reviewed=approval.reviewed,
        open_path=storage_path,
    )


@failure_policy
def reject(run: dict[str, Any], decision: ReviewDecision, timeout_days: int) -> dict[str, Any]:
    """Record a rejection (a person's or the timeout's) in the month's audit trail."""
    from vapi_chargeback.airflow.settings import storage_path
    from vapi_chargeback.pipeline import RunInfo, reject_run

    return reject_run(
        RunInfo.model_validate(run),
        rejected_by=decision.by,
        at=decision.at,
        reason=decision.reason(timeout_days),
        open_path=storage_path,
    )


@failure_policy
def deliver(context: Any, run: dict[str, Any]) -> dict[str, Any]:
    from vapi_chargeback.airflow.delivery import deliver_task

    return deliver_task(context, run)
