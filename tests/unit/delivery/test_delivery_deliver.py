"""deliver_month with a scripted sender: who gets what, at most once, retries and the log."""

from __future__ import annotations

import hashlib
import json
import re
import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from upath import UPath

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.delivery import (
    DeliveryError,
    DeliveryRefusedError,
    DeliveryReport,
    DeliverySetupError,
    MonthNotPublishedError,
    PermanentSendError,
    TransientSendError,
    deliver_month,
    read_log,
)
from vapi_chargeback.errors import ChargebackError, PermanentError
from vapi_chargeback.storage import read_published

from support.delivery_samples import (
    CENTERS,
    FINANCE,
    PERIOD,
    ScriptedSender,
    attachment_names,
    chargeback_config,
    month_file,
    publish_month,
)

SALES = CENTERS["sales"][1]
SUPPORT = CENTERS["support"][1]


def deliver(
    root: Any,
    sender: ScriptedSender,
    *,
    config: ChargebackConfig | None = None,
    waits: list[float] | None = None,
    run_id: str = "run-1",
    force: bool = False,
) -> DeliveryReport:
    """deliver_month for October with the sample config; waits are recorded, not slept."""
    return deliver_month(
        root,
        PERIOD,
        config or chargeback_config(),
        sender,
        from_address="chargeback@example.com",
        run_id=run_id,
        force=force,
        sleep=(waits if waits is not None else []).append,
    )


def with_changes(change: Callable[[dict[str, Any]], None]) -> ChargebackConfig:
    data = chargeback_config().model_dump()
    change(data)
    return ChargebackConfig.model_validate(data)


def test_owners_get_their_workbook_and_finance_the_full_set(
    output: Path, sender: ScriptedSender
) -> None:
    report = deliver(output, sender)

    assert sender.recipients() == [FINANCE, SALES, SUPPORT]
    by_recipient = dict(sender.accepted)
    assert attachment_names(by_recipient[FINANCE]) == [
        "chargeback-2026-10.csv",
        "chargeback-2026-10.xlsx",
    ]
    assert attachment_names(by_recipient[SALES]) == ["sales-2026-10.xlsx"]
    assert attachment_names(by_recipient[SUPPORT]) == ["support-2026-10.xlsx"]
    sales_workbook = next(by_recipient[SALES].iter_attachments()).get_content()
    assert sales_workbook == month_file(output, PERIOD, "cost-centers/sales-2026-10.xlsx")
    assert report.sent == ["finance", "owner:sales", "owner:support"]
    assert report.failed == {}


def test_the_log_records_recipients_attachments_and_message_ids(
    output: Path, sender: ScriptedSender
) -> None:
    deliver(output, sender)

    ledger = json.loads((output / "_delivery" / f"{PERIOD}.json").read_bytes())
    copy = json.loads((output / PERIOD / "delivery.json").read_bytes())
    assert copy == ledger
    manifest_raw = (output / PERIOD / "manifest.json").read_bytes()
    assert ledger["manifest_sha256"] == hashlib.sha256(manifest_raw).hexdigest()
    headers = {recipient: message["Message-ID"] for recipient, message in sender.accepted}
    for key, record in ledger["messages"].items():
        assert record["status"] == "sent", key
        assert record["attempts"] == 1
        assert record["message_id"] == headers[record["recipient"]]
        for attachment in record["attachments"]:
            data = month_file(output, PERIOD, attachment["path"])
            assert attachment["sha256"] == hashlib.sha256(data).hexdigest()
            assert attachment["bytes"] == len(data)
    assert ledger["messages"]["owner:sales"]["recipient"] == SALES
    # The readers' copy sits beside the manifest without making the month untrusted.
    assert read_published(output, PERIOD) is not None


def test_a_rerun_sends_nothing_and_redeliver_sends_everyone_again(
    output: Path, sender: ScriptedSender
) -> None:
    deliver(output, sender)
    first_ids = [message["Message-ID"] for _, message in sender.accepted]

    again = ScriptedSender()
    report = deliver(output, again, run_id="run-2")
    assert again.tries == []
    assert report.skipped == ["finance", "owner:sales", "owner:support"]

    forced = ScriptedSender()
    deliver(output, forced, run_id="run-3", force=True)
    assert forced.recipients() == [FINANCE, SALES, SUPPORT]
    assert not {m["Message-ID"] for _, m in forced.accepted} & set(first_ids)
    log = read_log(output, PERIOD)
    assert log is not None
    assert [record.message_id for record in log.superseded] == first_ids


