"""The mails quote the manifest's key figures and month-over-month drivers, as published."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from vapi_chargeback.close.previous import previous_month
from vapi_chargeback.delivery.compose import (
    Attachment,
    Envelope,
    finance_message,
    owner_message,
    summarize,
)
from vapi_chargeback.delivery.figures import drivers_table, key_facts
from vapi_chargeback.storage import publish_statement

from support.delivery_samples import CENTERS, PERIOD, PREVIOUS, month_statement, publish_month

ENVELOPE = Envelope(
    "chargeback@example.com", None, "[Vapi]", datetime(2026, 11, 2, tzinfo=UTC), "run-1"
)
NAMES = {center: name for center, (name, _) in CENTERS.items()}


def published(tmp_path: Path) -> tuple[dict[str, object], bytes]:
    """September booked; October (three times the cost of the same usage) against it."""
    publish_month(tmp_path, PREVIOUS)
    october = month_statement(PERIOD, scale=3)
    publish_statement(replace(october, previous=previous_month(tmp_path, PERIOD, "VAPI")), tmp_path)
    manifest = json.loads((tmp_path / PERIOD / "manifest.json").read_bytes())
    return manifest, (tmp_path / PERIOD / f"chargeback-{PERIOD}.csv").read_bytes()


def text_of(message: object) -> str:
    body = message.get_body(("plain",))  # type: ignore[attr-defined]
    return str(body.get_content())


def test_owner_mail_quotes_their_drivers_and_unit_costs_from_the_manifest(tmp_path: Path) -> None:
    manifest, csv_data = published(tmp_path)
    summary = summarize(manifest, csv_data, None, NAMES)
    figures = manifest["key_figures"]["cost_centers"]["sales"]  # type: ignore[index]
    drivers = manifest["variance"]["cost_centers"]["sales"]  # type: ignore[index]

    text = text_of(
        owner_message(
            summary,
            "sales",
            recipient="sales-owner@example.com",
            workbook=Attachment("sales.xlsx", b"PK", "1" * 64),
            top=3,
            envelope=ENVELOPE,
            message_id="<m1@example.com>",
        )
    )

    assert "Why it changed vs 2026-09 (VAPI-2026-09-ORG-v1)" in text
    your = next(line for line in text.splitlines() if line.startswith("Your cost center"))
    delta, rate = (f"+{Decimal(drivers[key]):,.2f}" for key in ("delta_usd", "rate_usd"))
    assert your.split() == ["Your", "cost", "center", delta, rate]
    per_minute = f"{Decimal(figures['usd_per_minute']):,.4f} USD"
    assert re.search(rf"Cost per minute:\s+{re.escape(per_minute)}", text)
    assert "asst-s2" in text and "support" not in text.split("Why it changed")[1]
    # No previous manifest was passed: the change is the key figures' comparison.
    assert re.search(rf"Change:\s+\+[0-9.]+ % \({re.escape(delta)}\) vs 2026-09", text)


def test_finance_mail_quotes_the_largest_movers_and_allocation_on_usage(tmp_path: Path) -> None:
    manifest, csv_data = published(tmp_path)
    summary = summarize(manifest, csv_data, None, NAMES)

    text = text_of(
        finance_message(
            summary,
            recipient="finance@example.com",
            attachments=[Attachment("x.csv", b"x", "2" * 64)],
            envelope=ENVELOPE,
            message_id="<m2@example.com>",
        )
    )

    movers = text.split("Why it changed vs 2026-09")[1].splitlines()
    assert [line.split()[0] for line in movers[3:7]] == ["Total", "sales:", "sales:", "support:"]
    assert "% of usage (" in text and "incl. pools)" in text


def test_without_blocks_a_mail_has_no_such_lines() -> None:
    assert drivers_table(None, "sales") is None
    assert key_facts(None, "USD") == []
    assert key_facts({"allocated_share_of_usage": "0.5", "usd_per_call": None}, "USD") == [
        ("Allocated", "50.00 % of usage (— incl. pools)")
    ]
