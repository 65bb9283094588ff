"""Budget alerts: the first time in a month a cost center crosses a threshold, its owner hears.

``send_alerts`` is the daily run's ``alerts`` step, free of Airflow. It reads nothing but
the published month-to-date figures (``budgets.mtd``) and the alert ledger
(``budgets.alert_log``), and mails through the same ``Sender`` and settings as delivery:

1. **What is due** (:func:`due_alerts`): every threshold of actual spend the cost
   center has reached, and the forecast alert while the forecast is above its
   percentage — except on the figures of a complete month (the run on the 1st), whose
   "forecast" is only what was spent.
2. **What is new** (:func:`pending_groups`): a due alert the ledger records ``sent`` is
   skipped — on every rerun of a day, every retry, every later day of the month. The
   rest go out one mail per cost center (crossing 50 % and 80 % on one day is one mail
   naming both), to the owner with finance copied. A mail left ``sending`` by a killed
   worker, or ``failed`` earlier, is tried again with its Message-ID.
3. **Once only under concurrency**: on local output the whole step holds the month's
   lock (``.lock-alerts-{YYYY-MM}``, ``flock``: freed if its holder dies), so a second
   run of the step — a backfill's day beside today's, a retry racing a slow try —
   reads the ledger only after the first has recorded what it sent. Object storage has
   no lock: there the daily DAG's one active run at a time is what keeps two steps apart.
4. **Failures** are handled as delivery handles them: rounds with backoff for temporary
   ones (SMTP 4xx, lost connection), none for permanent ones (5xx); what is still unsent
   raises ``AlertError`` (retryable) or, when every failure was permanent,
   ``AlertRefusedError`` (a ``PermanentError``) — sent alerts stay recorded either way.

Recipients and the from-address come from the current config: after a bounce, fix the
address and clear the task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from pydantic import BaseModel, ConfigDict

from vapi_chargeback.budgets.alert_log import (
    AlertLog,
    AlertRecord,
    Kind,
    alert_key,
    ledger_path,
    read_alert_log,
    write_alert_log,
)
from vapi_chargeback.budgets.alert_mail import alert_message
from vapi_chargeback.budgets.mtd import CostCenterMtd, MtdReport
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.delivery.compose import Envelope
from vapi_chargeback.delivery.deliver import location
from vapi_chargeback.delivery.log import utc_now
from vapi_chargeback.delivery.outbox import (
    LOCK_TIMEOUT_SECONDS,
    Tally,
    UnsentError,
    hand_over,
    in_rounds,
    month_lock,
)
from vapi_chargeback.delivery.send import Failure, Sender
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.storage import OutputRoot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    """An alert the month-to-date figures call for."""

    cost_center_id: str
    kind: Kind
    pct: Decimal

    @property
    def key(self) -> str:
        return alert_key(self.cost_center_id, self.kind, self.pct)


@dataclass(frozen=True)
class Group:
    """The alerts one mail carries: one cost center's unsent alerts, lowest first."""

    center: CostCenterMtd
    alerts: tuple[Due, ...]
    message_id: str | None
    """Of an earlier unsent try (kept so a resend folds with it); ``None``: a new mail."""


class AlertReport(BaseModel):
    """What one call did, small enough for XCom."""

    model_config = ConfigDict(frozen=True)

    period: str
    through_day: str
    sent: list[str]
    """Alert keys the server accepted in this call."""
    skipped: list[str]
    """Keys due but already sent (by an earlier day, run or try)."""
    failed: dict[str, str]
    """Key → ``recipient: last error`` of alerts still unsent."""
    refused: list[str] = []
    """Keys in ``failed`` whose last failure was permanent (SMTP 5xx)."""
    mails: int = 0
    """Mails the server accepted in this call (one per cost center and day)."""
    ledger_url: str


class AlertError(UnsentError):
    """Some alerts were not delivered; the others are recorded and will not go again.

    Retryable: at least one failure was temporary, and the next try sends only what is missing.
    """

    report: AlertReport
    advice = (
        "Sent alerts are recorded and will not be sent again; retry the task (after fixing"
        " an address in chargeback.yaml if the server refused it)."
    )

    @classmethod
    def headline(cls, report: AlertReport) -> str:
        return f"{len(report.failed)} budget alert(s) of {report.period} unsent"


class AlertRefusedError(AlertError, PermanentError):
    """Every unsent alert was refused for good (SMTP 5xx); no retry changes that."""

    advice = (
        "The server refused them permanently, so the task is not retried. Sent alerts are"
        " recorded; fix the address in chargeback.yaml (or the mail server), then clear the task."
    )


def due_alerts(report: MtdReport) -> list[Due]:
    """Every alert the figures call for, in config order, thresholds lowest first."""
    due: list[Due] = []
    for center in report.cost_centers:
        budget = center.budget
        if budget is None:
            continue
        due += [Due(center.cost_center_id, "threshold", pct) for pct in center.thresholds_crossed]
        if center.forecast_alert and not report.complete and budget.forecast_alert_pct:
            due.append(Due(center.cost_center_id, "forecast", budget.forecast_alert_pct))
    return due


