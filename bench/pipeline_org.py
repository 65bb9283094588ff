"""The bench org of ``bench/pipeline.py``: its config (cost centers × definitions from a
realistic menu, so several owners ask identical questions) and its mapping CSV (mostly
mapped assistants, some unmapped, a history row at the month start, one mid-month change
of cost center), written to a folder per run."""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

TIMEZONE = "Europe/Berlin"
"""The generator's default org zone: its office hours and months are this zone's."""
VARIABLE_KEY = "costCenter"

DEMO_CENTERS = ("sales", "support", "marketing", "operations")
"""The generated calls carry these as ``costCenter`` values (plus an unknown one and ""),
so they must be cost centers of the config for the variable-value rule to fire."""
MORE_CENTERS = (
    "emea-sales",
    "apac-sales",
    "partner-sales",
    "renewals",
    "retention",
    "onboarding",
    "customer-success",
    "billing",
    "collections",
    "claims",
    "returns",
    "warranty",
    "field-service",
    "dispatch",
    "scheduling",
    "logistics",
    "procurement",
    "recruiting",
    "benefits",
    "it-helpdesk",
    "security-desk",
    "facilities",
    "legal-intake",
    "compliance",
    "accounts-payable",
    "accounts-receivable",
    "payroll",
    "product-research",
    "market-research",
    "events",
    "press-office",
    "loyalty",
    "concierge",
    "reservations",
    "pharmacy-line",
    "fleet",
)
TEAM_SUFFIXES = ("inbound", "outbound", "tier1", "tier2", "night", "vip")
UNMAPPED_EVERY = 25
"""One assistant in this many has no mapping row (on top of the demo org's two)."""
HISTORY_EVERY = 20
"""One mapped assistant in this many changed team at the start of the month (a boundary
on the period's first day, which must not split anything)."""
MAPPED_SINCE = date(2025, 1, 1)


@dataclass(frozen=True)
class MenuItem:
    """A query definition owners pick; ``weight`` = how popular it is."""

    id: str
    title: str
    dimensions: tuple[str, ...]
    step: str | None
    metrics: tuple[str, ...]
    weight: int


MENU = (
    MenuItem(
        "cost-by-assistant-day",
        "Cost by assistant by day",
        ("assistantId",),
        "day",
        ("calls", "minutes", "cost"),
        10,
    ),
    MenuItem(
        "cost-by-assistant",
        "Cost by assistant",
        ("assistantId",),
        None,
        ("calls", "minutes", "cost", "transport", "stt", "llm", "tts", "vapi"),
        6,
    ),
    MenuItem(
        "minutes-by-ended-reason",
        "Minutes by ended reason",
        ("endedReason",),
        None,
        ("calls", "minutes", "avg_minutes_per_call"),
        6,
    ),
    MenuItem("daily-cost", "Daily cost", (), "day", ("calls", "cost", "avg_cost_per_minute"), 6),
    MenuItem(
        "calls-by-success",
        "Calls by success evaluation",
        ("analysis.successEvaluation",),
        "week",
        ("calls", "cost", "avg_cost_per_call"),
        5,
    ),
    MenuItem(
        "components-by-type",
        "Cost components by call type",
        ("type",),
        None,
        ("cost", "transport", "stt", "llm", "tts", "vapi"),
        4,
    ),
    MenuItem(
        "calls-by-status",
        "Calls by status and ended reason",
        ("status", "endedReason"),
        "month",
        ("calls", "minutes"),
        3,
    ),
    MenuItem(
        "weekly-cost-by-assistant",
        "Weekly cost by assistant",
        ("assistantId",),
        "week",
        ("cost", "calls", "avg_cost_per_call"),
        3,
    ),
    MenuItem(
        "success-by-type",
        "Success by call type",
        ("type", "analysis.successEvaluation"),
        "week",
        ("calls", "avg_cost_per_call"),
        2,
    ),
)


class _Dumper(yaml.SafeDumper):
    """Writes ``Decimal`` as a plain YAML number, as people type amounts."""


_Dumper.add_representer(
    Decimal, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:float", str(value))
)


def center_ids(count: int) -> list[str]:
    """The demo org's four cost centers first (the calls name them), then realistic slugs."""
    names = [*DEMO_CENTERS, *MORE_CENTERS]
    names += [f"cost-center-{index:03d}" for index in range(len(names), count)]
    return names[:count]


