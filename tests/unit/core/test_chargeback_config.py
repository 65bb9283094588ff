"""chargeback.yaml and the mapping CSV: valid files load, every bad one is explained."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from core_fixtures import DEMO_CONFIG, PROJECT, base_config

from vapi_chargeback.config import (
    AssistantMapping,
    ChargebackConfig,
    ConfigError,
    MappingMatch,
    load_config,
    load_mapping,
    render_json_schema,
    sha256_file,
)

SCHEMA = PROJECT / "include" / "config" / "chargeback.schema.json"

Edit = Callable[[dict[str, Any]], None]


def _query(**changes: Any) -> dict[str, Any]:
    return {"id": "q", "title": "Q", "dimensions": ["endedReason"], "metrics": ["calls"], **changes}


def _pool(**fields: Any) -> dict[str, Any]:
    return {"name": "pool", **fields}


def _set(path: str, value: Any) -> Edit:
    """An edit setting ``a.b[1].c`` in the document to ``value``."""

    def edit(doc: dict[str, Any]) -> None:
        parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
        target: Any = doc
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = value

    return edit


def test_demo_config_loads_with_its_hash() -> None:
    config = load_config(DEMO_CONFIG)

    assert config.cost_center_ids == ["sales", "support", "marketing", "operations"]
    assert config.timezone == "Europe/Berlin"
    assert config.variable_key == "costCenter"
    assert config.components == ["transport", "stt", "llm", "tts", "vapi"]
    assert config.sha256 == sha256_file(DEMO_CONFIG)
    assert [(p.name, p.method) for p in config.shared_costs] == [
        ("platform-fee", "even"),
        ("phone-numbers", "proportional"),
        ("calls-without-assistant", "fixed"),
    ]


def test_yaml_money_is_read_exactly_as_decimal(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    doc["shared_costs"] = [_pool(amount=Decimal("0.10"), method="even")]
    doc["shared_costs"].append(
        {
            "name": "split",
            "amount": Decimal("84.60"),
            "method": "fixed",
            "percentages": {"sales": Decimal("33.3"), "support": Decimal("66.7")},
        }
    )

    config = config_from(doc)

    assert config.shared_costs[0].amount == Decimal("0.10")
    assert isinstance(config.shared_costs[0].amount, Decimal)
    assert config.shared_costs[1].percentages == {
        "sales": Decimal("33.3"),
        "support": Decimal("66.7"),
    }


def test_schema_file_is_current() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == render_json_schema(), (
        "include/config/chargeback.schema.json is stale; regenerate it with"
        " `.venv/bin/python -m vapi_chargeback.config > include/config/chargeback.schema.json`"
    )


def test_demo_config_validates_against_the_exported_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8")), schema)


def test_constructing_in_code_applies_the_cross_checks() -> None:
    doc = base_config()
    doc["cost_centers"][1]["id"] = "sales"

    with pytest.raises(ValueError, match=r"cost_centers\[1\]\.id: duplicate cost center id"):
        ChargebackConfig.model_validate(doc)


BAD_CONFIGS = [
    pytest.param(
        _set("cost_centers[1].id", "sales"),
        r"cost_centers\[1\]\.id: duplicate cost center id 'sales'",
        id="duplicate-cost-center-id",
    ),
    pytest.param(
        _set("cost_centers[0].id", "Sales Team"),
        r"cost_centers\[0\]\.id: 'Sales Team' is not a slug",
        id="bad-slug",
    ),
    pytest.param(
        _set("cost_centers[0].id", "a" * 41),
        r"cost_centers\[0\]\.id: 'a+' is not a slug",
        id="slug-too-long",
    ),
    pytest.param(
        _set("cost_centers[0].queries", [_query(metrics=["calls", "revenue"])]),
        r"cost_centers\[0\]\.queries\[0\]\.metrics\[1\]: 'revenue' is not allowed",
        id="unknown-metric",
    ),
    pytest.param(
        _set("cost_centers[0].queries", [_query(dimensions=["country"])]),
        r"queries\[0\]\.dimensions\[0\]: 'country' is not allowed",
        id="unknown-dimension",
    ),
    pytest.param(
        _set("cost_centers[0].queries", [_query(step="hour")]),
        r"queries\[0\]\.step: 'hour' is not allowed: 'day', 'week' or 'month'",
        id="unknown-step",
    ),
    pytest.param(
        _set("cost_centers[0].queries", [_query(), _query(title="again")]),
        r"cost_centers\[0\]\.queries\[1\]\.id: duplicate query definition id 'q'",
        id="duplicate-definition-id",
    ),
    pytest.param(
        _set("org.timezone", "Berlin"),
        r"org\.timezone: 'Berlin' is not an IANA time zone name",
        id="bad-timezone",
    ),
    pytest.param(
        _set("components", ["llm", "gpu"]),
        r"components\[1\]: 'gpu' is not allowed",
        id="unknown-component",
    ),
    pytest.param(
        _set("components", ["llm", "llm"]),
        r"components: 'llm' listed more than once",
        id="repeated-component",
    ),
    pytest.param(
        _set("currency", "EUR"),
        r"currency: 'EUR' is not allowed: 'USD'",
        id="unsupported-currency",
    ),
    pytest.param(
        _set("variable_key", "assistantId"),
        r"variable_key: 'assistantId' collides with a key of the analytics result rows",
        id="variable-key-collides",
    ),
    pytest.param(
        _set("finance_email", "finance"),
        r"finance_email: 'finance' is not an e-mail address",
        id="bad-email",
    ),
    pytest.param(
        _set("settlement_delay_hours", "6h"),
        r"settlement_delay_hours: Input should be a valid integer",
        id="delay-not-integer",
    ),
    pytest.param(
        _set("cost_centres", []),
        r"cost_centres: unknown field; remove it or fix its spelling",
        id="unknown-field",
    ),
    pytest.param(
        lambda doc: doc.pop("org"),
        r"org: required field missing; add it",
        id="missing-org",
    ),
    pytest.param(
        _set(
            "shared_costs",
            [_pool(amount=1, method="fixed", percentages={"sales": 60, "support": 39})],
        ),
        r"shared_costs\[0\]\.percentages: percentages sum to 99, not 100",
        id="percentages-not-100",
    ),
    pytest.param(
        _set(
            "shared_costs",
            [_pool(amount=1, method="fixed", percentages={"sales": 60, "legal": 40})],
        ),
        r"shared_costs\[0\]\.percentages\.legal: 'legal' is not a cost center id",
        id="percentages-unknown-cost-center",
    ),
    pytest.param(
        _set("shared_costs", [_pool(amount=1, method="proportional")]),
        r"shared_costs\[0\]: .*method 'proportional' needs 'driver",
        id="proportional-without-driver",
    ),
    pytest.param(
        _set("shared_costs", [_pool(amount=1, method="even", driver="calls")]),
        r"shared_costs\[0\]: .*'driver' only applies to method 'proportional'",
        id="driver-on-even",
    ),
    pytest.param(
        _set(
            "shared_costs",
            [_pool(amount=1, source="calls-without-assistant", method="even")],
        ),
        r"shared_costs\[0\]: set exactly one of 'amount'",
        id="amount-and-source",
    ),
    pytest.param(
        _set("shared_costs", [_pool(amount=Decimal("10.005"), method="even")]),
        r"shared_costs\[0\]\.amount: amount 10.005 has more than 2 decimal places",
        id="amount-fraction-of-cent",
    ),
    pytest.param(
        _set("shared_costs", [_pool(amount=-5, method="even")]),
        r"shared_costs\[0\]\.amount: amount -5 is negative",
        id="negative-amount",
    ),
    pytest.param(
        _set("shared_costs", [_pool(amount="ten", method="even")]),
        r"shared_costs\[0\]\.amount: 'ten' is not a finite decimal",
        id="amount-not-a-number",
    ),
    pytest.param(
        _set("shared_costs", [_pool(amount=1, method="even"), _pool(amount=2, method="even")]),
        r"shared_costs\[1\]\.name: duplicate pool name 'pool'",
        id="duplicate-pool-name",
    ),
    pytest.param(
        _set(
            "shared_costs",
            [
                {"name": "a", "source": "calls-without-assistant", "method": "even"},
                {"name": "b", "source": "calls-without-assistant", "method": "even"},
            ],
        ),
        r"shared_costs\[1\]\.source: a second pool re-spreads the same source",
        id="source-spread-twice",
    ),
]


@pytest.mark.parametrize(("edit", "expected"), BAD_CONFIGS)
def test_bad_config_names_file_line_and_field(
    edit: Edit, expected: str, write_config: Callable[[dict[str, Any]], Path]
) -> None:
    doc = base_config()
    edit(doc)
    path = write_config(doc)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert re.search(rf"{re.escape(str(path))}:[1-9]\d*: .*{expected}", str(caught.value)), str(
        caught.value
    )


def test_all_problems_are_reported_at_once(
    write_config: Callable[[dict[str, Any]], Path],
) -> None:
    doc = base_config()
    doc["org"]["timezone"] = "Mars/Olympus"
    doc["cost_centers"][0]["id"] = "Sales"
    doc["cost_centers"].append(dict(doc["cost_centers"][1]))
    doc["shared_costs"] = [_pool(amount=1, method="fixed", percentages={"support": 50})]

    with pytest.raises(ConfigError) as caught:
        load_config(write_config(doc))

    assert len(caught.value.problems) == 4, str(caught.value)
    assert str(caught.value).startswith(f"{write_config(doc)}: 4 problems")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("org: [unclosed\n", r"chargeback\.yaml:2: YAML syntax error", id="syntax"),
        pytest.param("- a list\n", r"chargeback\.yaml:1: expected a mapping", id="not-a-mapping"),
        pytest.param("", r"chargeback\.yaml:1: expected a mapping", id="empty"),
        pytest.param(
            "org: {name: A, timezone: UTC}\norg: {name: B, timezone: UTC}\n",
            r"chargeback\.yaml:2: org: key repeated \(first on line 1\)",
            id="repeated-key",
        ),
    ],
)
def test_bad_yaml_text(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "chargeback.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_yaml_error_line_points_at_the_offending_value(
    write_config: Callable[[dict[str, Any]], Path],
) -> None:
    doc = base_config()
    doc["cost_centers"][1]["owner_email"] = "nobody"
    path = write_config(doc)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "nobody" in text)

    with pytest.raises(ConfigError, match=rf":{line}: cost_centers\[1\]\.owner_email"):
        load_config(path)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found; check the path"):
        load_config(tmp_path / "nope.yaml")


# --- mapping CSV ---------------------------------------------------------------------


def test_mapping_lookup_is_effective_dated_and_inclusive(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    mapping_from: Callable[[str, ChargebackConfig], AssistantMapping],
) -> None:
    config = config_from(base_config())
    mapping = mapping_from(
        "asst-1,inbound-sales,sales,,2026-10-14\n"
        "asst-1,tier1-support,support,2026-10-15,\n"
        "asst-2,billing-support,support,,\n",
        config,
    )

    assert mapping.lookup("asst-1", date(2026, 10, 14)) == MappingMatch("inbound-sales", "sales")
    assert mapping.lookup("asst-1", date(2026, 10, 15)) == ("tier1-support", "support")
    assert mapping.lookup("asst-1", date(2030, 1, 1)) == ("tier1-support", "support")
    assert mapping.lookup("asst-2", date(1999, 1, 1)) == ("billing-support", "support")
    assert mapping.lookup("asst-3", date(2026, 10, 14)) is None
    assert mapping.sha256 is not None and len(mapping.sha256) == 64


def test_mapping_tolerates_bom_blank_lines_and_padding(
    tmp_path: Path, config_from: Callable[[dict[str, Any]], ChargebackConfig]
) -> None:
    path = tmp_path / "teams.csv"
    path.write_bytes(
        "\ufeffassistant_id,team,cost_center_id,valid_from,valid_to\r\n"
        " asst-1 , inbound-sales , sales , 2026-10-01 ,\r\n\r\n".encode()
    )

    mapping = load_mapping(path, config_from(base_config()))

    assert mapping.lookup("asst-1", date(2026, 10, 1)) == ("inbound-sales", "sales")
    assert mapping.lookup("asst-1", date(2026, 9, 30)) is None


BAD_MAPPINGS = [
    pytest.param(
        "a1,t,sales,2026-10-01,2026-10-20\na1,t,support,2026-10-20,\n",
        r":3: assistant 'a1' 2026-10-20\.\.… overlaps line 2 \(2026-10-01\.\.2026-10-20\)",
        id="overlap-by-one-day",
    ),
    pytest.param(
        "a1,t,sales,,\na1,t,support,,\n",
        r":3: assistant 'a1' …\.\.… overlaps line 2",
        id="overlap-both-open",
    ),
    pytest.param(
        "a1,t,sales,2026-01-01,2026-12-31\na1,t,sales,2026-03-01,2026-03-31\n"
        "a1,t,sales,2026-06-01,2026-06-30\n",
        r":4: assistant 'a1' 2026-06-01\.\.2026-06-30 overlaps line 2",
        id="overlap-nested",
    ),
    pytest.param(
        "a1,t,legal,,\n",
        r":2: cost_center_id 'legal' is not in chargeback\.yaml; use one of \['sales', 'support'\]",
        id="unknown-cost-center",
    ),
    pytest.param(
        "a1,t,sales,2026/10/01,\n",
        r":2: valid_from '2026/10/01' is not a date; write it as YYYY-MM-DD",
        id="bad-date-format",
    ),
    pytest.param(
        "a1,t,sales,,2026-02-30\n",
        r":2: valid_to '2026-02-30' is not a date",
        id="impossible-date",
    ),
    pytest.param(
        "a1,t,sales,2026-10-15,2026-10-01\n",
        r":2: valid_to 2026-10-01 is before valid_from 2026-10-15; swap or fix",
        id="to-before-from",
    ),
    pytest.param(",t,sales,,\n", r":2: assistant_id is blank; fill it in", id="blank-assistant"),
    pytest.param("a1,,sales,,\n", r":2: team is blank", id="blank-team"),
    pytest.param("a1,t,,,\n", r":2: cost_center_id is blank", id="blank-cost-center"),
    pytest.param("a1,t\n", r":2: 2 fields; expected 5", id="too-few-fields"),
    pytest.param(
        "a1,t,sales,,,extra\n",
        r":2: 6 fields; expected 5",
        id="too-many-fields",
    ),
]


@pytest.mark.parametrize(("rows", "expected"), BAD_MAPPINGS)
def test_bad_mapping_names_file_and_line(
    rows: str,
    expected: str,
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    mapping_from: Callable[[str, ChargebackConfig], AssistantMapping],
) -> None:
    config = config_from(base_config())

    with pytest.raises(ConfigError, match=r"assistant_teams\.csv" + expected):
        mapping_from(rows, config)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("assistant,team,cost_center,valid_from,valid_to", id="renamed-columns"),
        pytest.param("team,assistant_id,cost_center_id,valid_from,valid_to", id="reordered"),
        pytest.param("", id="empty-file"),
    ],
)
def test_bad_mapping_header(
    header: str, tmp_path: Path, config_from: Callable[[dict[str, Any]], ChargebackConfig]
) -> None:
    path = tmp_path / "teams.csv"
    path.write_text(header + "\n" if header else "", encoding="utf-8")

    with pytest.raises(
        ConfigError,
        match=r"teams\.csv:1: header is .*; it must be exactly "
        r"'assistant_id,team,cost_center_id,valid_from,valid_to'",
    ):
        load_mapping(path, config_from(base_config()))


def test_mapping_reports_every_bad_line(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    mapping_from: Callable[[str, ChargebackConfig], AssistantMapping],
) -> None:
    config = config_from(base_config())

    with pytest.raises(ConfigError) as caught:
        mapping_from("a1,t,legal,,\na2,,sales,,\na3,t,sales,bad,\n", config)

    assert [re.search(r":(\d+):", p).group(1) for p in caught.value.problems] == ["2", "3", "4"]  # type: ignore[union-attr]


def test_demo_mapping_fits_the_demo_config() -> None:
    config = load_config(DEMO_CONFIG)

    mapping = load_mapping(DEMO_CONFIG.with_name(config.mapping), config)

    assert config.mapping == "assistant_teams.csv"
    assert {e.cost_center_id for e in mapping.entries} == set(config.cost_center_ids)
    assert mapping.sha256 == sha256_file(DEMO_CONFIG.with_name(config.mapping))