def test_republishing_the_month_does_not_make_it_undelivered(
    output: Path, sender: ScriptedSender
) -> None:
    """Publish replaces the month folder (and its delivery.json); the ledger outside it stays."""
    deliver(output, sender)
    publish_month(output, PERIOD, scale=2)
    assert not (output / PERIOD / "delivery.json").exists()

    again = ScriptedSender()
    deliver(output, again, run_id="run-2")

    assert again.tries == []
    assert (output / PERIOD / "delivery.json").exists(), "the readers' copy is restored"


def test_republished_with_other_figures_warns_but_does_not_resend(
    output: Path, sender: ScriptedSender, caplog: pytest.LogCaptureFixture
) -> None:
    deliver(output, sender)
    publish_month(output, PERIOD, scale=3)

    again = ScriptedSender()
    deliver(output, again, run_id="run-2")

    assert again.tries == []
    assert "redeliver=true" in caplog.text


def test_a_temporary_failure_is_retried_with_backoff_while_the_others_go_out(
    output: Path,
) -> None:
    busy = smtplib.SMTPRecipientsRefused({SALES: (451, b"4.3.0 mailbox busy")})
    sender = ScriptedSender(script={SALES: [busy, busy, None]})
    waits: list[float] = []

    report = deliver(output, sender, waits=waits)

    assert sender.tries == [FINANCE, SALES, SUPPORT, SALES, SALES]
    assert sender.recipients() == [FINANCE, SUPPORT, SALES]
    assert waits == [2.0, 4.0]
    assert report.failed == {}
    log = read_log(output, PERIOD)
    assert log is not None
    assert log.messages["owner:sales"].status == "sent"
    assert log.messages["owner:sales"].attempts == 3


def test_a_refused_recipient_is_reported_others_delivered_and_the_retry_sends_only_it(
    output: Path,
) -> None:
    unknown = smtplib.SMTPRecipientsRefused({SUPPORT: (550, b"5.1.1 no such user")})
    sender = ScriptedSender(script={SUPPORT: [unknown]})

    with pytest.raises(DeliveryError, match=r"owner:support .*550 5\.1\.1 no such user") as caught:
        deliver(output, sender)

    assert sender.tries == [FINANCE, SALES, SUPPORT], "a permanent failure is not retried in-run"
    assert caught.value.report.sent == ["finance", "owner:sales"]
    log = read_log(output, PERIOD)
    assert log is not None
    record = log.messages["owner:support"]
    assert (record.status, record.permanent, record.attempts) == ("failed", True, 1)
    assert "550" in (record.error or "")

    retry = ScriptedSender()  # e.g. the mailbox was created; Airflow retries the task
    report = deliver(output, retry, run_id="run-1")
    assert retry.recipients() == [SUPPORT]
    assert report.skipped == ["finance", "owner:sales"]
    retried = read_log(output, PERIOD)
    assert retried is not None
    assert retried.messages["owner:support"].message_id == record.message_id
    assert retried.messages["owner:support"].attempts == 2


def test_a_corrected_address_gets_a_new_message_and_the_old_record_is_kept(
    output: Path,
) -> None:
    unknown = smtplib.SMTPRecipientsRefused({SUPPORT: (550, b"5.1.1 no such user")})
    with pytest.raises(DeliveryError):
        deliver(output, ScriptedSender(script={SUPPORT: [unknown]}))

    config = with_changes(
        lambda data: data["cost_centers"][1].update(owner_email="support-lead@example.com")
    )
    retry = ScriptedSender()
    deliver(output, retry, config=config)

    assert retry.recipients() == ["support-lead@example.com"]
    log = read_log(output, PERIOD)
    assert log is not None
    assert [r.recipient for r in log.superseded] == [SUPPORT]
    assert log.messages["owner:support"].recipient == "support-lead@example.com"


