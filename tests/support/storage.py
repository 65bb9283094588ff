"""A small statement to publish, and what a test reads back from storage, for the storage tests."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from vapi_chargeback.statement import (
    UNALLOCATED,
    ChargebackLine,
    CostCenterInfo,
    Provenance,
    Reconciliation,
    Statement,
)

PERIOD = "2026-10"
ZONE = ZoneInfo("Europe/Berlin")


def small_statement(
    centers: tuple[str, ...] = ("sales", "support"), base: str = "10.00"
) -> Statement:
    """One direct line per cost center (``base`` + 1.00 per position) and one unallocated line."""
    lines = [
        ChargebackLine(
            center,
            center.title(),
            "team",
            f"asst-{index}",
            "direct",
            index + 1,
            Decimal("1.5"),
            Decimal(base) + index,
            {"llm": Decimal("1.00")},
        )
        for index, center in enumerate(centers)
    ]
    lines.append(
        ChargebackLine(
            UNALLOCATED,
            "Unallocated",
            "",
            "",
            "unallocated:no-assistant",
            1,
            Decimal(1),
            Decimal("2.00"),
            {"llm": Decimal(0)},
        )
    )
    total = sum((line.cost_usd for line in lines), Decimal(0))
    return Statement(
        period=PERIOD,
        timezone="Europe/Berlin",
        period_start=datetime(2026, 10, 1, tzinfo=ZONE),
        period_end=datetime(2026, 11, 1, tzinfo=ZONE),
        currency="USD",
        components=["llm"],
        cost_centers=[
            CostCenterInfo(center, center.title(), f"{center}@example.com") for center in centers
        ],
        lines=lines,
        reconciliation=Reconciliation(total, Decimal("0.00"), total, Decimal("0.00")),
        provenance=Provenance("run-1", "a" * 64, "b" * 64, {"batch-0.json": "c" * 64}, "test"),
    )


def snapshot(month: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``month``."""
    return {
        path.relative_to(month).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(month.rglob("*"))
        if path.is_file()
    }


def hidden_leftovers(root: Path) -> list[str]:
    return sorted(
        path.name
        for path in root.iterdir()
        if path.name.startswith(".") and not path.name.startswith(".lock-")
    )
