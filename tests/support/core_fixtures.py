"""Helpers of the money-core tests: a small valid config document, paths, a YAML writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from vapi_chargeback.analytics.models import AnalyticsQueryResult
from vapi_chargeback.plan import Plan

PROJECT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = PROJECT / "include" / "config" / "chargeback.yaml"

MAPPING_HEADER = "assistant_id,team,cost_center_id,valid_from,valid_to\n"


class _Dumper(yaml.SafeDumper):
    """Writes ``Decimal`` as a plain YAML number, the way people type amounts."""


_Dumper.add_representer(
    Decimal, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:float", str(value))
)


def base_config() -> dict[str, Any]:
    """A minimal valid chargeback.yaml document; tests change one thing at a time."""
    return {
        "org": {"name": "Test Org", "timezone": "Europe/Berlin"},
        "currency": "USD",
        "components": ["transport", "stt", "llm", "tts", "vapi"],
        "variable_key": "costCenter",
        "settlement_delay_hours": 0,
        "finance_email": "finance@example.com",
        "cost_centers": [
            {"id": "sales", "name": "Sales", "owner_email": "s@example.com", "queries": []},
            {"id": "support", "name": "Support", "owner_email": "t@example.com", "queries": []},
        ],
        "shared_costs": [],
    }


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False)


@dataclass(frozen=True)
class Call:
    """One synthetic call, as the API would group it."""

    day: date
    """Local calendar day in the org zone."""
    cost: Decimal
    assistant: str | None = None
    variable: object = None
    duration: Decimal = Decimal(60)
    components: dict[str, Decimal] = field(default_factory=dict)
    type: str = "inboundPhoneCall"
    ended_reason: str = "customer-ended-call"
    success: object = None
    status: str = "ended"

    def column(self, name: str) -> object:
        return {
            "assistantId": self.assistant,
            "type": self.type,
            "endedReason": self.ended_reason,
            "analysis.successEvaluation": self.success,
            "status": self.status,
            "id": "x",
            "cost": self.cost,
            "duration": self.duration,
        }.get(name, self.components.get(name.removeprefix("costBreakdown.")))


def fake_results(
    plan: Plan, calls: list[Call], *, variable_key: str = "costCenter", as_strings: bool = False
) -> dict[str, AnalyticsQueryResult]:
    """What the API answers to each planned query over ``calls``: sparse day buckets,
    one row per non-empty group, aggregates under their aliases."""
    zone = ZoneInfo(plan.period.timezone)
    results = {}
    for query in plan.queries:
        step = query.time_range.step if query.time_range else None
        groups: dict[tuple[object, ...], list[Call]] = {}
        for call in calls:
            key: list[object] = []
            if step == "day":
                key.append(call.day)
            key += [call.column(g) for g in query.group_by or []]
            key += [call.variable for _ in query.group_by_variable_value or []]
            groups.setdefault(tuple(key), []).append(call)
        rows = []
        for key, members in groups.items():
            values = list(key)
            row: dict[str, Any] = {}
            if step == "day":
                midnight = datetime.combine(values.pop(0), time(0), tzinfo=zone)
                row["date"] = midnight.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            for name in query.group_by or []:
                row[name] = values.pop(0)
            for variable in query.group_by_variable_value or []:
                row[variable.key] = values.pop(0)
            for op in query.operations:
                column = [c.column(op.column) for c in members]
                present = [v for v in column if v is not None]
                value: object = (
                    len(present) if op.operation == "count" else sum(present, Decimal(0))
                )
                row[op.alias or ""] = str(value) if as_strings else value
            rows.append(row)
        results[query.name] = AnalyticsQueryResult.model_validate(
            {
                "name": query.name,
                "timeRange": query.time_range.to_wire() if query.time_range else {},
                "result": rows,
            }
        )
    return results
