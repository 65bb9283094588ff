"""Publishing under the lifecycle: what a run does to a month, and how approval makes it final.

:mod:`~vapi_chargeback.close.lifecycle` decides; this module carries the decision out on
the output storage, always under the month's lock (``storage.month_lock``), so that a
rerun and an approval of one month never interleave:

- a month that is not final gets a **draft** (its version kept; from version 2 on with
  the lines that changed against the previous version);
- a **final** month is compared with its booked lines, read back from its published
  CSV: unchanged, nothing is written; changed, the differences replace the month's
  pending corrections in the next open month (``close.store``), under that month's lock
  too, and the final month's files stay byte-identical;
- a **restatement** keeps the final set under ``_versions/`` (``storage.keep_version``),
  withdraws the corrections of it that were not booked yet (the new version recomputes
  the month whole), and publishes the next version as a draft;
- an **approval** re-renders the reviewed draft as final and swaps it in, refused unless
  the month is still exactly that draft (and carries exactly the corrections pending
  for it, which count as booked once it is final).

Each step records its event in the audit trail (``close.audit``) with the files' hashes.
The pipeline's steps (``pipeline.publish_run``, ``finalize_run``, ``reject_run``,
``review_summary``) call these with the run's storage paths.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from vapi_chargeback import statement_json
from vapi_chargeback.close import lifecycle
from vapi_chargeback.close.audit import AuditEvent, record_event
from vapi_chargeback.close.corrections import CorrectionLine, corrected_period, correction_lines
from vapi_chargeback.close.ids import StatementIds
from vapi_chargeback.close.lifecycle import LifecycleError, MonthState, RunAction, RunPlan
from vapi_chargeback.close.store import (
    CorrectionsFile,
    CorrectionsOf,
    corrections_file,
    corrections_into,
    corrections_of,
    manifest_ids,
    published_lines,
    published_state,
    remove_corrections,
    split_corrections,
    state_reader,
    write_corrections,
)
from vapi_chargeback.errors import ChargebackError
from vapi_chargeback.statement import DRAFT, FINAL, ChangesVs, ChargebackLine, Statement
from vapi_chargeback.statements.manifest import MANIFEST_NAME
from vapi_chargeback.storage import (
    PublishResult,
    keep_version,
    month_lock,
    publish_statement,
    read_published,
    recover_month,
)

log = logging.getLogger(__name__)

PUBLISHED_FILE = "statement-published.json"
"""In the run's work folder: the statement as published (draft, version, changes), what
an approval makes final."""

StoragePath = Any
"""A ``upath.UPath`` or Airflow's ``ObjectStoragePath``: the output root or a work folder."""