def test_temporary_failures_that_outlast_the_attempts_fail_the_run(output: Path) -> None:
    down = smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
    sender = ScriptedSender(script={FINANCE: [down]})

    with pytest.raises(DeliveryError, match="connection lost") as caught:
        deliver(output, sender, config=chargeback_config(max_attempts=2))

    assert sender.tries == [FINANCE, SALES, SUPPORT, FINANCE]
    assert list(caught.value.report.failed) == ["finance"]
    log = read_log(output, PERIOD)
    assert log is not None
    assert log.messages["finance"].permanent is False


class Killed(BaseException):
    """A worker killed mid-send: nothing after the hand-over runs."""


def test_a_send_interrupted_mid_flight_is_sent_again_with_the_same_message_id(
    output: Path,
) -> None:
    with pytest.raises(Killed):
        deliver(output, ScriptedSender(script={SALES: [Killed()]}))
    log = read_log(output, PERIOD)
    assert log is not None
    assert log.messages["owner:sales"].status == "sending"
    interrupted_id = log.messages["owner:sales"].message_id

    retry = ScriptedSender()
    deliver(output, retry, run_id="run-1")

    assert retry.recipients() == [SALES, SUPPORT]
    assert retry.accepted[0][1]["Message-ID"] == interrupted_id


def test_an_unpublished_or_tampered_month_is_not_delivered(
    output: Path, sender: ScriptedSender
) -> None:
    with pytest.raises(MonthNotPublishedError, match="2026-11 has no complete statement set"):
        deliver_month(
            output,
            "2026-11",
            chargeback_config(),
            sender,
            from_address="chargeback@example.com",
            run_id="run-1",
        )
    workbook = output / PERIOD / "cost-centers" / "sales-2026-10.xlsx"
    workbook.write_bytes(workbook.read_bytes() + b"tampered")
    with pytest.raises(MonthNotPublishedError):
        deliver(output, sender)
    assert sender.tries == []
    assert read_log(output, PERIOD) is None


def test_a_cost_center_without_a_workbook_in_the_set_is_refused(
    output: Path, sender: ScriptedSender
) -> None:
    config = with_changes(
        lambda data: data["cost_centers"].append(
            {"id": "legal", "name": "Legal", "owner_email": "legal@example.com"}
        )
    )

    with pytest.raises(MonthNotPublishedError, match=re.escape("cost-centers/legal-2026-10.xlsx")):
        deliver(output, sender, config=config)
    assert sender.tries == []


def test_object_storage_output_keeps_the_log_there_too() -> None:
    root = UPath("memory://delivery-test/statements")
    publish_month(root, PERIOD)
    sender = ScriptedSender()

    deliver(root, sender)
    again = ScriptedSender()
    deliver(root, again, run_id="run-2")

    assert sender.recipients() == [FINANCE, SALES, SUPPORT]
    assert again.tries == []
    assert (root / PERIOD / "delivery.json").exists()
    assert (root / "_delivery" / f"{PERIOD}.json").exists()


def test_a_forced_redelivery_is_once_per_run_however_often_the_task_is_retried(
    output: Path,
) -> None:
    """Issue 17: each try of a redeliver run used to mail every healthy recipient again."""
    deliver(output, ScriptedSender(), run_id="run-1")
    unknown = smtplib.SMTPRecipientsRefused({SUPPORT: (550, b"5.1.1 no such user")})
    tries = [ScriptedSender(script={SUPPORT: [unknown]}) for _ in range(3)]
    for sender in tries:
        with pytest.raises(DeliveryRefusedError):
            deliver(output, sender, run_id="run-2", force=True)

    assert [sender.recipients() for sender in tries] == [[FINANCE, SALES], [], []]
    assert [sender.tries for sender in tries[1:]] == [[SUPPORT], [SUPPORT]]
    finance_id = tries[0].accepted[0][1]["Message-ID"]
    log = read_log(output, PERIOD)
    assert log is not None
    assert log.messages["finance"].message_id == finance_id
    assert (log.messages["owner:support"].attempts, len(log.superseded)) == (3, 3)
    waiting_id = log.messages["owner:support"].message_id

    fixed = ScriptedSender()
    report = deliver(output, fixed, run_id="run-2", force=True)
    assert fixed.recipients() == [SUPPORT]
    assert fixed.accepted[0][1]["Message-ID"] == waiting_id
    assert report.skipped == ["finance", "owner:sales"]

    another = ScriptedSender()
    deliver(output, another, run_id="run-3", force=True)
    assert another.recipients() == [FINANCE, SALES, SUPPORT]
    assert finance_id not in {message["Message-ID"] for _, message in another.accepted}


