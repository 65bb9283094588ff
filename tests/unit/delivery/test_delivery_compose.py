"""The mails' figures come from the published files, and say them safely in HTML and text."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import cast

import pytest

from vapi_chargeback.delivery.compose import (
    Attachment,
    Envelope,
    MonthSummary,
    change_text,
    finance_message,
    owner_message,
    previous_month,
    summarize,
)
from vapi_chargeback.storage import publish_statement, read_published

from support.delivery_samples import (
    APPROVER,
    CENTERS,
    PERIOD,
    PREVIOUS,
    UNALLOCATED_COST,
    month_statement,
    owner_total,
    publish_month,
)

NAMES = {center: name for center, (name, _) in CENTERS.items()}
ENVELOPE = Envelope(
    from_address="chargeback@example.com",
    reply_to="finance@example.com",
    subject_prefix="[Vapi chargeback]",
    date=datetime(2026, 11, 2, 7, 0, tzinfo=UTC),
    run_id="scheduled__2026-11-01",
)


def month_summary(output: Path, *, with_previous: bool = True) -> MonthSummary:
    manifest = read_published(output, PERIOD)
    previous = read_published(output, PREVIOUS) if with_previous else None
    assert manifest is not None
    csv_data = (output / PERIOD / f"chargeback-{PERIOD}.csv").read_bytes()
    return summarize(manifest, csv_data, previous, NAMES)


def reparsed(message: EmailMessage) -> EmailMessage:
    """The message as a recipient's client parses it from the wire."""
    return cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(message.as_bytes()))


def test_summary_figures_match_the_manifest(output: Path) -> None:
    summary = month_summary(output)
    manifest = read_published(output, PERIOD)
    assert manifest is not None

    assert summary.total_usd == Decimal(manifest["totals"]["cost_usd"])
    assert summary.unallocated_usd == Decimal(UNALLOCATED_COST)
    for center in CENTERS:
        assert summary.centers[center].cost_usd == owner_total(center, scale=2)
        assert summary.centers[center].previous_usd == owner_total(center, scale=1)
    assert summary.reconciliation_ok is True
    assert summary.allocated_pct == summary.allocated_usd * 100 / summary.total_usd


def test_top_assistants_are_the_direct_lines_most_expensive_first(output: Path) -> None:
    support = month_summary(output).centers["support"]

    assert [(a.assistant_id, a.team, a.cost_usd) for a in support.assistants] == [
        ("asst-p1", "tier-1", Decimal("25.00")),
        ("asst-p3", "=tier-3", Decimal("14.50")),  # the CSV's formula guard is undone
        ("asst-p2", "tier-2", Decimal("5.00")),
        ("", "", Decimal("2.00")),
    ]
    assert support.shared_usd == {"platform-fee": Decimal("4.00")}
    assert support.calls == 41


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        pytest.param("110.00", "100.00", "+10.0 % (+10.00) vs 2026-09", id="up"),
        pytest.param("90.00", "100.00", "−10.0 % (−10.00) vs 2026-09", id="down"),
        pytest.param("100.00", "100.00", "+0.0 % (+0.00) vs 2026-09", id="flat"),
        pytest.param("5.00", "0.00", "+5.00 vs 2026-09 (0.00)", id="from-zero"),
        pytest.param("5.00", None, "no statement for 2026-09", id="no-previous-month"),
    ],
)
def test_change_against_the_previous_month(
    current: str, previous: str | None, expected: str
) -> None:
    before = Decimal(previous) if previous is not None else None
    assert change_text(Decimal(current), before, "2026-09") == expected


@pytest.mark.parametrize(
    ("period", "expected"), [("2026-10", "2026-09"), ("2027-01", "2026-12")], ids=str
)
def test_previous_month(period: str, expected: str) -> None:
    assert previous_month(period) == expected


def test_owner_mail_carries_the_summary_the_workbook_and_safe_html(output: Path) -> None:
    summary = month_summary(output)
    workbook = Attachment("cost-centers/support-2026-10.xlsx", b"PK\x03\x04 workbook", "d" * 64)

    message = reparsed(
        owner_message(
            summary,
            "support",
            recipient="support-owner@example.com",
            workbook=workbook,
            top=2,
            envelope=ENVELOPE,
            message_id="<id-1@example.com>",
        )
    )

    assert message["Subject"] == (
        "[Vapi chargeback] Customer <Support>: 2026-10 statement VAPI-2026-10-support-v1, 50.50 USD"
    )
    assert message["To"] == "support-owner@example.com"
    assert message["Reply-To"] == "finance@example.com"
    assert message["Message-ID"] == "<id-1@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    html_body = message.get_body(("html",))
    text_body = message.get_body(("plain",))
    assert html_body is not None and text_body is not None
    html, text = html_body.get_content(), text_body.get_content()
    assert "Customer &lt;Support&gt;" in html and "<Support>" not in html
    for body in (html, text):
        assert "50.50 USD" in body
        assert "+85.3 % (+23.25) vs 2026-09" in body
        assert "Top 2 of 4 assistants by cost" in body
        assert "asst-p1" in body and "asst-p3" in body and "asst-p2" not in body
    (attached,) = list(message.iter_attachments())
    assert attached.get_filename() == "support-2026-10.xlsx"
    assert attached.get_content_type().endswith("spreadsheetml.sheet")
    assert attached.get_content() == workbook.data


