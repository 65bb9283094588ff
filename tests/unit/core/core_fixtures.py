"""Helpers of the money-core tests: a small valid config document, paths, a YAML writer."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[3]
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
