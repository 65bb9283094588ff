"""Statement lines for the close tests: short to write, every column settable."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from vapi_chargeback.statement import UNALLOCATED, ChargebackLine

COMPONENTS = ("transport", "stt", "llm", "tts", "vapi")
NAMES = {"sales": "Sales", "support": "Support", "ops": "Operations", UNALLOCATED: "Unallocated"}


def line(
    center: str,
    cost: str | Decimal,
    *,
    team: str = "",
    assistant: str = "",
    allocation: str = "direct",
    calls: int = 0,
    minutes: str | Decimal = "0.00",
    components: Sequence[str | Decimal] = ("0.00",) * len(COMPONENTS),
) -> ChargebackLine:
    return ChargebackLine(
        cost_center_id=center,
        cost_center_name=NAMES.get(center, center.title()),
        team=team,
        assistant_id=assistant,
        allocation=allocation,
        calls=calls,
        minutes=Decimal(minutes),
        cost_usd=Decimal(cost),
        components_usd={
            name: Decimal(value) for name, value in zip(COMPONENTS, components, strict=True)
        },
    )


def column_totals(lines: Iterable[ChargebackLine]) -> dict[str, Decimal]:
    """Σ of every column over ``lines``: calls, minutes, cost and each component."""
    totals: dict[str, Decimal] = {}
    for item in lines:
        values = {
            "calls": Decimal(item.calls),
            "minutes": item.minutes,
            "cost": item.cost_usd,
            **{f"component:{k}": v for k, v in item.components_usd.items()},
        }
        for name, value in values.items():
            totals[name] = totals.get(name, Decimal(0)) + value
    return totals
