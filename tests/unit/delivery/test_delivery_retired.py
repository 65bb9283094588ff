"""A cost center retired before a month gets no mail for it, and does not block the others.

Its statement set has no workbook for it (allocation and the plan read the month's config,
``ChargebackConfig.for_period``), so delivery must read the same config: planning a message
for it would find no attachment and refuse the whole month.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.delivery import deliver_month

from support.delivery_samples import (
    CENTERS,
    FINANCE,
    PERIOD,
    PREVIOUS,
    ScriptedSender,
    chargeback_config,
)

RETIRED = "rnd-owner@example.com"


def with_rnd(valid_to: date) -> ChargebackConfig:
    data = chargeback_config().model_dump()
    data["cost_centers"].append(
        {"id": "rnd", "name": "R&D", "owner_email": RETIRED, "valid_to": valid_to}
    )
    return ChargebackConfig.model_validate(data)


def test_an_owner_whose_cost_center_ended_before_the_month_gets_no_mail(
    output: Path, sender: ScriptedSender
) -> None:
    report = deliver_month(
        output,
        PERIOD,
        with_rnd(date.fromisoformat(f"{PREVIOUS}-30")),
        sender,
        from_address="chargeback@example.com",
        run_id="run-1",
        sleep=lambda seconds: None,
    )

    assert sender.recipients() == [FINANCE, *(mail for _, mail in CENTERS.values())]
    assert report.sent == ["finance", "owner:sales", "owner:support"]
    assert report.failed == {}
