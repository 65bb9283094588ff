"""Hand-made month-to-date figures (``MtdReport``) for the alert, mail and page tests."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

from vapi_chargeback.budgets.mtd import AssistantSpend, CostCenterMtd, MtdReport
from vapi_chargeback.budgets.settings import Budget
from vapi_chargeback.config import ChargebackConfig

PERIOD = "2026-10"
FINANCE = "finance@example.com"
BERLIN = timezone(timedelta(hours=2))
CENTERS = {
    "support": ("Customer Support", "support-lead@example.com"),
    "sales": ("Sales", "sales-ops@example.com"),
    "ops": ("Operations", "ops@example.com"),
}


def config(**delivery: Any) -> ChargebackConfig:
    """The cost centers above; support budgets 1,000 USD, sales 5,000; ops has none."""
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
            "budgets": {"support": {"amount_usd": "1000.00"}, "sales": {"amount_usd": "5000.00"}},
            "delivery": {
                "from_email": "chargeback@example.com",
                "retry_backoff_seconds": 2,
                **delivery,
            },
        }
    )


def center(
    center_id: str,
    spent: str,
    *,
    forecast: str | None = None,
    budget: Budget | str | None = "default",
    days: list[str] | None = None,
) -> CostCenterMtd:
    """A cost center's month so far; ``days``: direct cost per day from the 1st."""
    name, mail = CENTERS[center_id]
    amounts = {"support": "1000.00", "sales": "5000.00"}
    if budget == "default":
        budget = Budget(amount_usd=Decimal(amounts[center_id])) if center_id in amounts else None
    daily = [Decimal(d) for d in (days or [spent])]
    direct = sum(daily, Decimal(0))
    return CostCenterMtd(
        cost_center_id=center_id,
        name=name,
        owner_email=mail,
        spent_usd=Decimal(spent),
        direct_usd=direct,
        shared_usd=Decimal(spent) - direct,
        forecast_usd=Decimal(forecast or spent),
        budget=budget if isinstance(budget, Budget) else None,
        top_assistants=(
            AssistantSpend("asst-1", "Outbound <Dialer>", direct * 3 / 4),
            AssistantSpend("asst-2", "", direct / 4),
        ),
        daily_usd=tuple((date(2026, 10, n + 1), cost) for n, cost in enumerate(daily)),
    )


def report(*centers: CostCenterMtd, day: int = 10, total_days: int = 31) -> MtdReport:
    """October 2026 through the ``day``-th (local), Europe/Berlin."""
    spent = sum((c.spent_usd for c in centers), Decimal(0))
    return MtdReport(
        period=PERIOD,
        timezone="Europe/Berlin",
        month_start=datetime(2026, 10, 1, tzinfo=BERLIN),
        as_of=datetime(2026, 10, 1, tzinfo=BERLIN) + timedelta(days=day),
        through_day=date(2026, 10, day),
        elapsed_days=day,
        total_days=total_days,
        forecast_method="each remaining day at the same weekday's cost in the last 7 days",
        pools_note="platform-fee 500.00 USD prorated for 10 of 31 days.",
        cost_centers=centers,
        unallocated_usd=Decimal(0),
        org_usage_usd=spent,
        shared_usd=Decimal(0),
        total_usd=spent,
        run_id="manual__2026-10-11",
        config_sha256="c0ffee",
        computed_at=datetime(2026, 10, 11, 5, tzinfo=UTC),
    )


def on_day(mtd: MtdReport, day: int) -> MtdReport:
    return replace(mtd, through_day=date(2026, 10, day), elapsed_days=day)


@dataclass
class RecordingSender:
    """Accepts every message (unless ``refuse`` says otherwise) and keeps it; ``during``
    runs inside the first hand-over, to interleave another sender exactly there."""

    accepted: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: list[BaseException] = field(default_factory=list)
    during: Any = None

    def send(self, message: EmailMessage, *, envelope_from: str, recipients: Any) -> None:
        if self.during is not None:
            during, self.during = self.during, None
            during()
        if self.refuse:
            raise self.refuse.pop(0)
        self.accepted.append((list(recipients), message))

    def subjects(self) -> list[str]:
        return [str(message["Subject"]) for _, message in self.accepted]
