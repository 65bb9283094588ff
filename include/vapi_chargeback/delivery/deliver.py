"""Deliver a published month: each owner their workbook, finance the full set, each at most once.

``deliver_month`` is the whole step, free of Airflow:

1. Trust only a verified month (``read_published``): every attachment is read back and
   checked against the manifest's sha256 before it goes out. Only a **final** month is
   mailed: a draft has not been approved and may still change, so it is refused
   (``MonthIsDraftError``) unless the config says ``deliver_drafts: true``, and then
   every message says DRAFT.
2. Read the delivery log. A message already ``sent`` is skipped — on every rerun of the
   DAG, and on every retry of the task — unless ``force`` asks for a redelivery, which
   keeps the earlier records under ``superseded``. A message sent for another edition of
   the month — the draft of a month now final, or version N of a month restated as N+1 —
   is superseded and sent again: the recipient gets the statement that was booked. A redelivery is once per run: a
   message the same run id already sent is skipped on that run's retries, so a retry
   after one refused address mails nobody else twice. A message left ``sending`` by a
   killed worker, or ``failed`` earlier, is tried again with its Message-ID.
3. Send in rounds: every pending message once, then only those that failed for a
   temporary reason (SMTP 4xx, lost connection) again after a backoff, up to
   ``max_attempts`` rounds. One bad address never holds up the others; permanent
   failures (SMTP 5xx) are not retried within the run.
4. Record every hand-over in the ledger before and after it happens, write the readers'
   copy beside the manifest, add a ``delivered`` event to the month's audit trail (what
   was sent, to whom, which files) when anything was, and raise ``DeliveryError`` naming
   every message still undelivered — so Airflow retries the task, and the retry sends only what is missing.
   When every one of them was refused for good (SMTP 5xx), it is ``DeliveryRefusedError``,
   a ``PermanentError``: retrying the task cannot help until someone fixes the address.

Recipients and the from-address come from the current config, not the one the run
was planned with: after a bounce, fix the address and clear the task.

Who gets which message, and which are still to send (step 2), is ``delivery.plan``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from upath import UPath

from vapi_chargeback.close.audit import AuditEvent, record_event
from vapi_chargeback.close.lifecycle import FINAL, MonthState
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.delivery.compose import (
    Attachment,
    Envelope,
    MonthSummary,
    finance_message,
    owner_message,
    previous_month,
    summarize,
)
from vapi_chargeback.delivery.log import (
    DeliveryLog,
    MessageRecord,
    ledger_path,
    read_log,
    sha256_bytes,
    utc_now,
    write_log,
)
from vapi_chargeback.delivery.outbox import (
    LOCK_TIMEOUT_SECONDS,
    Tally,
    UnsentError,
    hand_over,
    in_rounds,
    month_lock,
)
from vapi_chargeback.delivery.plan import (
    Planned,
    message_record,
    pending_messages,
    plan_messages,
)
from vapi_chargeback.delivery.send import Failure, Sender
from vapi_chargeback.errors import ChargebackError, PermanentError
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.statements.csv import csv_name
from vapi_chargeback.statements.manifest import MANIFEST_NAME
from vapi_chargeback.statements.validate import PERIOD
from vapi_chargeback.storage import OutputRoot, read_published

log = logging.getLogger(__name__)


class DeliveryReport(BaseModel):
    """What one call did, small enough for XCom."""

    model_config = ConfigDict(frozen=True)

    period: str
    sent: list[str]
    """Keys (``finance``, ``owner:{id}``) of messages the server accepted in this call."""
    skipped: list[str]
    """Keys already delivered before this call: by an earlier run or, on a redelivery, by
    an earlier try of this same run."""
    failed: dict[str, str]
    """Key → ``recipient: last error`` of messages still undelivered."""
    refused: list[str] = []
    """Keys in ``failed`` whose last failure was permanent (SMTP 5xx): a retry of the
    task will not deliver them unless the address or the server changes."""
    log_url: str


class DeliveryError(UnsentError):
    """Some recipients still have not got their mail; the others have and are recorded.

    Retryable: at least one failure was temporary (SMTP 4xx, a lost or refused
    connection), and the task's next try sends only what is still missing.
    """

    report: DeliveryReport
    advice = (
        "Delivered ones are recorded and will not be sent again; retry the task (after"
        " fixing an address in chargeback.yaml if the server refused it)."
    )

    @classmethod
    def headline(cls, report: DeliveryReport) -> str:
        total = len(report.failed) + len(report.sent) + len(report.skipped)
        return f"{len(report.failed)} of {total} messages for {report.period} undelivered"


class DeliveryRefusedError(DeliveryError, PermanentError):
    """Every undelivered message was refused for good (SMTP 5xx); no retry changes that."""

    advice = (
        "The server refused them permanently, so the task is not retried. Delivered ones"
        " are recorded and will not be sent again; fix the address in chargeback.yaml (or"
        " the mail server's setup), then clear the task."
    )


class MonthNotPublishedError(ChargebackError):
    """The month has no complete, verified statement set to deliver.

    Not permanent: the usual cause is a republish racing the delivery, which a retry
    outlives.
    """


class DeliverySetupError(PermanentError, ValueError):
    """The delivery cannot start as asked (no from-address, a malformed period)."""


class MonthIsDraftError(PermanentError):
    """The month is a draft and the config does not mail drafts: nothing is sent.

    Permanent for this delivery: only an approval (or ``deliver_drafts: true``) changes it.
    """


def deliver_month(
    output_root: OutputRoot,
    period: str,
    config: ChargebackConfig,
    sender: Sender,
    *,
    from_address: str,
    run_id: str,
    force: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = utc_now,
) -> DeliveryReport:
    """Mail ``period``'s statements to owners and finance; see the module docstring."""
    if not PERIOD.fullmatch(period):
        raise DeliverySetupError(f"period {period!r} is not YYYY-MM")
    root = location(output_root)
    # Object storage has no lock: there, two deliveries of one month must not overlap (the
    # DAG never runs two deliver tasks for one run; don't trigger one month twice at once).
    with month_lock(
        root, f".lock-deliver-{period}", f"another delivery of {period}", LOCK_TIMEOUT_SECONDS
    ):
        return _deliver(root, period, config, sender, from_address, run_id, force, sleep, clock)


