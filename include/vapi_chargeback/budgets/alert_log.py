"""The alert ledger: which budget alerts of a month went to whom, with message ids and outcome.

``{output}/_alerts/{YYYY-MM}.json``, beside delivery's ``_delivery/`` ledger and kept the
same way: written in one step (``delivery.outbox.write_model``), outside every folder a
run replaces, and trusted over everything else — an alert recorded ``sent`` is never sent
again, whatever reruns, retries or backfills follow. One record per alert, keyed by
(cost center, kind, percentage) — the month is the file — so "at most once per cost
center, month and threshold" is a key lookup. Alerts that fall due on the same day for
one cost center go out as one mail, and each of their records carries that mail's
Message-ID.

As in delivery, every record is written ``sending`` before the mail is handed to the
SMTP server and ``sent`` (or ``failed``) after. A worker killed in between leaves
``sending``: the next try sends that mail again with the same Message-ID (at least once;
a duplicate carries the same id, which mail clients fold).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vapi_chargeback.delivery.outbox import read_model, write_model

ALERTS_DIR = "_alerts"
FORMAT_VERSION = 1

Kind = Literal["threshold", "forecast"]
Status = Literal["sending", "sent", "failed"]
"""``sending``: handed to the server, outcome unknown (a killed worker leaves it)."""


class _Record(BaseModel):
    """Tolerant of fields a newer version may add, so an old reader still reads a new ledger."""

    model_config = ConfigDict(extra="ignore")


class AlertRecord(_Record):
    """One alert of one cost center in one month."""

    key: str
    """``{cost_center_id}:{kind}:{pct}``: what makes an alert the same across runs."""
    cost_center_id: str
    kind: Kind
    pct: Decimal
    """The threshold (of actual spend) or the forecast alert's percentage of the budget."""
    recipient: str
    cc: list[str] = Field(default_factory=list)
    subject: str
    message_id: str
    """The Message-ID of the mail that carries it, kept across retries."""
    status: Status
    due_on: date
    """The last local day of the month-to-date figures that first found it due."""
    spent_usd: Decimal
    budget_usd: Decimal
    forecast_usd: Decimal
    """The figures of the last try (of the sent mail, once ``sent``)."""
    attempts: int = 0
    """SMTP hand-overs tried, over every run."""
    last_attempt_at: AwareDatetime | None = None
    sent_at: AwareDatetime | None = None
    error: str | None = None
    """The last failure, as the SMTP server or the network reported it."""
    permanent: bool = False
    """The last failure was permanent (SMTP 5xx): retrying unchanged will not help."""
    run_id: str
    """The Airflow run that last tried it (for a ``sent`` one: the run that sent it)."""


class AlertLog(_Record):
    format_version: int = FORMAT_VERSION
    period: str
    updated_at: AwareDatetime
    alerts: dict[str, AlertRecord] = Field(default_factory=dict)

    def sent(self, cost_center_id: str) -> list[AlertRecord]:
        """The cost center's alerts already delivered this month: by day, thresholds first."""
        records = [
            record
            for record in self.alerts.values()
            if record.cost_center_id == cost_center_id and record.status == "sent"
        ]
        return sorted(records, key=lambda r: (r.due_on, r.kind != "threshold", r.pct))


def alert_key(cost_center_id: str, kind: Kind, pct: Decimal) -> str:
    """``support:threshold:80``; ``80``, ``80.0`` and ``80.00`` are one threshold."""
    return f"{cost_center_id}:{kind}:{format_pct(pct)}"


def format_pct(pct: Decimal) -> str:
    """A percentage as people write it: ``80``, ``62.5``."""
    return format(pct.normalize(), "f")


def ledger_path(root: Any, period: str) -> Any:
    """``{output}/_alerts/{YYYY-MM}.json`` as a path of the same kind as ``root``."""
    return root / ALERTS_DIR / f"{period}.json"


def read_alert_log(root: Any, period: str) -> AlertLog | None:
    """The month's ledger, or ``None`` when no alert of the month was ever tried."""
    return read_model([ledger_path(root, period)], AlertLog)


def write_alert_log(root: Any, log: AlertLog) -> None:
    """Replace the ledger in one step: a reader sees the old one or the new one."""
    write_model(ledger_path(root, log.period), log)
