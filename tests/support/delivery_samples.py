"""Published months and a scripted sender for the delivery tests, small enough to check by eye."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.statement import (
    FINAL,
    UNALLOCATED,
    ChargebackLine,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)
from vapi_chargeback.storage import publish_statement

BERLIN = ZoneInfo("Europe/Berlin")
PERIOD = "2026-10"
PREVIOUS = "2026-09"
CENTERS = {
    "sales": ("Sales", "sales-owner@example.com"),
    "support": ("Customer <Support>", "support-owner@example.com"),
}
FINANCE = "finance@example.com"
# cost center → (assistant, team, calls, cost) with the month's cost scaled per month
ASSISTANTS = {
    "sales": [("asst-s1", "inbound", 40, "30.00"), ("asst-s2", "outbound", 10, "50.00")],
    "support": [
        ("asst-p1", "tier-1", 25, "12.50"),
        ("asst-p2", "tier-2", 5, "2.50"),
        ("asst-p3", "=tier-3", 8, "7.25"),
        ("", "", 3, "1.00"),
    ],
}
SHARED = {"sales": "6.00", "support": "4.00"}
UNALLOCATED_COST = "3.30"
APPROVER = "Fiona Finance"
APPROVED_AT = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)


def month_statement(period: str, scale: int = 1) -> Statement:
    """Two cost centers with direct and shared lines and one unallocated line; reconciles.

    ``scale`` multiplies every direct cost, so consecutive months can differ.
    """
    lines: list[ChargebackLine] = []
    for center, rows in ASSISTANTS.items():
        name = CENTERS[center][0]
        for assistant, team, calls, cost in rows:
            amount = Decimal(cost) * scale
            lines.append(
                ChargebackLine(
                    center,
                    name,
                    team,
                    assistant,
                    "direct",
                    calls,
                    Decimal(calls * 2),
                    amount,
                    {"llm": (amount / 2).quantize(Decimal("0.01"))},
                )
            )
        lines.append(
            ChargebackLine(
                center,
                name,
                "",
                "",
                "shared:platform-fee",
                0,
                Decimal(0),
                Decimal(SHARED[center]),
                {"llm": Decimal("0.00")},
            )
        )
    lines.append(
        ChargebackLine(
            UNALLOCATED,
            "Unallocated",
            "",
            "asst-x",
            "unallocated:unmapped-assistant",
            2,
            Decimal(4),
            Decimal(UNALLOCATED_COST),
            {"llm": Decimal("1.00")},
        )
    )
    total = sum((line.cost_usd for line in lines), Decimal(0))
    shared = sum((Decimal(value) for value in SHARED.values()), Decimal(0))
    start = datetime.strptime(period, "%Y-%m").replace(tzinfo=BERLIN)
    return Statement(
        period=period,
        timezone="Europe/Berlin",
        period_start=start,
        period_end=start + relativedelta(months=1),
        currency="USD",
        components=["llm"],
        cost_centers=[CostCenterInfo(cid, name, mail) for cid, (name, mail) in CENTERS.items()],
        lines=lines,
        reconciliation=Reconciliation(total - shared, shared, total, Decimal("0.00")),
        provenance=Provenance(
            f"run-{period}", "a" * 64, "b" * 64, {"batch-000.json": "c" * 64}, "test"
        ),
    )


def publish_month(
    root: Any, period: str, scale: int = 1, *, final: bool = True, version: int = 1
) -> None:
    """Publish the month, approved (final) unless ``final`` is false: only final months are
    mailed unless the config says ``deliver_drafts``."""
    statement = replace(
        month_statement(period, scale),
        version=version,
        restatement_reason="invoice corrected" if version > 1 else None,
    )
    if final:
        statement = replace(statement, status=FINAL, approved_by=APPROVER, approved_at=APPROVED_AT)
    publish_statement(statement, root)


def chargeback_config(**delivery: Any) -> ChargebackConfig:
    """The cost centers above; ``delivery`` overrides delivery settings (no waits by default)."""
    return ChargebackConfig.model_validate(
        {
            "org": {"name": "Test Org", "timezone": "Europe/Berlin"},
            "components": ["llm"],
            "variable_key": "costCenter",
            "finance_email": FINANCE,
            "cost_centers": [
                {"id": cid, "name": name, "owner_email": mail}
                for cid, (name, mail) in CENTERS.items()
            ],
            "delivery": {
                "from_email": "chargeback@example.com",
                "reply_to": FINANCE,
                "retry_backoff_seconds": 2,
                **delivery,
            },
        }
    )


def owner_total(center: str, scale: int = 1) -> Decimal:
    direct = sum((Decimal(cost) for *_, cost in ASSISTANTS[center]), Decimal(0)) * scale
    return direct + Decimal(SHARED[center])


@dataclass
class ScriptedSender:
    """Accepts every message except as ``script`` says: recipient → outcomes, one per try.

    An outcome is an exception to raise or ``None`` for success; the last one repeats.
    """

    script: dict[str, list[BaseException | None]] = field(default_factory=dict)
    accepted: list[tuple[str, EmailMessage]] = field(default_factory=list)
    tries: list[str] = field(default_factory=list)

    def send(self, message: EmailMessage, *, envelope_from: str, recipients: Sequence[str]) -> None:
        (recipient,) = recipients
        self.tries.append(recipient)
        outcomes = self.script.get(recipient, [])
        outcome = outcomes.pop(0) if len(outcomes) > 1 else (outcomes[0] if outcomes else None)
        if outcome is not None:
            raise outcome
        self.accepted.append((recipient, message))

    def recipients(self) -> list[str]:
        return [recipient for recipient, _ in self.accepted]


def attachment_names(message: EmailMessage) -> list[str]:
    return sorted(part.get_filename() or "" for part in message.iter_attachments())


def month_file(root: Path, period: str, relative: str) -> bytes:
    return (root / period / relative).read_bytes()
