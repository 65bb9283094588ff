"""Month lifecycle: what a run may do to a published month, and who may approve it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from vapi_chargeback.close.invoices import Invoice
from vapi_chargeback.close.lifecycle import (
    MAX_MONTHS_AHEAD,
    LifecycleError,
    ManifestStateError,
    MonthState,
    RunAction,
    approve,
    draft_state,
    next_open_month,
    plan_run,
    require_draft,
    version_folder,
)
from vapi_chargeback.close.tieout import InvoiceBlock, tie_out
from vapi_chargeback.errors import PermanentError

from support.close_lines import COMPONENTS, line

OCTOBER = "2026-10"
AT = datetime(2026, 11, 3, 10, 15, tzinfo=UTC)


def draft(period: str = OCTOBER, version: int = 1, **fields: object) -> MonthState:
    return MonthState.model_validate(
        {"period": period, "version": version, "run_id": "run-draft", **fields}
    )


def final(period: str = OCTOBER, version: int = 1) -> MonthState:
    return draft(period, version, status="final", approved_by="fiona", approved_at=AT)


def states(*known: MonthState) -> dict[str, MonthState]:
    return {state.period: state for state in known}


# --- reading manifests -------------------------------------------------------------------


def test_a_manifest_from_before_the_lifecycle_reads_as_draft_v1() -> None:
    state = MonthState.from_manifest({"period": OCTOBER, "run_id": "old", "files": {}})

    assert (state.status, state.version, state.run_id) == ("draft", 1, "old")


def test_manifest_fields_round_trip() -> None:
    block = tie_out(
        OCTOBER,
        [line("sales", "100.00")],
        Invoice(OCTOBER, "INV-1", Decimal("100.50"), 2),
        components=COMPONENTS,
    ).manifest_block()
    state = final().model_copy(
        update={"approved_run_id": "run-review", "invoice": InvoiceBlock.model_validate(block)}
    )
    manifest = {"period": OCTOBER, "run_id": "run-draft", **state.manifest_fields()}
    manifest["invoice"] = block

    assert MonthState.from_manifest(manifest) == state
    assert state.manifest_fields() == {
        "status": "final",
        "version": 1,
        "approved_by": "fiona",
        "approved_at": "2026-11-03T10:15:00+00:00",
        "approved_run_id": "run-review",
        "restatement_reason": None,
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"status": "final"}, "records approved_by", id="final-without-approver"),
        pytest.param({"approved_by": "x", "approved_at": AT}, "draft has no", id="draft-approved"),
        pytest.param({"status": "booked"}, "status", id="unknown-status"),
        pytest.param({"version": 0}, "version", id="version-zero"),
    ],
)
def test_unreadable_lifecycle_fields_are_a_permanent_error(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ManifestStateError, match=message) as caught:
        MonthState.from_manifest({"period": OCTOBER, **fields})

    assert "manifest.json of 2026-10" in str(caught.value)
    assert isinstance(caught.value, PermanentError)


# --- what a run does ---------------------------------------------------------------------


def test_an_unpublished_month_is_published_as_draft_v1() -> None:
    result = plan_run(OCTOBER, states().get, changed=True)

    assert (result.action, result.version, result.writes_month) == ("publish-draft", 1, True)


def test_a_draft_is_replaced_at_its_version_keeping_its_restatement_reason() -> None:
    result = plan_run(
        OCTOBER, states(draft(version=2, restatement_reason="fee")).get, changed=False
    )

    assert (result.action, result.version, result.reason) == (RunAction.PUBLISH_DRAFT, 2, "fee")


def test_a_final_month_that_computes_as_booked_writes_nothing() -> None:
    result = plan_run(OCTOBER, states(final()).get, changed=False)

    assert result.action == RunAction.UNCHANGED
    assert not result.writes_month
    assert "nothing written" in result.message


@pytest.mark.parametrize(
    ("later", "target"),
    [
        pytest.param([], "2026-11", id="next-month-unpublished"),
        pytest.param([draft("2026-11")], "2026-11", id="next-month-draft"),
        pytest.param([final("2026-11"), final("2026-12")], "2027-01", id="skips-final-months"),
    ],
)
def test_a_changed_final_month_carries_corrections_into_the_next_open_month(
    later: list[MonthState], target: str
) -> None:
    result = plan_run(OCTOBER, states(final(), *later).get, changed=True)

    assert result.action == RunAction.CARRY_CORRECTIONS
    assert result.carry_to == target
    assert not result.writes_month
    assert f"carried into {target} as correction:2026-10" in result.message


def test_restating_a_final_month_makes_the_next_version_a_draft() -> None:
    result = plan_run(
        OCTOBER, states(final(version=1)).get, changed=False, restate=True, reason="  fee wrong "
    )

    assert (result.action, result.version, result.supersedes) == (RunAction.RESTATE, 2, 1)
    assert result.reason == "fee wrong"
    assert result.writes_month
    assert "_versions/2026-10/v1" in result.message
    state = draft_state(result, "run-restate")
    assert (state.status, state.version, state.restatement_reason) == ("draft", 2, "fee wrong")


@pytest.mark.parametrize(
    ("known", "restate", "reason", "message"),
    [
        pytest.param([final()], True, None, "needs a reason", id="restate-without-reason"),
        pytest.param([final()], True, "   ", "needs a reason", id="restate-blank-reason"),
        pytest.param([final()], True, "a\nb", "on one line", id="restate-two-lines"),
        pytest.param([final()], True, "x" * 1001, "over 1000", id="restate-long-reason"),
        pytest.param([draft()], True, "why", "it is a draft", id="restate-a-draft"),
        pytest.param([], True, "why", "has not been published", id="restate-unpublished"),
        pytest.param([final()], False, "why", "restate is false", id="reason-without-restate"),
    ],
)
def test_refused_runs_say_what_to_do(
    known: list[MonthState], restate: bool, reason: str | None, message: str
) -> None:
    with pytest.raises(LifecycleError, match=message) as caught:
        plan_run(OCTOBER, states(*known).get, changed=True, restate=restate, reason=reason)

    assert "2026-10" in str(caught.value)
    assert isinstance(caught.value, PermanentError)


def test_next_open_month_gives_up_after_a_bounded_look_ahead() -> None:
    with pytest.raises(LifecycleError, match=f"{MAX_MONTHS_AHEAD} months after 2026-10"):
        next_open_month(OCTOBER, final)
    assert next_open_month("2026-12", states().get) == "2027-01"


# --- approval ------------------------------------------------------------------------------


def test_approving_a_draft_makes_it_final_with_who_when_and_which_run() -> None:
    berlin = timezone(timedelta(hours=1))

    state = approve(
        draft(),
        OCTOBER,
        approved_by=" fiona ",
        at=datetime(2026, 11, 3, 11, 15, tzinfo=berlin),
        run_id="run-review",
        reviewed_run_id="run-draft",
    )

    assert (state.status, state.approved_by, state.approved_run_id) == (
        "final",
        "fiona",
        "run-review",
    )
    assert state.approved_at == AT
    assert state.approved_at is not None and state.approved_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        pytest.param(None, "no statement of 2026-10 is published", id="unpublished"),
        pytest.param(final(), r"is final \(approved by fiona", id="final"),
    ],
)
def test_approving_what_is_not_a_draft_is_refused(state: MonthState | None, message: str) -> None:
    with pytest.raises(LifecycleError, match=message) as caught:
        approve(state, OCTOBER, approved_by="fiona", at=AT, run_id="r")

    assert "cannot approve 2026-10" in str(caught.value)


def test_rejecting_follows_the_same_rule() -> None:
    assert require_draft(draft(), OCTOBER, "reject") == draft()
    with pytest.raises(LifecycleError, match="cannot reject 2026-10"):
        require_draft(final(), OCTOBER, "reject")


def test_an_approval_of_a_draft_replaced_since_its_review_is_refused() -> None:
    with pytest.raises(LifecycleError, match="reviewed \\(run run-old\\) was replaced"):
        approve(draft(), OCTOBER, approved_by="fiona", at=AT, run_id="r", reviewed_run_id="run-old")


def test_a_draft_beyond_the_invoice_tolerance_cannot_be_approved() -> None:
    tied = tie_out(
        OCTOBER,
        [line("sales", "1000.00")],
        Invoice(OCTOBER, "INV-9", Decimal("1050.00"), 3),
        components=COMPONENTS,
    )
    state = draft(invoice=tied.manifest_block())

    with pytest.raises(LifecycleError) as caught:
        approve(state, OCTOBER, approved_by="fiona", at=AT, run_id="r")

    assert "1050.00" in str(caught.value)
    assert "1000.00" in str(caught.value)


def test_an_approval_needs_a_name_and_an_aware_time() -> None:
    with pytest.raises(LifecycleError, match="approver's name"):
        approve(draft(), OCTOBER, approved_by=" ", at=AT, run_id="r")
    with pytest.raises(ValueError, match="no time zone"):
        approve(draft(), OCTOBER, approved_by="fiona", at=datetime(2026, 11, 3), run_id="r")


def test_superseded_versions_live_under_versions() -> None:
    assert version_folder(OCTOBER, 1) == "_versions/2026-10/v1"
    with pytest.raises(ValueError):
        version_folder(OCTOBER, 0)
