"""Who gets which message of a month, and which of them still have to go out.

The planning half of ``deliver_month``: the messages a month's config and manifest call
for (finance first, then each owner, each carrying its statement id), the ledger record
each starts from, and which messages a run sends, skips or supersedes — so the rules of
"at most once, once per run when forced, again for another edition" read in one place,
apart from the sending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import make_msgid
from typing import Any, Literal

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.delivery.compose import Attachment
from vapi_chargeback.delivery.log import AttachmentRecord, DeliveryLog, MessageRecord
from vapi_chargeback.statements.csv import csv_name
from vapi_chargeback.statements.xlsx import cost_center_workbook_name, statement_workbook_name

log = logging.getLogger(__name__)

FINANCE_KEY = "finance"
OWNER_PREFIX = "owner:"


@dataclass(frozen=True)
class Planned:
    key: str
    kind: str
    cost_center_id: str | None
    recipient: str
    paths: tuple[str, ...]
    statement_id: str | None = None
    """The id of the statement the message carries; ``None`` on a manifest without ids."""


def plan_messages(config: ChargebackConfig, period: str, ids: dict[str, Any]) -> list[Planned]:
    """Finance first, then the owners in config order; ``ids``: the manifest's statement ids."""
    by_center = ids.get("cost_centers") or {}
    planned = [
        Planned(
            FINANCE_KEY,
            "finance",
            None,
            config.finance_email,
            (statement_workbook_name(period), csv_name(period)),
            ids.get("org"),
        )
    ]
    planned += [
        Planned(
            f"{OWNER_PREFIX}{center.id}",
            "owner",
            center.id,
            center.owner_email,
            (cost_center_workbook_name(center.id, period),),
            by_center.get(center.id),
        )
        for center in config.cost_centers
    ]
    return planned


def message_record(
    item: Planned,
    previous: MessageRecord | None,
    attachments: dict[str, Attachment],
    run_id: str,
    domain: str,
    period: str,
    subject_prefix: str,
    status: Literal["draft", "final"],
) -> MessageRecord:
    """A fresh record, or the earlier unfinished one with its Message-ID and attempt count."""
    files = [
        AttachmentRecord(
            name=attachments[path].name,
            path=path,
            sha256=attachments[path].sha256,
            bytes=len(attachments[path].data),
        )
        for path in item.paths
    ]
    if previous is not None:
        return previous.model_copy(update={"attachments": files, "run_id": run_id})
    return MessageRecord(
        key=item.key,
        kind="finance" if item.kind == "finance" else "owner",
        cost_center_id=item.cost_center_id,
        recipient=item.recipient,
        subject=f"{subject_prefix} {period}".strip(),
        message_id=make_msgid(
            idstring=f"vapi-chargeback.{period}.{item.key.replace(':', '-')}", domain=domain
        ),
        attachments=files,
        status="pending",
        run_id=run_id,
        statement_id=item.statement_id,
        statement_status=status,
    )


def pending_messages(
    delivery_log: DeliveryLog,
    planned: list[Planned],
    attachments: dict[str, Attachment],
    force: bool,
    run_id: str,
    status: str,
) -> tuple[list[Planned], list[str]]:
    """Messages to send now, and keys already delivered.

    A sent record is kept unless ``force``; then, or when the address changed, it moves
    to ``superseded`` and the message starts afresh with a new Message-ID. A record sent
    by ``run_id`` itself is kept even when forced: the task's tries share the run id,
    so a redelivery mails each recipient once per run however often the task is retried.
    A record of another edition (statement id and status) is superseded too: the draft's
    mail does not deliver the final month, nor version N's the restated N+1. Records
    written before editions were recorded count as the current edition.
    """
    pending: list[Planned] = []
    skipped: list[str] = []
    for item in planned:
        record = delivery_log.messages.get(item.key)
        if record is not None and _other_edition(record, item, status):
            log.info(
                "%s: the record for %s is %s, of %s (%s); sending the %s edition %s",
                item.key,
                record.recipient,
                record.status,
                record.statement_id,
                record.statement_status,
                status,
                item.statement_id,
            )
            delivery_log.superseded.append(delivery_log.messages.pop(item.key))
            pending.append(item)
            continue
        if record is not None and record.status == "sent" and force and record.run_id == run_id:
            log.info(
                "%s: already sent to %s by this run's redelivery as %s; not sending again",
                item.key,
                record.recipient,
                record.message_id,
            )
            skipped.append(item.key)
            continue
        if record is not None and record.status == "sent" and not force:
            skipped.append(item.key)
            _warn_if_outdated(record, attachments)
            continue
        if record is not None and (record.status == "sent" or record.recipient != item.recipient):
            delivery_log.superseded.append(delivery_log.messages.pop(item.key))
        elif record is not None and record.status == "sending":
            log.warning(
                "%s: the last try to %s stopped mid-send; sending again with Message-ID %s",
                item.key,
                record.recipient,
                record.message_id,
            )
        pending.append(item)
    return pending, skipped


def _other_edition(record: MessageRecord, item: Planned, status: str) -> bool:
    if record.statement_status is None and record.statement_id is None:
        return False
    return (record.statement_id, record.statement_status) != (item.statement_id, status)


def _warn_if_outdated(record: MessageRecord, attachments: dict[str, Attachment]) -> None:
    changed = [a.path for a in record.attachments if attachments[a.path].sha256 != a.sha256]
    if changed:
        log.warning(
            "%s was delivered to %s before the month was republished with different %s;"
            " trigger with redeliver=true to send the current version",
            record.key,
            record.recipient,
            ", ".join(changed),
        )
