"""Month to date: what each cost center has spent so far this month, against its budget.

The contract between the daily run (which computes it) and its readers — the alerts, the
statements page, the mails. Everything here is computed once, by the daily run, and
published as ``{output}/_mtd/{YYYY-MM}/mtd-{YYYY-MM-DD}.json`` (:meth:`MtdReport.to_json`;
read back with :meth:`MtdReport.from_json` or ``budgets.outputs.read_mtd``); readers
never recompute a figure, so a mail, the page and the CSV always agree.

What the figures mean:

- The period is the statement month, cut: ``[month_start, as_of)`` in the org zone, where
  ``as_of`` is local midnight after ``through_day``, the last complete local day before
  the run (a run on the 1st covers the whole previous month). The money comes from the
  same plan → fetch → allocate → reconcile code as the monthly statement, so the figures
  are those of a monthly statement cut at ``as_of`` — except that corrections carried
  from final months are left out (they are not this month's spend).
- Fixed shared pools (``amount``) are prorated by elapsed days: ``amount × elapsed_days /
  total_days``, rounded to the cent (``pools_note`` says so, with the amounts). Pools
  re-spreading usage (``source``) spread the usage so far.
- ``spent_usd`` of a cost center is everything charged to it so far: its direct lines and
  its pool shares. ``daily_usd`` is its *direct* cost by local day, every elapsed day
  present (zero when it had no calls), adding up exactly to ``direct_usd``.
- ``forecast_usd`` is the month-end estimate (``budgets.forecast``, method in
  ``forecast_method``): the direct cost's daily series projected over the remaining days,
  plus the pool shares scaled to the whole month; never below ``spent_usd``.
- A threshold is *crossed* when ``spent_usd >= pct × budget / 100``; the forecast alert
  fires when ``forecast_usd > forecast_alert_pct × budget / 100`` (strictly above).
  Percentages shown (``used_pct``, ``forecast_pct``) are rounded to 0.01; the comparisons
  use the exact amounts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from vapi_chargeback.budgets.settings import Budget
from vapi_chargeback.money import percent_of, round_money

MTD_DIR = "_mtd"
FORMAT_VERSION = 1


def mtd_name(day: date, suffix: str) -> str:
    """``_mtd/{YYYY-MM}/mtd-{YYYY-MM-DD}.{suffix}``: where the figures through ``day`` live."""
    return f"{MTD_DIR}/{day:%Y-%m}/mtd-{day.isoformat()}.{suffix}"


@dataclass(frozen=True)
class AssistantSpend:
    """One of the assistants driving a cost center's spend (direct cost so far)."""

    assistant_id: str
    name: str
    """From the mapping or the API's assistant listing; empty when neither names it."""
    cost_usd: Decimal


@dataclass(frozen=True)
class CostCenterMtd:
    """One cost center's month so far."""

    cost_center_id: str
    name: str
    owner_email: str
    spent_usd: Decimal
    """Direct lines + pool shares so far, to the cent."""
    direct_usd: Decimal
    shared_usd: Decimal
    """Its shares of shared pools so far (fixed pools prorated by elapsed days)."""
    forecast_usd: Decimal
    """Month-end estimate, ``>= spent_usd``."""
    budget: Budget | None
    """``None`` when the cost center has no budget: no percentages, thresholds or alerts."""
    top_assistants: tuple[AssistantSpend, ...]
    """Costliest first (ties by id); at most ``daily.top_assistants`` of them."""
    daily_usd: tuple[tuple[date, Decimal], ...]
    """(local day, direct cost) for every elapsed day in order; sums to ``direct_usd``."""

    @property
    def budget_usd(self) -> Decimal | None:
        return None if self.budget is None else self.budget.amount_usd

    @property
    def used_pct(self) -> Decimal | None:
        """Spend so far as a percentage of the budget, to 0.01; ``None`` without a budget."""
        return _pct(self.spent_usd, self.budget_usd)

    @property
    def forecast_pct(self) -> Decimal | None:
        return _pct(self.forecast_usd, self.budget_usd)

    @property
    def thresholds_crossed(self) -> tuple[Decimal, ...]:
        """Every threshold spend has reached so far, lowest first (alerts send the new ones)."""
        return () if self.budget is None else self.budget.crossed(self.spent_usd)

    @property
    def forecast_alert(self) -> bool:
        """The forecast is above the budget's ``forecast_alert_pct``."""
        return self.budget is not None and self.budget.forecast_exceeds(self.forecast_usd)