def test_owner_mail_without_a_previous_month_says_so(output: Path) -> None:
    summary = month_summary(output, with_previous=False)
    message = owner_message(
        summary,
        "sales",
        recipient="sales-owner@example.com",
        workbook=Attachment("cost-centers/sales-2026-10.xlsx", b"x", "e" * 64),
        top=5,
        envelope=ENVELOPE,
        message_id="<id-2@example.com>",
    )
    text_body = message.get_body(("plain",))
    assert text_body is not None
    assert "no statement for 2026-09" in text_body.get_content()


def test_finance_mail_lists_every_cost_center_and_the_reconciliation(output: Path) -> None:
    summary = month_summary(output)
    files = [
        Attachment(f"chargeback-{PERIOD}.xlsx", b"PK workbook", "1" * 64),
        Attachment(f"chargeback-{PERIOD}.csv", b"period,cost\n", "2" * 64),
    ]

    message = reparsed(
        finance_message(
            summary,
            recipient="finance@example.com",
            attachments=files,
            envelope=ENVELOPE,
            message_id="<id-3@example.com>",
        )
    )

    assert message["Subject"] == (
        "[Vapi chargeback] 2026-10 statements VAPI-2026-10-ORG-v1: 219.80 USD, reconciled"
    )
    text_body = message.get_body(("plain",))
    assert text_body is not None
    text = text_body.get_content()
    for expected in (
        "166.00",
        "50.50",
        "UNALLOCATED",
        "3.30",
        "219.80",
        "98.43 % of usage (98.50 % incl. pools)",
        "reconciled",
    ):
        assert expected in text
    assert [(p.get_filename(), p.get_content_type()) for p in message.iter_attachments()] == [
        (
            "chargeback-2026-10.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        ("chargeback-2026-10.csv", "text/csv"),
    ]


def bodies(message: EmailMessage) -> tuple[str, str]:
    html_body = message.get_body(("html",))
    text_body = message.get_body(("plain",))
    assert html_body is not None and text_body is not None
    return html_body.get_content(), text_body.get_content()


def both_mails(summary: MonthSummary) -> dict[str, EmailMessage]:
    owner = owner_message(
        summary,
        "sales",
        recipient="sales-owner@example.com",
        workbook=Attachment("cost-centers/sales-2026-10.xlsx", b"x", "e" * 64),
        top=5,
        envelope=ENVELOPE,
        message_id="<id-4@example.com>",
    )
    finance = finance_message(
        summary,
        recipient="finance@example.com",
        attachments=[Attachment(f"chargeback-{PERIOD}.csv", b"period\n", "2" * 64)],
        envelope=ENVELOPE,
        message_id="<id-5@example.com>",
    )
    return {"owner": reparsed(owner), "finance": reparsed(finance)}


def test_a_final_month_cites_its_statement_ids_and_approval(output: Path) -> None:
    mails = both_mails(month_summary(output))

    cited = {"owner": "VAPI-2026-10-sales-v1", "finance": "VAPI-2026-10-ORG-v1"}
    for kind, message in mails.items():
        assert cited[kind] in message["Subject"]
        assert "DRAFT" not in message["Subject"]
        for body in bodies(message):
            assert cited[kind] in body
            assert f"final v1 (approved by {APPROVER} on 2026-11-03)" in body
            assert "DRAFT" not in body


def test_a_draft_says_draft_in_subject_heading_and_first_sentence(tmp_path: Path) -> None:
    """Mailed only with deliver_drafts: nobody may mistake it for the booked month."""
    output = tmp_path / "output"
    publish_month(output, PREVIOUS, scale=1)
    publish_month(output, PERIOD, scale=2, final=False)
    mails = both_mails(month_summary(output))

    assert mails["owner"]["Subject"] == (
        "[Vapi chargeback] DRAFT Sales: 2026-10 statement VAPI-2026-10-sales-v1, 166.00 USD"
    )
    assert mails["finance"]["Subject"].startswith(
        "[Vapi chargeback] DRAFT 2026-10 statements VAPI-2026-10-ORG-v1: "
    )
    for message in mails.values():
        html, text = bodies(message)
        assert text.startswith("DRAFT — ")
        assert '<h2 style="margin:0 0 8px">DRAFT — ' in html
        for body in (html, text):
            assert "This is a DRAFT for review: finance has not approved it" in body
            assert "DRAFT v1, not approved" in body


def test_the_owner_mail_shows_each_assistants_name_beside_its_id(tmp_path: Path) -> None:
    """Names come from the published CSV; an id standing in for a name is not repeated."""
    names = {"asst-p1": "Tier-1 Line", "asst-p3": "asst-p3"}
    statement = month_statement(PERIOD)
    lines = [
        replace(line, assistant_name=names.get(line.assistant_id, "")) for line in statement.lines
    ]
    publish_statement(replace(statement, lines=lines), tmp_path)
    manifest = read_published(tmp_path, PERIOD)
    assert manifest is not None
    csv_data = (tmp_path / PERIOD / f"chargeback-{PERIOD}.csv").read_bytes()
    summary = summarize(manifest, csv_data, None, NAMES)

    message = owner_message(
        summary,
        "support",
        recipient="support-owner@example.com",
        workbook=Attachment("cost-centers/support-2026-10.xlsx", b"x", "d" * 64),
        top=3,
        envelope=ENVELOPE,
        message_id="<id-names@example.com>",
    )

    text_body = message.get_body(("plain",))
    assert text_body is not None
    rows = [" ".join(row.split()) for row in text_body.get_content().splitlines()]
    assert any(row.startswith("Assistant Id Team") for row in rows)
    assert any(row.startswith("Tier-1 Line asst-p1 tier-1") for row in rows)
    assert any(row.startswith("(no name) asst-p3") for row in rows)
