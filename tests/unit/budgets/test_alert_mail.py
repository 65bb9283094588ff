"""What a budget alert mail says, in both its parts."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from decimal import Decimal

from vapi_chargeback.budgets.alert_log import AlertRecord
from vapi_chargeback.budgets.alert_mail import alert_message
from vapi_chargeback.delivery.compose import Envelope

from support.mtd_samples import FINANCE, center, report

ENVELOPE = Envelope(
    from_address="chargeback@example.com",
    reply_to=FINANCE,
    subject_prefix="[Vapi chargeback]",
    date=datetime(2026, 10, 11, 5, tzinfo=UTC),
    run_id="manual__2026-10-11",
)
DAYS = ["50.00", "60.00", "0.00", "70.00", "80.00", "90.00", "100.00", "110.00", "120.00", "170.00"]


def parts(message):  # type: ignore[no-untyped-def]
    return (
        message.get_body(("plain",)).get_content(),
        message.get_body(("html",)).get_content(),
    )


def test_threshold_mail_states_spend_budget_forecast_drivers_and_trend() -> None:
    spent = center("support", "880.00", forecast="2456.00", days=DAYS)  # 850 direct + 30 pools
    mtd = report(spent)
    earlier = AlertRecord(
        key="support:threshold:50",
        cost_center_id="support",
        kind="threshold",
        pct=Decimal(50),
        recipient="support-lead@example.com",
        subject="…",
        message_id="<a@example.com>",
        status="sent",
        due_on=date(2026, 10, 7),
        spent_usd=Decimal("520.00"),
        budget_usd=Decimal("1000.00"),
        forecast_usd=Decimal("1500.00"),
        run_id="r",
    )
    message = alert_message(
        mtd,
        spent,
        [("threshold", Decimal(80)), ("forecast", Decimal(100))],
        [earlier],
        recipient="support-lead@example.com",
        cc=[FINANCE],
        envelope=ENVELOPE,
        message_id="<alert@example.com>",
    )
    assert message["Subject"] == (
        "[Vapi chargeback] Budget alert: Customer Support has spent 88.0 % of its October 2026"
        " budget (880.00 of 1,000.00 USD)"
    )
    assert (message["To"], message["Cc"]) == ("support-lead@example.com", FINANCE)
    assert message["Message-ID"] == "<alert@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    plain, markup = parts(message)
    for text in (plain, html.unescape(markup)):
        assert "crossed 80 % of its monthly budget for the first time" in text
        assert "880.00 USD through Saturday 10 October 2026 (Europe/Berlin), 88.0 %" in text
        assert "month ends near 2,456.00 USD, 245.6 % of the budget" in text
        assert "Budget left" in text and "120.00 USD" in text
        assert "850.00 USD" in text and "30.00 USD" in text  # direct and pools
        assert "50 % on 2026-10-07" in text  # the earlier alert
        assert "50 %, 80 %, 100 % of spend; forecast above 100 %" in text
        assert "Outbound <Dialer>" in text and "asst-1" in text and "(no name)" in text
        assert "637.50" in text  # the top assistant's cost (3/4 of 850)
        assert "each remaining day at the same weekday's cost" in text
        assert "_mtd/2026-10/mtd-2026-10-10.json" in text
    assert "Outbound &lt;Dialer&gt;" in markup  # names are escaped in the HTML part
    trend = plain.split("Day by day (direct cost)")[1].splitlines()[3:13]
    assert trend[0].split()[:5] == ["Thu", "01", "Oct", "50.00", "50.00"]
    assert trend[2].split()[:5] == ["Sat", "03", "Oct", "0.00", "110.00"]  # a quiet day shows
    assert trend[9].split()[:5] == ["Sat", "10", "Oct", "170.00", "850.00"]
    assert trend[9].endswith("█" * 20)  # the largest day has the full bar
    assert "█" not in trend[2]


def test_over_budget_and_forecast_only_mails() -> None:
    over = center("support", "1250.00", forecast="3000.00")
    plain, _ = parts(
        alert_message(
            report(over),
            over,
            [("threshold", Decimal(100))],
            [],
            recipient="support-lead@example.com",
            cc=[],
            envelope=ENVELOPE,
            message_id="<x@example.com>",
        )
    )
    assert "Over budget by" in plain and "250.00 USD" in plain
    assert "Earlier alerts:" in plain and "none this month" in plain

    heading = center("sales", "1000.00", forecast="6000.00")
    message = alert_message(
        report(heading),
        heading,
        [("forecast", Decimal(100))],
        [],
        recipient="sales-ops@example.com",
        cc=[FINANCE],
        envelope=ENVELOPE,
        message_id="<y@example.com>",
    )
    assert "is forecast to spend 120.0 % of its October 2026 budget (6,000.00 of 5,000.00" in str(
        message["Subject"]
    )
    plain, _ = parts(message)
    assert "above the 100 % the forecast alert warns at" in plain
    assert "cost in the last 7 days. Shared pools: platform-fee" in plain
    assert "crossed" not in plain.split("\n\n")[1]