@dataclass(frozen=True)
class MtdReport:
    """Every cost center's month to date at one instant, as the daily run publishes it."""

    period: str
    """The statement month ``YYYY-MM``."""
    timezone: str
    month_start: datetime
    """Local midnight of the 1st (aware, fixed offset)."""
    as_of: datetime
    """End of the figures, exclusive: local midnight after ``through_day`` (aware)."""
    through_day: date
    """The last local day included; names the files."""
    elapsed_days: int
    """Local days in ``[month_start, as_of)``: 1 … ``total_days``."""
    total_days: int
    """Local days in the month."""
    forecast_method: str
    pools_note: str
    """How shared pools entered the figures (fixed pools prorated: amounts and days)."""
    cost_centers: tuple[CostCenterMtd, ...]
    """In config order (cost centers that ended before the month are absent)."""
    unallocated_usd: Decimal
    """Spend no rule could charge to a cost center, so far."""
    org_usage_usd: Decimal
    """The independent org total of the calls so far (reconciliation's figure)."""
    shared_usd: Decimal
    """Σ shared pools so far (fixed pools prorated)."""
    total_usd: Decimal
    """Σ every line: ``org_usage_usd + shared_usd``, checked by reconciliation."""
    run_id: str
    config_sha256: str
    computed_at: datetime
    """When the daily run computed the figures (UTC)."""

    @property
    def remaining_days(self) -> int:
        return self.total_days - self.elapsed_days

    @property
    def complete(self) -> bool:
        """The figures cover the whole month (the run on the 1st of the next one)."""
        return self.elapsed_days == self.total_days

    def cost_center(self, cost_center_id: str) -> CostCenterMtd:
        for center in self.cost_centers:
            if center.cost_center_id == cost_center_id:
                return center
        raise KeyError(f"no cost center {cost_center_id!r} in the month to date of {self.period}")

    @property
    def relative_json(self) -> str:
        return mtd_name(self.through_day, "json")

    @property
    def relative_csv(self) -> str:
        return mtd_name(self.through_day, "csv")

    def to_json(self) -> bytes:
        """Deterministic JSON: money and percentages as decimal strings, instants ISO-8601."""
        return (json.dumps(_report_dict(self), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> MtdReport:
        data = json.loads(raw)
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"month-to-date file format {data.get('format')!r} is not {FORMAT_VERSION}"
            )
        return cls(
            period=data["period"],
            timezone=data["timezone"],
            month_start=datetime.fromisoformat(data["month_start"]),
            as_of=datetime.fromisoformat(data["as_of"]),
            through_day=date.fromisoformat(data["through_day"]),
            elapsed_days=int(data["elapsed_days"]),
            total_days=int(data["total_days"]),
            forecast_method=data["forecast_method"],
            pools_note=data["pools_note"],
            cost_centers=tuple(_center(item) for item in data["cost_centers"]),
            unallocated_usd=Decimal(data["unallocated_usd"]),
            org_usage_usd=Decimal(data["org_usage_usd"]),
            shared_usd=Decimal(data["shared_usd"]),
            total_usd=Decimal(data["total_usd"]),
            run_id=data["run_id"],
            config_sha256=data["config_sha256"],
            computed_at=datetime.fromisoformat(data["computed_at"]),
        )


def _pct(part: Decimal, whole: Decimal | None) -> Decimal | None:
    if whole is None:
        return None
    pct = percent_of(part, whole)
    return None if pct is None else round_money(pct)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _report_dict(report: MtdReport) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "period": report.period,
        "timezone": report.timezone,
        "month_start": report.month_start.isoformat(),
        "as_of": report.as_of.isoformat(),
        "through_day": report.through_day.isoformat(),
        "elapsed_days": report.elapsed_days,
        "total_days": report.total_days,
        "forecast_method": report.forecast_method,
        "pools_note": report.pools_note,
        "unallocated_usd": str(report.unallocated_usd),
        "org_usage_usd": str(report.org_usage_usd),
        "shared_usd": str(report.shared_usd),
        "total_usd": str(report.total_usd),
        "run_id": report.run_id,
        "config_sha256": report.config_sha256,
        "computed_at": report.computed_at.isoformat(),
        "cost_centers": [_center_dict(center) for center in report.cost_centers],
    }


def _center_dict(center: CostCenterMtd) -> dict[str, Any]:
    budget = center.budget
    return {
        "cost_center_id": center.cost_center_id,
        "name": center.name,
        "owner_email": center.owner_email,
        "spent_usd": str(center.spent_usd),
        "direct_usd": str(center.direct_usd),
        "shared_usd": str(center.shared_usd),
        "forecast_usd": str(center.forecast_usd),
        "budget": None if budget is None else budget.model_dump(mode="json"),
        "budget_usd": _text(center.budget_usd),
        "used_pct": _text(center.used_pct),
        "forecast_pct": _text(center.forecast_pct),
        "thresholds_crossed": [str(pct) for pct in center.thresholds_crossed],
        "forecast_alert": center.forecast_alert,
        "top_assistants": [
            {"assistant_id": a.assistant_id, "name": a.name, "cost_usd": str(a.cost_usd)}
            for a in center.top_assistants
        ],
        "daily_usd": [[day.isoformat(), str(cost)] for day, cost in center.daily_usd],
    }


def _center(data: Mapping[str, Any]) -> CostCenterMtd:
    """The stored fields; derived ones (percentages, crossings) are recomputed from them."""
    budget = data["budget"]
    return CostCenterMtd(
        cost_center_id=data["cost_center_id"],
        name=data["name"],
        owner_email=data["owner_email"],
        spent_usd=Decimal(data["spent_usd"]),
        direct_usd=Decimal(data["direct_usd"]),
        shared_usd=Decimal(data["shared_usd"]),
        forecast_usd=Decimal(data["forecast_usd"]),
        budget=None if budget is None else Budget.model_validate(budget, strict=False),
        top_assistants=tuple(
            AssistantSpend(a["assistant_id"], a["name"], Decimal(a["cost_usd"]))
            for a in data["top_assistants"]
        ),
        daily_usd=tuple(
            (date.fromisoformat(day), Decimal(cost)) for day, cost in data["daily_usd"]
        ),
    )
