"""``mapping_rules:``: bad rules are named by file, line and field; good ones match in order."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback.config import ChargebackConfig, ConfigError, load_config
from vapi_chargeback.mapping_rules import RuleMatch, match_rules

from support.core_fixtures import base_config

DAY = date(2026, 10, 15)

BAD_RULES = [
    pytest.param(
        [{"name": "^sales-", "cost_center": "marketing", "team": "x"}],
        r"mapping_rules\[0\]\.cost_center: 'marketing' is not a cost center id",
        id="unknown-cost-center",
    ),
    pytest.param(
        [{"name": "sales-(", "cost_center": "sales", "team": "x"}],
        r"mapping_rules\[0\]\.name: 'sales-\(' is not a valid regular expression",
        id="invalid-regex",
    ),
    pytest.param(
        [{"metadata": " "}],
        r"mapping_rules\[0\]\.metadata: the metadata key is empty",
        id="empty-metadata-key",
    ),
    pytest.param(
        [{"metadata": "costCenter", "team_key": ""}],
        r"mapping_rules\[0\]\.team_key: the metadata key is empty",
        id="empty-team-key",
    ),
    pytest.param(
        [{"metadata": "costCenter"}, {"metadata": "costCenter", "team_key": "team"}],
        r"mapping_rules\[1\]\.metadata: shadowed: mapping_rules\[0\] reads the same key",
        id="shadowed-metadata",
    ),
    pytest.param(
        [
            {"name": "^sales-", "cost_center": "sales", "team": "a"},
            {"metadata": "costCenter"},
            {"name": "^sales-", "cost_center": "support", "team": "b"},
        ],
        r"mapping_rules\[2\]\.name: shadowed: mapping_rules\[0\] has the same expression",
        id="shadowed-name",
    ),
    pytest.param(
        [{"metadata": "costCenter", "name": "^x"}],
        r"mapping_rules\[0\]: give exactly one of metadata: \(a key\) or name: \(a regex\)",
        id="both-kinds",
    ),
    pytest.param(
        [{"name": "^x", "cost_center": "sales"}],
        r"mapping_rules\[0\]\.team: a name rule needs team:",
        id="name-rule-without-team",
    ),
    pytest.param(
        [{"metadata": "costCenter", "cost_center": "sales"}],
        r"mapping_rules\[0\]\.cost_center: a metadata rule takes its cost center from",
        id="metadata-rule-with-cost-center",
    ),
    pytest.param(
        [{"metadata": "costCenter", "colour": "red"}],
        r"mapping_rules\[0\]\.colour: unknown field",
        id="unknown-field",
    ),
]


@pytest.mark.parametrize(("rules", "expected"), BAD_RULES)
def test_a_bad_rule_names_file_line_and_field(
    rules: list[dict[str, Any]], expected: str, write_config: Callable[[dict[str, Any]], Path]
) -> None:
    doc = base_config()
    doc["mapping_rules"] = rules
    path = write_config(doc)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert re.search(rf"{re.escape(str(path))}:[1-9]\d*: .*{expected}", str(caught.value)), str(
        caught.value
    )


def test_rules_built_in_code_are_checked_too() -> None:
    doc = base_config()
    doc["mapping_rules"] = [{"name": "(", "cost_center": "sales", "team": "x"}]
    with pytest.raises(ValueError, match="not a valid regular expression"):
        ChargebackConfig.model_validate(doc)


@pytest.fixture
def rules(config_from: Callable[[dict[str, Any]], ChargebackConfig]) -> ChargebackConfig:
    doc = base_config()
    doc["cost_centers"][1]["valid_to"] = "2026-10-10"
    doc["mapping_rules"] = [
        {"metadata": "costCenter", "team_key": "team"},
        {"metadata": "billing"},
        {"metadata": "unit", "team": "by-unit"},
        {"name": "^sales-", "cost_center": "sales", "team": "outbound"},
        {"name": "(?i)help", "cost_center": "support", "team": "desk"},
    ]
    return config_from(doc)


ENDS = {"sales": None, "support": date(2026, 10, 10)}


@pytest.mark.parametrize(
    ("name", "metadata", "day", "expected"),
    [
        pytest.param(
            "sales-bot", {"costCenter": "support", "team": "tier\n2"}, date(2026, 10, 1),
            RuleMatch("support", "tier 2", "metadata"), id="metadata-beats-name",
        ),
        pytest.param(
            "x", {"costCenter": "nope", "billing": "sales"}, DAY,
            RuleMatch("sales", "unassigned", "metadata"),
            id="unknown-value-falls-through-to-next-key",
        ),
        pytest.param(
            "sales-new", {"costCenter": 7}, DAY,
            RuleMatch("sales", "outbound", "name"), id="name-catches-new-assistant",
        ),
        pytest.param(
            "Helpdesk", {"costCenter": "support"}, DAY, None,
            id="ended-cost-center-matches-nothing-after-valid-to",
        ),
        pytest.param(
            "ops", {"unit": "sales", "team": ""}, DAY,
            RuleMatch("sales", "by-unit", "metadata"), id="empty-team-value-takes-the-rule-team",
        ),
        pytest.param("ops bot", {}, DAY, None, id="nothing-matches"),
    ],
)  # fmt: skip
def test_rules_are_tried_in_order(
    rules: ChargebackConfig,
    name: str,
    metadata: dict[str, Any],
    day: date,
    expected: RuleMatch | None,
) -> None:
    assert match_rules(rules.mapping_rules, name, metadata, ENDS, day) == expected