def location(output_root: OutputRoot) -> Any:
    """A ``pathlib.Path`` for local output (so it can be locked), else the fsspec path."""
    if isinstance(output_root, Path):
        return output_root.absolute()
    root: Any = UPath(output_root) if isinstance(output_root, str) else output_root
    if getattr(root, "protocol", None) in ("", "file", "local"):
        return Path(root.path).absolute()
    return root


def _deliver(
    root: Any,
    period: str,
    config: ChargebackConfig,
    sender: Sender,
    from_address: str,
    run_id: str,
    force: bool,
    sleep: Callable[[float], None],
    clock: Callable[[], datetime],
) -> DeliveryReport:
    manifest, manifest_sha256 = _verified_manifest(root, period)
    state = MonthState.from_manifest(manifest)
    if state.status != FINAL and not config.deliver_drafts:
        raise MonthIsDraftError(
            f"{state.describe()}, not approved: only a final month is mailed. Approve it"
            " (the DAG's review task, or the Required Actions page in the Airflow UI), or set"
            " deliver_drafts: true in chargeback.yaml to mail drafts marked DRAFT"
        )
    # The month's own cost centers: one that ended before it has no workbook in its set.
    config = config.for_period(StatementPeriod.for_month(period, config.timezone))
    planned = plan_messages(config, period, manifest.get("statement_ids") or {})
    attachments = _attachments(root, period, manifest, planned)
    settings = config.delivery
    ledger = _Ledger(
        root,
        read_log(root, period)
        or DeliveryLog(period=period, manifest_sha256=manifest_sha256, updated_at=clock()),
        manifest_sha256,
        clock,
    )
    pending, skipped = pending_messages(
        ledger.log, planned, attachments, force, run_id, state.status
    )
    domain = from_address.rsplit("@", 1)[-1]
    for item in pending:
        earlier = ledger.log.messages.get(item.key)
        ledger.log.messages[item.key] = message_record(
            item,
            earlier,
            attachments,
            run_id,
            domain,
            period,
            settings.subject_prefix,
            state.status,
        )

    summary = summarize(
        manifest,
        attachments[csv_name(period)].data,
        read_published(root, previous_month(period)),
        {center.id: center.name for center in config.cost_centers},
    )
    envelope = Envelope(
        from_address=from_address,
        reply_to=settings.reply_to,
        subject_prefix=settings.subject_prefix,
        date=clock(),
        run_id=run_id,
    )
    tally = Tally(what="")

    def send(item: Planned, round_number: int) -> Planned | None:
        record = ledger.log.messages[item.key]
        message = _compose(item, record, summary, attachments, settings.top_assistants, envelope)
        failure = ledger.hand_over(item, message, sender, from_address, run_id)
        if failure is None:
            tally.accepted([item.key])
            return None
        tally.rejected([item.key], item.recipient, failure, round_number, settings.max_attempts)
        return item if failure.transient else None

    in_rounds(
        pending,
        send,
        max_attempts=settings.max_attempts,
        backoff_base=settings.retry_backoff_seconds,
        sleep=sleep,
        describe=lambda retry: str([item.key for item in retry]),
    )

    ledger.save(month_copy=True)
    if tally.sent:
        _audit(root, period, state, run_id, clock(), ledger.log, tally.sent, manifest_sha256)
    report = DeliveryReport(
        period=period,
        sent=tally.sent,
        skipped=skipped,
        failed=tally.failed,
        refused=sorted(tally.refused),
        log_url=str(ledger_path(root, period)),
    )
    if tally.all_refused:
        raise DeliveryRefusedError(report)
    if tally.failed:
        raise DeliveryError(report)
    return report


