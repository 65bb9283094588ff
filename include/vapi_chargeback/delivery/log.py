"""The delivery log: who was sent which files of a month, with message ids and outcome.

It exists twice, in the same format:

- ``{output}/_delivery/{YYYY-MM}.json`` — the **ledger**, the copy delivery trusts. It
  lives outside the month folder because publishing replaces that folder whole (and, on
  object storage, deletes files its manifest does not list): a rerun of the DAG publishes
  again before it delivers, and a log kept only in the folder would be gone by then, so
  every owner would get the month twice.
- ``{output}/{YYYY-MM}/delivery.json`` — the **readers' copy** beside ``manifest.json``,
  rewritten at the end of every delivery. It is not listed in the manifest: the manifest
  is hashed and written last by publish, and a delivery that is retried over hours
  must not reopen a set that is already complete. ``read_published`` checks only the
  files the manifest lists, so the extra file never makes a month untrusted.

Each message is recorded *before* it is handed to the SMTP server (status ``sending``,
with its Message-ID) and again after. A worker killed in between leaves ``sending``;
the next try sends that message again with the same Message-ID, so delivery is at least
once and a duplicate carries the same id (mail clients and archives fold those).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vapi_chargeback.delivery.outbox import model_bytes, read_model, replace_file, write_model

DELIVERY_NAME = "delivery.json"
LEDGER_DIR = "_delivery"
FORMAT_VERSION = 1

Status = Literal["pending", "sending", "sent", "failed"]
"""``pending``: planned, not tried yet; ``sending``: handed to the server, outcome unknown."""
Kind = Literal["owner", "finance"]


class _Record(BaseModel):
    """Tolerant of fields a newer version may add, so an old page still reads a new log."""

    model_config = ConfigDict(extra="ignore")


class AttachmentRecord(_Record):
    name: str
    """File name the recipient sees."""
    path: str
    """Path in the month folder, as the manifest lists it."""
    sha256: str
    bytes: int


class MessageRecord(_Record):
    """One e-mail to one recipient."""

    key: str
    """``finance`` or ``owner:{cost_center_id}``: what makes a message the same across runs."""
    kind: Kind
    cost_center_id: str | None = None
    recipient: str
    subject: str
    message_id: str
    """The Message-ID header, kept across retries of this message."""
    attachments: list[AttachmentRecord]
    status: Status
    attempts: int = 0
    """SMTP hand-overs tried, over every run."""
    last_attempt_at: AwareDatetime | None = None
    sent_at: AwareDatetime | None = None
    error: str | None = None
    """The last failure, as the SMTP server or the network reported it."""
    permanent: bool = False
    """The last failure was permanent (SMTP 5xx): retrying unchanged will not help."""
    run_id: str
    """The Airflow run that last tried this message; for a ``sent`` one, the run that sent
    it, which a forced redelivery compares with its own id to send once per run."""
    statement_id: str | None = None
    """The statement the message carried (org id for finance, the cost center's for an
    owner); ``None`` in records from before statements had ids."""
    statement_status: Literal["draft", "final"] | None = None
    """Whether that statement was a draft or final when mailed."""


class DeliveryLog(_Record):
    format_version: int = FORMAT_VERSION
    period: str
    manifest_sha256: str
    """sha256 of the ``manifest.json`` that was current when this log last changed."""
    updated_at: AwareDatetime
    messages: dict[str, MessageRecord] = Field(default_factory=dict)
    superseded: list[MessageRecord] = Field(default_factory=list)
    """Records replaced by a forced redelivery, oldest first."""

    @property
    def complete(self) -> bool:
        return bool(self.messages) and all(m.status == "sent" for m in self.messages.values())

    def counts(self) -> dict[str, int]:
        counts = {"pending": 0, "sending": 0, "sent": 0, "failed": 0}
        for message in self.messages.values():
            counts[message.status] += 1
        return counts


def ledger_path(root: Any, period: str) -> Any:
    """``{output}/_delivery/{YYYY-MM}.json`` as a path of the same kind as ``root``."""
    return root / LEDGER_DIR / f"{period}.json"


def month_copy_path(root: Any, period: str) -> Any:
    return root / period / DELIVERY_NAME


def read_log(root: Any, period: str) -> DeliveryLog | None:
    """The ledger, or the readers' copy when the ledger is gone, or ``None`` if neither exists.

    Falling back to the copy errs on the side of not mailing people twice: a month whose
    ledger was lost but whose folder still says "sent" counts as sent.
    """
    return read_model((ledger_path(root, period), month_copy_path(root, period)), DeliveryLog)


def write_log(root: Any, log: DeliveryLog, *, month_copy: bool = False) -> None:
    """Write the ledger (and, with ``month_copy``, the readers' copy), each in one step."""
    write_model(ledger_path(root, log.period), log)
    if month_copy:
        replace_file(month_copy_path(root, log.period), model_bytes(log))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC)