def publish_month(
    output: StoragePath,
    work: StoragePath,
    statement: Statement,
    *,
    run_id: str,
    restate: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Publish ``statement`` (reconciled) as the month's lifecycle allows; what was done.

    ``action``: ``draft`` or ``restated`` (a draft was published; ``statement`` and
    ``sha256`` name the published statement in ``work``), ``unchanged`` or
    ``corrections`` (the month is final; nothing of it was written).
    """
    period = statement.period
    with month_lock(output, period):
        recover_month(output, period)
        state_of = state_reader(output)
        state = state_of(period)
        comparison = None
        if state is not None and state.status == FINAL and not restate:
            comparison = _compare_with_booked(output, statement, state, state_of)
        plan = lifecycle.plan_run(
            period,
            state_of,
            changed=comparison is not None and comparison.changed,
            restate=restate,
            reason=reason,
        )
        log.info("%s", plan.message)
        if plan.action == RunAction.UNCHANGED:
            return _unchanged(output, plan, run_id)
        if comparison is not None and plan.action == RunAction.CARRY_CORRECTIONS:
            return _carry_corrections(output, plan, comparison, run_id)
        withdrawn: list[CorrectionsFile] = []
        kept_at = None
        if plan.action == RunAction.RESTATE and plan.supersedes is not None:
            kept_at = keep_version(output, period, plan.supersedes)
            withdrawn = _withdraw_pending(output, period, plan.supersedes, state_of)
        return _publish_draft(output, work, statement, plan, run_id, kept_at, withdrawn)


@dataclass(frozen=True)
class _Comparison:
    """A final month's recomputed lines held against the booked ones."""

    state: MonthState
    ids: StatementIds
    needed: list[CorrectionLine]
    """What must be pending for booked + carried + pending = recomputed."""
    corrections: CorrectionsOf
    target: str | None
    """The next open month, when the month has corrections to carry or withdraw."""

    @property
    def changed(self) -> bool:
        """Whether the pending corrections are not already exactly what is needed, where
        they are needed: a second rerun over the same late calls writes nothing. Compared
        as carried (``_as_carried``), so an assistant name learnt since changes nothing."""
        pending = self.corrections.pending
        if not self.needed:
            return bool(pending)
        return _as_carried([item.line for item in self.needed]) != _as_carried(
            [line for item in pending for line in item.lines]
        ) or any(item.carried_to != self.target for item in pending)


def _compare_with_booked(
    output: StoragePath,
    statement: Statement,
    state: MonthState,
    state_of: Callable[[str], MonthState | None],
) -> _Comparison:
    manifest, booked = published_lines(output, statement.period)
    ids = manifest_ids(manifest, statement.statement_prefix)
    corrections = split_corrections(
        corrections_of(output, statement.period), state.version, state_of
    )
    carried = [line for item in corrections.carried for line in item.corrections]
    needed = correction_lines(statement.period, booked, statement.lines, ids, carried=carried)
    target = (
        lifecycle.next_open_month(statement.period, state_of)
        if needed or corrections.pending
        else None
    )
    return _Comparison(state, ids, needed, corrections, target)


def _unchanged(output: StoragePath, plan: RunPlan, run_id: str) -> dict[str, Any]:
    manifest = read_published(output, plan.period) or {}
    return {
        "action": "unchanged",
        "month": plan.period,
        "status": FINAL,
        "version": plan.version,
        "run_id": run_id,
        "message": plan.message,
        "folder": _month_url(output, plan.period),
        "files": sorted(manifest.get("files", {})),
        "total_usd": manifest.get("totals", {}).get("cost_usd"),
    }


def _carry_corrections(
    output: StoragePath, plan: RunPlan, comparison: _Comparison, run_id: str
) -> dict[str, Any]:
    """Replace the month's pending corrections by what it now needs, in the next open
    month, under that month's lock too (locks are taken in month order: no deadlock), so
    an approval of that month sees either all of them or none."""
    period = plan.period
    target = comparison.target or plan.carry_to
    if target is None:
        raise ValueError(f"no month to carry the corrections of {period} into")
    written: dict[str, str] = {}
    with month_lock(output, target):
        now = published_state(output, target)
        if now is not None and now.status == FINAL:
            raise ChargebackError(
                f"{target} became final while {period}'s corrections were computed; run"
                f" {period} again to carry them into the next open month"
            )
        if comparison.needed:
            item = corrections_file(
                period, comparison.state.version, target, run_id, comparison.needed
            )
            written[item.relative_path] = write_corrections(output, item)
    withdrawn = []
    for pending in comparison.corrections.pending:
        if pending.carried_to == target and comparison.needed:
            continue
        with month_lock(output, pending.carried_to):
            remove_corrections(output, pending)
        withdrawn.append(pending.relative_path)
    total = sum((item.line.cost_usd for item in comparison.needed), Decimal(0))
    receiving = published_state(output, target)
    message = (
        f"{plan.message}: {len(comparison.needed)} line(s), {total} USD"
        if comparison.needed
        else f"{period} computes as booked again: its pending corrections are withdrawn"
    )
    if receiving is not None and receiving.status == DRAFT:
        message += f"; {target}'s draft predates this: run {target} again before approving it"
    log.info("%s", message)
    record_event(
        output,
        AuditEvent(
            event="correction-carried",
            period=period,
            at=datetime.now(UTC),
            run_id=run_id,
            version=comparison.state.version,
            files=written,
            details={
                "carried_to": target,
                "statement_id": comparison.ids.org,
                "lines": str(len(comparison.needed)),
                "cost_usd": str(total),
                "withdrawn": ",".join(withdrawn),
            },
        ),
    )
    return {
        "action": "corrections",
        "month": period,
        "status": FINAL,
        "version": comparison.state.version,
        "run_id": run_id,
        "message": message,
        "carried_to": target,
        "correction_lines": len(comparison.needed),
        "corrections_usd": str(total),
        "files": sorted(written),
    }


def _withdraw_pending(
    output: StoragePath,
    period: str,
    version: int,
    state_of: Callable[[str], MonthState | None],
) -> list[CorrectionsFile]:
    """A restatement recomputes the month whole: its corrections not yet booked are void."""
    pending = split_corrections(corrections_of(output, period), version, state_of).pending
    for item in pending:
        with month_lock(output, item.carried_to):
            remove_corrections(output, item)
    return pending


def _publish_draft(
    output: StoragePath,
    work: StoragePath,
    statement: Statement,
    plan: RunPlan,
    run_id: str,
    kept_at: str | None,
    withdrawn: Sequence[CorrectionsFile],
) -> dict[str, Any]:
    changes = None
    if plan.version > 1:
        _, previous = published_lines(output, plan.period, plan.version - 1)
        changes = ChangesVs.between(plan.version - 1, previous, statement.lines)
    draft = replace(
        statement,
        status=DRAFT,
        version=plan.version,
        restatement_reason=plan.reason,
        changes_vs=changes,
        approved_by=None,
        approved_at=None,
        approved_run_id=None,
    )
    raw = statement_json.dumps(draft)
    (work / PUBLISHED_FILE).write_bytes(raw)
    result = publish_statement(draft, output)
    restated = plan.action == RunAction.RESTATE
    details = {"folder": result.folder}
    if restated:
        details |= {
            "supersedes": f"v{plan.supersedes}",
            "kept_at": kept_at or "",
            "withdrawn": ",".join(item.relative_path for item in withdrawn),
        }
    record_event(
        output,
        AuditEvent(
            event="restated" if restated else "draft-published",
            period=plan.period,
            at=datetime.now(UTC),
            run_id=run_id,
            version=plan.version,
            reason=plan.reason if restated else None,
            files=_audit_files(result),
            details=details,
        ),
    )
    return {
        "action": "restated" if restated else "draft",
        "month": plan.period,
        "status": DRAFT,
        "version": plan.version,
        "run_id": run_id,
        "message": plan.message,
        "statement": PUBLISHED_FILE,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "folder": str(result.folder),
        "manifest_url": result.manifest_url,
        "manifest_sha256": result.manifest_sha256,
        "files": sorted(result.files),
        "total_usd": str(sum((line.cost_usd for line in draft.lines), Decimal(0))),
        "statement_ids": draft.statement_ids.manifest_block(),
        "invoice": draft.invoice.manifest_block() if draft.invoice else None,
        "changed_lines": None if changes is None else len(changes.lines),
    }


def reviewed_draft(reviewed: Mapping[str, Any], period: str, run_id: str) -> None:
    """Refuse an approval of a run whose publish step published no draft."""
    if reviewed.get("status") != DRAFT or "statement" not in reviewed:
        raise LifecycleError(
            f"cannot approve {period}: run {run_id} published no draft"
            f" ({reviewed.get('message') or reviewed.get('action', 'nothing published')})"
        )


def approve_month(
    output: StoragePath,
    draft: Statement,
    *,
    approved_by: str,
    approved_at: datetime,
    run_id: str,
    reviewed_run_id: str,
) -> dict[str, Any]:
    """Publish ``draft`` (as its run published it) final, approved by ``approved_by``;
    ``LifecycleError`` and nothing written unless the month is still that draft."""
    period = draft.period
    with month_lock(output, period):
        recover_month(output, period)
        approved = lifecycle.approve(
            published_state(output, period),
            period,
            approved_by=approved_by,
            at=approved_at,
            run_id=run_id,
            reviewed_run_id=reviewed_run_id,
        )
        if approved.version != draft.version:
            raise LifecycleError(
                f"cannot approve {period}: v{draft.version} was reviewed but v"
                f"{approved.version} is published; review the published draft and approve that"
            )
        _require_pending_carried(output, draft)
        final = replace(
            draft,
            status=FINAL,
            approved_by=approved.approved_by,
            approved_at=approved.approved_at,
            approved_run_id=run_id,
        )
        result = publish_statement(final, output)
        record_event(
            output,
            AuditEvent(
                event="approved",
                period=period,
                at=datetime.now(UTC),
                run_id=run_id,
                version=final.version,
                actor=approved.approved_by,
                files=_audit_files(result),
                details={"approved_at": _iso(approved.approved_at), "folder": result.folder},
            ),
        )
    log.info("%s", approved.describe())
    return {
        "action": "approved",
        "month": period,
        "status": FINAL,
        "version": final.version,
        "run_id": run_id,
        "approved_by": approved.approved_by,
        "approved_at": _iso(approved.approved_at),
        "message": approved.describe(),
        "folder": str(result.folder),
        "manifest_url": result.manifest_url,
        "manifest_sha256": result.manifest_sha256,
        "files": sorted(result.files),
        "total_usd": str(sum((line.cost_usd for line in final.lines), Decimal(0))),
        "statement_ids": final.statement_ids.manifest_block(),
    }


def reject_month(
    output: StoragePath,
    period: str,
    *,
    run_id: str,
    rejected_by: str | None,
    at: datetime,
    reason: str,
) -> dict[str, Any]:
    """Record the rejection of the month's draft; its files stay as they are."""
    with month_lock(output, period):
        state = lifecycle.require_draft(published_state(output, period), period, "reject")
        manifest = read_published(output, period) or {}
        path = record_event(
            output,
            AuditEvent(
                event="rejected",
                period=period,
                at=at,
                run_id=run_id,
                version=state.version,
                actor=(rejected_by or "").strip() or None,
                reason=reason.strip() or None,
                files={name: entry["sha256"] for name, entry in manifest.get("files", {}).items()},
            ),
        )
    message = f"{period} v{state.version} rejected" + (f" by {rejected_by}" if rejected_by else "")
    log.info("%s: %s; the draft stays as published", message, reason.strip() or "no reason given")
    return {
        "action": "rejected",
        "month": period,
        "status": DRAFT,
        "version": state.version,
        "run_id": run_id,
        "rejected_by": rejected_by,
        "reason": reason,
        "message": message,
        "audit": path,
    }


def review_of(output: StoragePath, period: str, published_run_id: str | None) -> dict[str, Any]:
    """What the approver must see of the month as published now, and whether
    :func:`approve_month` can succeed as far as the published files tell."""
    manifest = read_published(output, period)
    if manifest is None:
        raise LifecycleError(
            f"{period} is not published (or does not verify); nothing to review: run the"
            " month again"
        )
    state = MonthState.from_manifest(manifest)
    totals = manifest.get("totals", {})
    invoice = manifest.get("invoice")
    ids = manifest.get("statement_ids") or {}
    currency = manifest.get("currency", "USD")
    blockers = []
    if state.status != DRAFT:
        blockers.append(f"{state.describe()}: nothing to approve")
    elif state.run_id != published_run_id:
        blockers.append(f"the draft was replaced by run {state.run_id}; review that run's draft")
    if invoice is not None and not invoice.get("approvable", False):
        blockers.append(str(invoice.get("message")))
    folder = _month_url(output, period)
    files = {name: f"{folder}/{name}" for name in sorted(manifest.get("files", {}))}
    org_id = ids.get("org", "")
    tie = "not tied to an invoice" if invoice is None else str(invoice.get("message"))
    subject = (
        f"Approve the {period} chargeback statement {org_id}"
        f" ({totals.get('cost_usd', '?')} {currency}, v{state.version}, {state.status})"
    )
    body = [
        f"**{period}**, version {state.version}, {state.status.upper()}: statement {org_id}.",
        "",
        f"- Total: {totals.get('cost_usd')} {currency} (allocated {totals.get('allocated_usd')},"
        f" unallocated {totals.get('unallocated_usd')}, shared {totals.get('shared_usd')},"
        f" corrections of earlier months {totals.get('corrections_usd', '0.00')},"
        f" invoice adjustments {totals.get('adjustments_usd', '0.00')})",
        f"- Invoice: {tie}",
    ]
    if state.restatement_reason:
        body.append(f"- Restates v{state.version - 1}: {state.restatement_reason}")
    body += [
        "- Check the workbook's Summary and Unallocated sheets, and that its Reconciliation"
        " sheet ties the lines to the org total" + (" and the invoice" if invoice else ""),
        "",
        *(f"- [{name}]({url})" for name, url in files.items()),
    ]
    if blockers:
        body += ["", "**Cannot be approved:**", *(f"- {item}" for item in blockers)]
    return {
        "month": period,
        "status": state.status,
        "version": state.version,
        "run_id": state.run_id,
        "org_statement_id": org_id,
        "statement_ids": ids,
        "total_usd": totals.get("cost_usd"),
        "totals": totals,
        "invoice": invoice,
        "tied_to_invoice": invoice is not None,
        "restatement_reason": state.restatement_reason,
        "approvable": not blockers,
        "blockers": blockers,
        "folder": folder,
        "files": files,
        "manifest_url": f"{folder}/{MANIFEST_NAME}",
        "subject": subject,
        "body": "\n".join(body),
    }


def _require_pending_carried(output: StoragePath, draft: Statement) -> None:
    """The draft carries exactly the corrections now pending for its month, else refused:
    once final, the pending files count as booked."""
    pending = {item.corrected_period: item.lines for item in corrections_into(output, draft.period)}
    in_draft: dict[str, list[ChargebackLine]] = {}
    for line in draft.lines:
        corrected = corrected_period(line.allocation)
        if corrected is not None:
            in_draft.setdefault(corrected, []).append(line)
    differ = sorted(
        month
        for month in pending.keys() | in_draft.keys()
        if _as_carried(pending.get(month, [])) != _as_carried(in_draft.get(month, []))
    )
    if differ:
        raise LifecycleError(
            f"cannot approve {draft.period}: the corrections of {', '.join(differ)} pending for"
            f" it changed after its draft was computed (a rerun of a final month); run"
            f" {draft.period} again so its draft carries them, review it and approve that"
        )


def _as_carried(lines: Sequence[ChargebackLine]) -> list[tuple[object, ...]]:
    """Correction lines as compared at approval: what a file and the draft both keep (the
    draft shows them in its own columns and names)."""
    return [
        (
            line.key,
            line.corrects,
            line.calls,
            line.minutes,
            line.cost_usd,
            sorted((name, amount) for name, amount in line.components_usd.items() if amount),
        )
        for line in lines
    ]


def _audit_files(result: PublishResult) -> dict[str, str]:
    return {**result.files, MANIFEST_NAME: result.manifest_sha256}


def _month_url(output: StoragePath, period: str) -> str:
    return str(output / period)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""