class _Ledger:
    """The delivery log being written: every hand-over is recorded before and after."""

    def __init__(
        self,
        root: Any,
        delivery_log: DeliveryLog,
        manifest_sha256: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.root = root
        self.log = delivery_log
        self.manifest_sha256 = manifest_sha256
        self.clock = clock

    def hand_over(
        self,
        item: Planned,
        message: EmailMessage,
        sender: Sender,
        from_address: str,
        run_id: str,
    ) -> Failure | None:
        """Send one message; ``None`` when the server accepted it, else why not."""
        record = self.log.messages[item.key].model_copy(
            update={
                "status": "sending",
                "subject": str(message["Subject"]),
                "attempts": self.log.messages[item.key].attempts + 1,
                "last_attempt_at": self.clock(),
                "run_id": run_id,
            }
        )
        return hand_over(
            [record],
            self._put,
            message,
            sender,
            envelope_from=from_address,
            recipients=[item.recipient],
            clock=self.clock,
            label=item.key,
        )

    def save(self, *, month_copy: bool = False) -> None:
        self.log.manifest_sha256 = self.manifest_sha256
        self.log.updated_at = self.clock()
        write_log(self.root, self.log, month_copy=month_copy)

    def _put(self, records: list[MessageRecord]) -> None:
        for record in records:
            self.log.messages[record.key] = record
        self.save()


def _verified_manifest(root: Any, period: str) -> tuple[dict[str, Any], str]:
    """The month's manifest and the sha256 of its bytes, or why there is nothing to send."""
    try:
        raw = (root / period / MANIFEST_NAME).read_bytes()
    except FileNotFoundError:
        raw = b""
    manifest = read_published(root, period)
    if manifest is None or not raw:
        raise MonthNotPublishedError(
            f"{period} has no complete statement set under {root} (manifest missing, or a"
            " listed file is missing or changed); publish the month before delivering it"
        )
    if json.loads(raw) != manifest:
        raise MonthNotPublishedError(
            f"{period} was republished while it was being read; retry the delivery"
        )
    return manifest, sha256_bytes(raw)


def _audit(
    root: Any,
    period: str,
    state: MonthState,
    run_id: str,
    at: datetime,
    delivery_log: DeliveryLog,
    sent: list[str],
    manifest_sha256: str,
) -> None:
    """The ``delivered`` event: who got which edition, with the hashes of what they got."""
    records = [delivery_log.messages[key] for key in sent]
    files = {item.path: item.sha256 for record in records for item in record.attachments}
    record_event(
        root,
        AuditEvent(
            event="delivered",
            period=period,
            at=at,
            run_id=run_id,
            version=state.version,
            files={**files, MANIFEST_NAME: manifest_sha256},
            details={
                "status": state.status,
                "sent": ", ".join(f"{r.key} to {r.recipient}" for r in records),
                "statement_ids": ", ".join(sorted({r.statement_id or "" for r in records} - {""})),
            },
        ),
    )


def _attachments(
    root: Any, period: str, manifest: dict[str, Any], planned: list[Planned]
) -> dict[str, Attachment]:
    """Every file any message needs (and the CSV), read once and checked against the manifest."""
    files = manifest["files"]
    wanted = sorted({path for item in planned for path in item.paths} | {csv_name(period)})
    missing = [path for path in wanted if path not in files]
    if missing:
        raise MonthNotPublishedError(
            f"{period}: the published set has no {', '.join(missing)}; a cost center added to"
            " chargeback.yaml after publishing needs the month published again"
        )
    attachments = {}
    for path in wanted:
        data = (root / period / path).read_bytes()
        digest = sha256_bytes(data)
        if digest != files[path]["sha256"]:
            raise MonthNotPublishedError(
                f"{period}/{path} changed after it was verified (republished meanwhile?);"
                " retry the delivery"
            )
        attachments[path] = Attachment(path, data, digest)
    return attachments


def _compose(
    item: Planned,
    record: MessageRecord,
    summary: MonthSummary,
    attachments: dict[str, Attachment],
    top: int,
    envelope: Envelope,
) -> EmailMessage:
    if item.cost_center_id is None:
        return finance_message(
            summary,
            recipient=item.recipient,
            attachments=[attachments[path] for path in item.paths],
            envelope=envelope,
            message_id=record.message_id,
        )
    return owner_message(
        summary,
        item.cost_center_id,
        recipient=item.recipient,
        workbook=attachments[item.paths[0]],
        top=top,
        envelope=envelope,
        message_id=record.message_id,
    )