def pick_definitions(rng: random.Random, count: int) -> list[MenuItem]:
    """``count`` distinct menu items, popular ones more often: owners copy each other."""
    chosen: list[MenuItem] = []
    while len(chosen) < min(count, len(MENU)):
        item = rng.choices(MENU, weights=[item.weight for item in MENU])[0]
        if item not in chosen:
            chosen.append(item)
    return chosen


def write_org(folder: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """``chargeback.yaml`` and ``assistant_teams.csv`` of the bench org; returns the config path
    and a few facts about them for the report."""
    from vapi_emulator.data import demo_org

    rng = random.Random(args.seed)
    centers = center_ids(args.cost_centers)
    teams = {
        center: [
            f"{center}-{suffix}" for suffix in rng.sample(TEAM_SUFFIXES, rng.choice((1, 2, 3)))
        ]
        for center in centers
    }
    all_teams = [(team, center) for center in centers for team in teams[center]]
    document: dict[str, Any] = {
        "org": {"name": "Bench Voice Co", "timezone": TIMEZONE},
        "currency": "USD",
        "output": (folder / "unused-output").as_uri(),
        "mapping": "assistant_teams.csv",
        "components": ["transport", "stt", "llm", "tts", "vapi"],
        "variable_key": VARIABLE_KEY,
        "settlement_delay_hours": 6,
        "finance_email": "finance@example.com",
        "cost_centers": [
            {
                "id": center,
                "name": center.replace("-", " ").title(),
                "owner_email": f"{center}-owner@example.com",
                "queries": [
                    {
                        "id": item.id,
                        "title": item.title,
                        "dimensions": list(item.dimensions),
                        **({"step": item.step} if item.step else {}),
                        "metrics": list(item.metrics),
                    }
                    for item in pick_definitions(rng, args.definitions)
                ],
            }
            for center in centers
        ],
        "shared_costs": [
            {"name": "platform-fee", "amount": Decimal("2500.00"), "method": "even"},
            {
                "name": "phone-numbers",
                "amount": Decimal("1234.56"),
                "method": "proportional",
                "driver": "calls",
            },
            {
                "name": "support-tooling",
                "amount": Decimal("999.99"),
                "method": "fixed",
                "percentages": {centers[0]: 40, centers[1]: 60},
            },
            {
                "name": "calls-without-assistant",
                "source": "calls-without-assistant",
                "method": "proportional",
                "driver": "cost",
            },
        ],
    }
    config_path = folder / "chargeback.yaml"
    config_path.write_text(yaml.dump(document, Dumper=_Dumper, sort_keys=False), encoding="utf-8")

    org = demo_org(args.seed, args.assistants)
    first_day = date.fromisoformat(f"{args.month}-01")
    move_day = first_day.replace(day=15)
    never = {assistant.id for assistant in org.unmapped}
    lines = ["assistant_id,team,cost_center_id,valid_from,valid_to"]
    facts = {"unmapped": 0, "history_rows": 0, "mid_month_changes": 0}
    for index, assistant in enumerate(org.assistants):
        if assistant.id in never or index % UNMAPPED_EVERY == UNMAPPED_EVERY - 1:
            facts["unmapped"] += 1
            continue
        team, center = rng.choice(all_teams)
        if assistant.id == org.mover.id:
            other_team, other = rng.choice([pair for pair in all_teams if pair[1] != center])
            lines.append(f"{assistant.id},{team},{center},{MAPPED_SINCE},{move_day - timedelta(1)}")
            lines.append(f"{assistant.id},{other_team},{other},{move_day},")
            facts["mid_month_changes"] += 1
        elif index % HISTORY_EVERY == 0:
            old_team, old = rng.choice(all_teams)
            lines.append(
                f"{assistant.id},{old_team},{old},{MAPPED_SINCE},{first_day - timedelta(1)}"
            )
            lines.append(f"{assistant.id},{team},{center},{first_day},")
            facts["history_rows"] += 1
        else:
            lines.append(f"{assistant.id},{team},{center},{MAPPED_SINCE},")
    (folder / "assistant_teams.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    definitions = [
        json.dumps(query, sort_keys=True)
        for center in document["cost_centers"]
        for query in center["queries"]
    ]
    facts.update(
        cost_centers=len(centers),
        definitions=len(definitions),
        distinct_definitions=len(set(definitions)),
        mapping_rows=len(lines) - 1,
        assistants=args.assistants,
    )
    return config_path, facts
