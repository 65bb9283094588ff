"""A month's lifecycle: draft → final, versions, and what a run may do to a published month.

A run publishes a **draft**; finance reviews it and **approves** it, which makes it
**final**: booked, so no run replaces its files again. A later run of a final month
compares what it computes with what was booked: unchanged, it writes nothing; changed,
the differences are carried as corrections into the next month that is not final. Only
an explicit **restatement**, with a reason, replaces a final month: as version N+1, a
draft to approve again, while version N moves whole, manifest included, to
``_versions/{YYYY-MM}/v{N}/`` and stays readable and verifiable.

Everything here is a pure decision over the published manifest (read back as
:class:`MonthState`); publishing, moving versions and locking are the caller's. A
refused transition raises :class:`LifecycleError`, a ``PermanentError``: no retry can
make a final month a draft again.

Manifests written before months had a lifecycle carry no ``status``: they were never
approved by anyone, so they read as draft version 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from dateutil.relativedelta import relativedelta
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from vapi_chargeback.close.tieout import InvoiceBlock
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.period import parse_month

Status = Literal["draft", "final"]
DRAFT: Status = "draft"
FINAL: Status = "final"
VERSIONS_DIR = "_versions"
MAX_REASON = 1000
"""Characters of a restatement reason: a paragraph, not a document."""
MAX_MONTHS_AHEAD = 120
"""How far :func:`next_open_month` looks: ten years of final months in a row means the
lookup is broken, not that the books are closed for a decade."""


class LifecycleError(PermanentError):
    """A refused transition: approving what is not a draft, restating without a reason …"""


class ManifestStateError(PermanentError):
    """A published manifest whose lifecycle fields cannot be read."""


class MonthState(BaseModel):
    """The lifecycle fields of one published month, as its manifest records them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    period: str
    status: Status = DRAFT
    version: int = Field(default=1, ge=1)
    run_id: str | None = None
    """The run that published this set."""
    approved_by: str | None = None
    approved_at: AwareDatetime | None = None
    approved_run_id: str | None = None
    """The run whose review step recorded the approval."""
    restatement_reason: str | None = None
    """Why this version replaced the previous final one (version 2 onwards)."""
    invoice: InvoiceBlock | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MonthState:
        parse_month(self.period)
        approval = (self.approved_by, self.approved_at)
        if self.status == FINAL and None in approval:
            raise ValueError("a final month records approved_by and approved_at")
        if self.status == DRAFT and approval != (None, None):
            raise ValueError("a draft has no approved_by or approved_at")
        return self

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> MonthState:
        """The state a published manifest records; ``ManifestStateError`` if it is unreadable."""
        try:
            return cls.model_validate(dict(manifest))
        except ValidationError as error:
            period = manifest.get("period", "?")
            problems = "; ".join(
                f"{'.'.join(map(str, item['loc'])) or 'manifest'}: {item['msg']}"
                for item in error.errors()
            )
            raise ManifestStateError(
                f"manifest.json of {period}: lifecycle fields unreadable ({problems}); the"
                " month's published set was altered by hand or by another tool: republish it"
            ) from None

    def manifest_fields(self) -> dict[str, Any]:
        """The lifecycle fields the manifest carries (``invoice`` comes from the tie-out)."""
        return {
            "status": self.status,
            "version": self.version,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "approved_run_id": self.approved_run_id,
            "restatement_reason": self.restatement_reason,
        }

    def describe(self) -> str:
        if self.status == FINAL and self.approved_at is not None:
            when = self.approved_at.astimezone(UTC).isoformat(timespec="seconds")
            return (
                f"{self.period} v{self.version} is final (approved by {self.approved_by} at {when})"
            )
        return f"{self.period} v{self.version} is a draft"


class RunAction(StrEnum):
    PUBLISH_DRAFT = "publish-draft"
    """Publish the month as a draft, replacing a draft of the same version if there is one."""
    UNCHANGED = "unchanged"
    """The month is final and computes as booked: write nothing."""
    CARRY_CORRECTIONS = "carry-corrections"
    """The month is final and computes differently: carry the deltas into ``carry_to``."""
    RESTATE = "restate"
    """Move final version N to ``_versions`` and publish version N+1 as a draft."""


@dataclass(frozen=True)
class RunPlan:
    period: str
    action: RunAction
    version: int
    """The version the run publishes (draft, restatement) or the final one it leaves alone."""
    message: str
    """What the run does and why, for the run log."""
    supersedes: int | None = None
    """Restatement: the final version that moves to :func:`version_folder`."""
    carry_to: str | None = None
    """Carrying corrections: the month that receives them."""
    reason: str | None = None
    """Why the version exists: a restatement's reason as given (stripped), kept when its
    draft is replaced by a rerun; ``None`` for version 1."""

    @property
    def writes_month(self) -> bool:
        """Whether the month folder gets a new set."""
        return self.action in (RunAction.PUBLISH_DRAFT, RunAction.RESTATE)


