"""The key figures and month-over-month drivers a mail quotes, as text, from the manifest.

The manifest's ``key_figures`` and ``variance`` blocks hold them as published (money to
the cent, shares and unit costs exact); this module only spells them for a mail, so a
mail says what the workbook's Summary and Variance sheets say, never a recomputation.
A manifest written before a block existed simply gives no such lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from vapi_chargeback.variance import EFFECTS

MOVERS = 3
"""Assistants a mail lists as the largest movers (the manifest keeps up to ten org-wide
and three per cost center)."""
EFFECT_LABELS = {
    "volume": "Volume",
    "duration": "Duration",
    "rate": "Rate",
    "new": "New",
    "gone": "Gone",
    "other": "Pools & other",
}


def key_facts(figures: Mapping[str, Any] | None, currency: str) -> list[tuple[str, str]]:
    """Unit costs and, for the org, % allocated on usage: the Summary's key figures."""
    if not figures:
        return []
    facts = []
    usage, total = figures.get("allocated_share_of_usage"), figures.get("allocated_share_of_total")
    if usage is not None:
        facts.append(("Allocated", f"{_percent(usage)} of usage ({_percent(total)} incl. pools)"))
    for key, label in (
        ("usd_per_minute", "Cost per minute"),
        ("usd_per_call", "Cost per call"),
        ("usd_per_successful_call", "Cost per successful call"),
    ):
        if figures.get(key) is not None:
            facts.append((label, f"{Decimal(figures[key]):,.4f} {currency}"))
    return facts


def published_previous(figures: Mapping[str, Any] | None, fallback: str | None) -> Decimal | None:
    """The previous month's total as the key figures compared with it; else ``fallback``,
    the total of the previous month's manifest (a statement computed before that month was
    published, or a manifest without key figures); ``None`` when neither knows one."""
    value = (figures or {}).get("previous_total_usd")
    if value is None:
        value = fallback
    return None if value is None else Decimal(value)


def drivers_table(
    variance: Mapping[str, Any] | None, center_id: str | None
) -> tuple[str, list[str], list[list[str]]] | None:
    """Title, header and rows of "why it changed": the cost center's (or the org's) Δ and
    its effects, then its largest movers; ``None`` without a ``variance`` block."""
    if not variance:
        return None
    if center_id is None:
        whole, label, movers = variance["org"], "Total", variance["top_movers"]
    else:
        center = variance["cost_centers"].get(center_id)
        if center is None:
            return None
        whole, label, movers = center, "Your cost center", center["top_assistants"]
    listed = [whole, *movers[:MOVERS]]
    shown = [name for name in EFFECTS if any(Decimal(row[f"{name}_usd"]) for row in listed)]
    header = ["", "Δ", *(EFFECT_LABELS[name] for name in shown)]
    rows = [[label, *_effects(whole, shown)]]
    for mover in listed[1:]:
        name = mover.get("assistant_name") or mover["assistant_id"] or "(no assistant)"
        where = f"{mover['cost_center_id']}: " if center_id is None else ""
        rows.append([f"{where}{name}", *_effects(mover, shown)])
    statement = variance.get("previous_statement_id") or variance["previous_period"]
    return f"Why it changed vs {variance['previous_period']} ({statement})", header, rows


def _effects(figures: Mapping[str, Any], shown: list[str]) -> list[str]:
    return [_signed(figures["delta_usd"]), *(_signed(figures[f"{name}_usd"]) for name in shown)]


def _signed(amount: str) -> str:
    return f"{Decimal(amount):+,.2f}"


def _percent(share: str | None, sign: str = "") -> str:
    return "—" if share is None else f"{Decimal(share) * 100:{sign}.2f} %"
