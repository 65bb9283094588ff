"""Only a final month is mailed; a draft only with deliver_drafts, and each edition once.

An edition is what a message carried: the statement id (which names the version) and
whether it was a draft or final. Approving a month that was mailed as a draft, or
restating a final month as version N+1, makes every earlier message out of date: the
recipients get the new edition, the old records are kept as superseded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vapi_chargeback.close.audit import read_events
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.delivery import DeliveryError, MonthIsDraftError, deliver_month, read_log
from vapi_chargeback.delivery.log import ledger_path
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.storage import read_published

from support.delivery_samples import (
    CENTERS,
    FINANCE,
    PERIOD,
    PREVIOUS,
    ScriptedSender,
    chargeback_config,
    publish_month,
)

SALES = CENTERS["sales"][1]
SUPPORT = CENTERS["support"][1]
EVERYONE = [FINANCE, SALES, SUPPORT]


def config(*, deliver_drafts: bool) -> ChargebackConfig:
    return ChargebackConfig.model_validate(
        {**chargeback_config().model_dump(), "deliver_drafts": deliver_drafts}
    )


def deliver(root: Path, sender: ScriptedSender, *, drafts: bool, run_id: str) -> list[str]:
    report = deliver_month(
        root,
        PERIOD,
        config(deliver_drafts=drafts),
        sender,
        from_address="chargeback@example.com",
        run_id=run_id,
        sleep=lambda _: None,
    )
    return report.sent


def subjects(sender: ScriptedSender) -> dict[str, str]:
    return {recipient: str(message["Subject"]) for recipient, message in sender.accepted}


@pytest.fixture
def draft_output(tmp_path: Path) -> Path:
    root = tmp_path / "output"
    publish_month(root, PREVIOUS, scale=1)
    publish_month(root, PERIOD, scale=2, final=False)
    return root


def test_a_draft_is_not_mailed_without_deliver_drafts(draft_output: Path) -> None:
    sender = ScriptedSender()

    with pytest.raises(MonthIsDraftError) as refused:
        deliver(draft_output, sender, drafts=False, run_id="run-1")

    assert isinstance(refused.value, PermanentError)
    assert "2026-10 v1 is a draft" in str(refused.value)
    assert "deliver_drafts: true" in str(refused.value)
    assert sender.tries == []
    assert not ledger_path(draft_output, PERIOD).exists()


def test_a_draft_mailed_with_deliver_drafts_is_mailed_again_once_final(
    draft_output: Path,
) -> None:
    drafts = ScriptedSender()
    deliver(draft_output, drafts, drafts=True, run_id="run-1")
    assert drafts.recipients() == EVERYONE
    assert all(" DRAFT " in subject for subject in subjects(drafts).values())

    publish_month(draft_output, PERIOD, scale=2)  # approved: the same v1, now final
    final = ScriptedSender()
    sent = deliver(draft_output, final, drafts=True, run_id="run-2")

    assert sent == ["finance", "owner:sales", "owner:support"]
    assert final.recipients() == EVERYONE
    assert "DRAFT" not in " ".join(subjects(final).values())
    assert "VAPI-2026-10-sales-v1" in subjects(final)[SALES]
    draft_ids = {m["Message-ID"] for _, m in drafts.accepted}
    assert not {m["Message-ID"] for _, m in final.accepted} & draft_ids
    log = read_log(draft_output, PERIOD)
    assert log is not None
    assert {r.message_id for r in log.superseded} == draft_ids
    assert {r.statement_status for r in log.superseded} == {"draft"}
    assert {(r.statement_status, r.status) for r in log.messages.values()} == {("final", "sent")}

    again = ScriptedSender()
    assert deliver(draft_output, again, drafts=True, run_id="run-3") == []
    assert again.tries == [], "the final edition is mailed once"


def test_a_restated_month_is_mailed_again_under_its_new_statement_ids(tmp_path: Path) -> None:
    root = tmp_path / "output"
    publish_month(root, PERIOD, scale=2)
    first = ScriptedSender()
    deliver(root, first, drafts=False, run_id="run-1")
    assert "VAPI-2026-10-ORG-v1" in subjects(first)[FINANCE]

    publish_month(root, PERIOD, scale=3, version=2)  # restated and approved again
    second = ScriptedSender()
    deliver(root, second, drafts=False, run_id="run-2")

    assert second.recipients() == EVERYONE
    assert "VAPI-2026-10-ORG-v2" in subjects(second)[FINANCE]
    assert "VAPI-2026-10-support-v2" in subjects(second)[SUPPORT]
    log = read_log(root, PERIOD)
    assert log is not None
    assert sorted(r.statement_id or "" for r in log.superseded) == [
        "VAPI-2026-10-ORG-v1",
        "VAPI-2026-10-sales-v1",
        "VAPI-2026-10-support-v1",
    ]


def test_each_delivery_that_sends_is_in_the_audit_trail_with_its_file_hashes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "output"
    publish_month(root, PERIOD, scale=2)
    with pytest.raises(DeliveryError):  # support's server keeps resetting: sent later
        deliver(
            root,
            ScriptedSender(script={SUPPORT: [OSError("connection reset")]}),
            drafts=False,
            run_id="run-1",
        )
    deliver(root, ScriptedSender(), drafts=False, run_id="run-2")
    deliver(root, ScriptedSender(), drafts=False, run_id="run-3")  # nothing left to send

    events = read_events(root, PERIOD)
    assert [(e.event, e.run_id) for e in events] == [("delivered", "run-1"), ("delivered", "run-2")]
    first, second = events
    assert first.details["sent"] == f"finance to {FINANCE}, owner:sales to {SALES}"
    assert second.details["sent"] == f"owner:support to {SUPPORT}"
    assert (first.version, first.details["status"]) == (1, "final")
    assert first.details["statement_ids"] == "VAPI-2026-10-ORG-v1, VAPI-2026-10-sales-v1"
    manifest = read_published(root, PERIOD)
    assert manifest is not None
    listed = {path: entry["sha256"] for path, entry in manifest["files"].items()}
    assert (
        second.files["cost-centers/support-2026-10.xlsx"]
        == (listed["cost-centers/support-2026-10.xlsx"])
    )
    assert set(first.files) == {
        "chargeback-2026-10.xlsx",
        "chargeback-2026-10.csv",
        "cost-centers/sales-2026-10.xlsx",
        "manifest.json",
    }