def plan_run(
    period: str,
    state_of: Callable[[str], MonthState | None],
    *,
    changed: bool,
    restate: bool = False,
    reason: str | None = None,
) -> RunPlan:
    """What a run of ``period`` does, given what is published.

    ``state_of(month)``: the published state of a month, ``None`` if never published.
    ``changed``: whether the run's lines differ from the booked ones (plus corrections
    already carried), i.e. :func:`~vapi_chargeback.close.corrections.correction_lines` is
    not empty; only read when the month is final.
    """
    parse_month(period)
    state = state_of(period)
    given = (reason or "").strip()
    if given and not restate:
        raise LifecycleError(
            f"a reason was given for {period} but restate is false: set restate to true to"
            " restate the month with that reason, or run it without a reason"
        )
    if state is None or state.status == DRAFT:
        if restate:
            what = "has not been published" if state is None else "is a draft"
            raise LifecycleError(
                f"cannot restate {period}: it {what}, so nothing was booked to restate; run it"
                " again without restate, which replaces the draft"
            )
        if state is None:
            return RunPlan(period, RunAction.PUBLISH_DRAFT, 1, f"{period}: publishing draft v1")
        return RunPlan(
            period,
            RunAction.PUBLISH_DRAFT,
            state.version,
            f"{period}: replacing draft v{state.version} with a new draft v{state.version}",
            reason=state.restatement_reason,
        )
    if restate:
        why = require_reason(period, reason)
        version = state.version + 1
        return RunPlan(
            period,
            RunAction.RESTATE,
            version,
            f"{state.describe()}; restating it as draft v{version} ({why}); v{state.version}"
            f" moves to {version_folder(period, state.version)}",
            supersedes=state.version,
            reason=why,
        )
    if not changed:
        return RunPlan(
            period,
            RunAction.UNCHANGED,
            state.version,
            f"{state.describe()} and computes exactly as booked: nothing written",
        )
    target = next_open_month(period, state_of)
    return RunPlan(
        period,
        RunAction.CARRY_CORRECTIONS,
        state.version,
        f"{state.describe()} and now computes differently: its files stay as booked and the"
        f" differences are carried into {target} as correction:{period} lines",
        carry_to=target,
    )


def require_reason(period: str, reason: str | None) -> str:
    """The restatement reason, stripped; refused when blank, too long or not one line."""
    given = (reason or "").strip()
    if not given:
        raise LifecycleError(
            f"restating {period} needs a reason (the DAG param reason): say why the booked"
            " month must change; it is recorded in the new version's manifest and the audit"
            " trail"
        )
    if len(given) > MAX_REASON:
        raise LifecycleError(
            f"the reason to restate {period} is {len(given)} characters, over {MAX_REASON};"
            " shorten it and point to a ticket for the details"
        )
    if not given.isprintable():
        raise LifecycleError(
            f"the reason to restate {period} holds a line break or control character; write"
            " it on one line"
        )
    return given


def next_open_month(period: str, state_of: Callable[[str], MonthState | None]) -> str:
    """The first month after ``period`` that is not final (a draft, or not published yet)."""
    first = parse_month(period)
    for ahead in range(1, MAX_MONTHS_AHEAD + 1):
        month = (first + relativedelta(months=ahead)).strftime("%Y-%m")
        state = state_of(month)
        if state is None or state.status == DRAFT:
            return month
    raise LifecycleError(
        f"the {MAX_MONTHS_AHEAD} months after {period} are all final: no month can take its"
        " corrections; check the output location"
    )


def require_draft(state: MonthState | None, period: str, action: str) -> MonthState:
    """``state`` when it is a draft; else why ``action`` (approve, reject) is refused."""
    if state is None:
        raise LifecycleError(
            f"cannot {action} {period}: no statement of {period} is published; run the month first"
        )
    if state.status != DRAFT:
        raise LifecycleError(
            f"cannot {action} {period}: {state.describe()}, not a draft. A booked month is"
            " never changed by approval; to change it, restate it (restate: true with a reason)"
        )
    return state


def approve(
    state: MonthState | None,
    period: str,
    *,
    approved_by: str,
    at: datetime,
    run_id: str,
    reviewed_run_id: str | None = None,
) -> MonthState:
    """The final state of the draft ``state``, approved by ``approved_by`` at ``at``.

    ``reviewed_run_id``: the run whose draft the approver saw; if another run has
    replaced the draft since, the approval is refused rather than applied to figures
    nobody reviewed. A draft whose invoice tie-out is beyond tolerance is refused with
    the tie-out's message (both amounts, what to check).
    """
    draft = require_draft(state, period, "approve")
    who = approved_by.strip()
    if not who:
        raise LifecycleError(f"approving {period} needs the approver's name; none was recorded")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"approval time {at.isoformat()} has no time zone; pass an aware time")
    if reviewed_run_id is not None and reviewed_run_id != draft.run_id:
        raise LifecycleError(
            f"cannot approve {period}: the draft reviewed (run {reviewed_run_id}) was replaced"
            f" by run {draft.run_id}'s draft v{draft.version}; review the new draft and"
            " approve that"
        )
    if draft.invoice is not None and not draft.invoice.approvable:
        raise LifecycleError(draft.invoice.message)
    return draft.model_copy(
        update={
            "status": FINAL,
            "approved_by": who,
            "approved_at": at.astimezone(UTC),
            "approved_run_id": run_id,
        }
    )


def draft_state(plan: RunPlan, run_id: str, invoice: InvoiceBlock | None = None) -> MonthState:
    """The draft state a publishing run records for ``plan`` (a draft or a restatement)."""
    if not plan.writes_month:
        raise ValueError(f"a {plan.action} run of {plan.period} publishes no state")
    return MonthState(
        period=plan.period,
        version=plan.version,
        run_id=run_id,
        restatement_reason=plan.reason,
        invoice=invoice,
    )


def version_folder(period: str, version: int) -> str:
    """Where a superseded version lives, relative to the output root."""
    parse_month(period)
    if version < 1:
        raise ValueError(f"version {version} is not >= 1")
    return f"{VERSIONS_DIR}/{period}/v{version}"