def test_a_forced_redelivery_killed_mid_send_resumes_with_the_same_message_id(
    output: Path,
) -> None:
    deliver(output, ScriptedSender(), run_id="run-1")
    with pytest.raises(Killed):
        deliver(output, ScriptedSender(script={SALES: [Killed()]}), run_id="run-2", force=True)
    log = read_log(output, PERIOD)
    assert log is not None
    interrupted_id = log.messages["owner:sales"].message_id

    retry = ScriptedSender()
    deliver(output, retry, run_id="run-2", force=True)

    assert retry.recipients() == [SALES, SUPPORT]
    assert retry.accepted[0][1]["Message-ID"] == interrupted_id


def refused(code: int) -> smtplib.SMTPRecipientsRefused:
    return smtplib.SMTPRecipientsRefused({SUPPORT: (code, b"scripted")})


@pytest.mark.parametrize(
    ("script", "refused_keys", "permanent"),
    [
        pytest.param({SUPPORT: [refused(550)]}, ["owner:support"], True, id="550"),
        pytest.param(
            {SUPPORT: [refused(550)], SALES: [refused(553)]},
            ["owner:sales", "owner:support"],
            True,
            id="550-and-553",
        ),
        pytest.param(
            {SUPPORT: [PermanentSendError("no relay")]}, ["owner:support"], True, id="own-permanent"
        ),
        pytest.param({SUPPORT: [refused(451)]}, [], False, id="451"),
        pytest.param(
            {SUPPORT: [refused(550)], SALES: [refused(451)]},
            ["owner:support"],
            False,
            id="550-and-451",
        ),
        pytest.param(
            {SUPPORT: [ConnectionRefusedError(111, "refused")]}, [], False, id="conn-refused"
        ),
        pytest.param(
            {SUPPORT: [TransientSendError("cannot connect")]}, [], False, id="own-transient"
        ),
    ],
)
def test_only_permanent_failures_make_a_permanent_error(
    output: Path,
    script: dict[str, list[BaseException | None]],
    refused_keys: list[str],
    permanent: bool,
) -> None:
    """Airflow does not retry a ``PermanentError``; one temporary failure keeps the retry."""
    with pytest.raises(DeliveryError) as caught:
        deliver(output, ScriptedSender(script=script), config=chargeback_config(max_attempts=1))

    assert isinstance(caught.value, ChargebackError)
    assert isinstance(caught.value, PermanentError) is permanent
    assert isinstance(caught.value, DeliveryRefusedError) is permanent
    assert ("not retried" in str(caught.value)) is permanent
    assert len(caught.value.report.failed) == len(script)
    assert caught.value.report.refused == refused_keys


def test_a_refusal_after_a_temporary_failure_counts_as_permanent(output: Path) -> None:
    """The last failure decides: greylisted first, then refused for good."""
    sender = ScriptedSender(script={SUPPORT: [refused(451), refused(550)]})

    with pytest.raises(DeliveryRefusedError):
        deliver(output, sender, config=chargeback_config(max_attempts=3))

    assert sender.tries == [FINANCE, SALES, SUPPORT, SUPPORT]


def test_an_unpublished_month_is_retryable_and_a_bad_period_is_not(
    output: Path, sender: ScriptedSender
) -> None:
    with pytest.raises(MonthNotPublishedError) as unpublished:
        deliver_month(
            output, "2026-11", chargeback_config(), sender, from_address="a@b.c", run_id="r"
        )
    assert isinstance(unpublished.value, ChargebackError)
    assert not isinstance(unpublished.value, PermanentError)
    with pytest.raises(DeliverySetupError, match="'2026-1' is not YYYY-MM") as malformed:
        deliver_month(
            output, "2026-1", chargeback_config(), sender, from_address="a@b.c", run_id="r"
        )
    assert isinstance(malformed.value, PermanentError)