def pending_groups(alert_log: AlertLog, report: MtdReport) -> tuple[list[Group], list[str]]:
    """The mails to send now (one per cost center with an unsent alert), and the keys skipped."""
    groups: list[Group] = []
    skipped: list[str] = []
    by_center: dict[str, list[Due]] = {}
    for item in due_alerts(report):
        record = alert_log.alerts.get(item.key)
        if record is not None and record.status == "sent":
            skipped.append(item.key)
            continue
        if record is not None and record.status == "sending":
            log.warning(
                "%s: the last try to %s stopped mid-send; sending again with Message-ID %s",
                item.key,
                record.recipient,
                record.message_id,
            )
        by_center.setdefault(item.cost_center_id, []).append(item)
    for center_id, alerts in by_center.items():
        earlier = [alert_log.alerts[a.key] for a in alerts if a.key in alert_log.alerts]
        message_id = min((r.message_id for r in earlier), default=None)
        groups.append(Group(report.cost_center(center_id), tuple(alerts), message_id))
    return groups, skipped


def send_alerts(
    output_root: OutputRoot,
    report: MtdReport,
    config: ChargebackConfig,
    sender: Sender,
    *,
    from_address: str,
    run_id: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = utc_now,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
) -> AlertReport:
    """Mail the month's new budget alerts; see the module docstring."""
    root = location(output_root)
    # Object storage has no lock: there the daily DAG's one active run at a time keeps
    # two alerts steps apart.
    with month_lock(
        root,
        f".lock-alerts-{report.period}",
        f"another alerts step of {report.period}",
        lock_timeout,
    ):
        return _send(root, report, config, sender, from_address, run_id, sleep, clock)


def _send(
    root: Any,
    report: MtdReport,
    config: ChargebackConfig,
    sender: Sender,
    from_address: str,
    run_id: str,
    sleep: Callable[[float], None],
    clock: Callable[[], datetime],
) -> AlertReport:
    ledger = _Ledger(
        root,
        read_alert_log(root, report.period) or AlertLog(period=report.period, updated_at=clock()),
        clock,
    )
    pending, skipped = pending_groups(ledger.log, report)
    settings = config.delivery
    owners = {center.id: center.owner_email for center in config.cost_centers}
    envelope = Envelope(
        from_address=from_address,
        reply_to=settings.reply_to,
        subject_prefix=settings.subject_prefix,
        date=clock(),
        run_id=run_id,
    )
    domain = from_address.rsplit("@", 1)[-1]
    tally = Tally(what="alert ")

    def send(group: Group, round_number: int) -> Group | None:
        center = group.center
        owner = owners.get(center.cost_center_id, center.owner_email)
        copied = [] if config.finance_email == owner else [config.finance_email]
        message_id = group.message_id or make_msgid(
            idstring=f"vapi-chargeback.alert.{report.through_day}.{center.cost_center_id}",
            domain=domain,
        )
        message = alert_message(
            report,
            center,
            [(item.kind, item.pct) for item in group.alerts],
            ledger.log.sent(center.cost_center_id),
            recipient=owner,
            cc=copied,
            envelope=envelope,
            message_id=message_id,
        )
        keys = [item.key for item in group.alerts]
        failure = ledger.hand_over(
            report, group, message, sender, from_address, [owner, *copied], run_id
        )
        if failure is None:
            tally.accepted(keys)
            return None
        tally.rejected(keys, owner, failure, round_number, settings.max_attempts)
        if not failure.transient:
            return None
        return Group(group.center, group.alerts, ledger.log.alerts[keys[0]].message_id)

    in_rounds(
        pending,
        send,
        max_attempts=settings.max_attempts,
        backoff_base=settings.retry_backoff_seconds,
        sleep=sleep,
        describe=lambda retry: f"alerts of {[group.center.cost_center_id for group in retry]}",
    )

    result = AlertReport(
        period=report.period,
        through_day=report.through_day.isoformat(),
        sent=tally.sent,
        skipped=skipped,
        failed=tally.failed,
        refused=sorted(tally.refused),
        mails=tally.mails,
        ledger_url=str(ledger_path(root, report.period)),
    )
    if tally.all_refused:
        raise AlertRefusedError(result)
    if tally.failed:
        raise AlertError(result)
    return result


class _Ledger:
    """The alert ledger being written: every hand-over is recorded before and after."""

    def __init__(self, root: Any, alert_log: AlertLog, clock: Callable[[], datetime]) -> None:
        self.root = root
        self.log = alert_log
        self.clock = clock

    def hand_over(
        self,
        report: MtdReport,
        group: Group,
        message: EmailMessage,
        sender: Sender,
        from_address: str,
        recipients: list[str],
        run_id: str,
    ) -> Failure | None:
        """Send one mail for the group's alerts; ``None`` when the server accepted it."""
        center = group.center
        records = []
        for item in group.alerts:
            earlier = self.log.alerts.get(item.key)
            records.append(
                AlertRecord(
                    key=item.key,
                    cost_center_id=item.cost_center_id,
                    kind=item.kind,
                    pct=item.pct,
                    recipient=recipients[0],
                    cc=recipients[1:],
                    subject=str(message["Subject"]),
                    message_id=str(message["Message-ID"]),
                    status="sending",
                    due_on=report.through_day if earlier is None else earlier.due_on,
                    spent_usd=center.spent_usd,
                    budget_usd=center.budget_usd or Decimal(0),
                    forecast_usd=center.forecast_usd,
                    attempts=(0 if earlier is None else earlier.attempts) + 1,
                    last_attempt_at=self.clock(),
                    run_id=run_id,
                )
            )
        return hand_over(
            records,
            self._put,
            message,
            sender,
            envelope_from=from_address,
            recipients=recipients,
            clock=self.clock,
            label="alert " + ", ".join(record.key for record in records),
        )

    def _put(self, records: list[AlertRecord]) -> None:
        for record in records:
            self.log.alerts[record.key] = record
        self.log.updated_at = self.clock()
        write_alert_log(self.root, self.log)
