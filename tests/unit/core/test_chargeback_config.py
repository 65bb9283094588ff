"""chargeback.yaml and the mapping CSV: valid files load, every bad one is explained."""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from vapi_chargeback.config import (
    ChargebackConfig,
    ConfigError,
    load_config,
    render_json_schema,
    sha256_file,
)
from vapi_chargeback.mapping import AssistantMapping, MappingMatch, load_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.zones import IANA_AREAS, timezone_problem

from support.core_fixtures import DEMO_CONFIG, PROJECT, base_config

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
        _set("org.timezone", "EST"),
        r"org\.timezone: 'EST' is an abbreviation, not an IANA Area/Location zone, so statement"
        r" months would miss or misplace summer time; use 'America/New_York'",
        id="timezone-abbreviation-est",
    ),
    pytest.param(
        _set("org.timezone", "CET"),
        r"org\.timezone: 'CET' is an abbreviation.*use 'Europe/Paris' or 'Europe/Berlin'",
        id="timezone-abbreviation-cet",
    ),
    pytest.param(
        _set("org.timezone", "Etc/GMT+5"),
        r"org\.timezone: 'Etc/GMT\+5' is a fixed UTC offset \(POSIX sign: it means UTC-5\)",
        id="timezone-fixed-offset",
    ),
    pytest.param(
        _set("org.timezone", "US/Eastern"),
        r"org\.timezone: 'US/Eastern' is a legacy alias.*use 'America/New_York'",
        id="timezone-legacy-alias",
    ),
    pytest.param(
        _set("cost_centers[1].valid_to", "2025-13-01"),
        r"cost_centers\[1\]\.valid_to: '2025-13-01' is not a date; write it as YYYY-MM-DD",
        id="cost-center-end-not-a-date",
    ),
    pytest.param(
        _set("cost_centers[1].valid_to", 20251231),
        r"cost_centers\[1\]\.valid_to: 20251231 is not a date",
        id="cost-center-end-a-number",
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


@pytest.mark.parametrize(
    ("zone", "suggested"),
    [
        ("EST", "'America/New_York'"),
        ("EST5EDT", "'America/New_York'"),
        ("est", "'America/New_York'"),
        ("CET", "'Europe/Paris' or 'Europe/Berlin'"),
        ("MST", "'America/Denver' or 'America/Phoenix'"),
        ("HST", "'Pacific/Honolulu'"),
        ("GMT", "'UTC' or 'Europe/London'"),
        ("Etc/Zulu", "'UTC'"),
        ("GMT+1", "the name of the place whose calendar the statements follow"),
        ("+02:00", "the name of the place whose calendar the statements follow"),
        ("Japan", "'Asia/Tokyo'"),
    ],
)
def test_timezone_abbreviations_are_refused_with_the_iana_name(
    zone: str, suggested: str, config_from: Callable[[dict[str, Any]], ChargebackConfig]
) -> None:
    doc = base_config()
    doc["org"]["timezone"] = zone

    with pytest.raises(ConfigError, match=r"org\.timezone: .*; use " + re.escape(suggested)):
        config_from(doc)


@pytest.mark.parametrize(
    "zone", ["UTC", "Etc/UTC", "America/New_York", "America/Indiana/Indianapolis", "Asia/Calcutta"]
)
def test_area_location_zones_and_utc_are_accepted(
    zone: str, config_from: Callable[[dict[str, Any]], ChargebackConfig]
) -> None:
    doc = base_config()
    doc["org"]["timezone"] = zone

    assert config_from(doc).timezone == zone


def test_every_zone_of_the_database_is_accepted_only_as_area_location_and_hints_are_accepted() -> (
    None
):
    """No abbreviation slips through, and no suggestion names a zone that would be refused."""
    refused = 0
    for zone in sorted(zoneinfo.available_timezones()):
        problem = timezone_problem(zone)
        area = zone.split("/", 1)[0]
        if zone in ("UTC", "Etc/UTC") or ("/" in zone and area in IANA_AREAS):
            assert problem is None, zone
            continue
        assert problem is not None, zone
        refused += 1
        suggested = re.findall(r"'([^']+)'", problem.split("; use ", 1)[1])
        assert suggested, problem
        assert all(timezone_problem(name) is None for name in suggested), problem
    assert refused > 100


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


# --- upper-case ids and retired cost centers ---------------------------------------------

UPPER = "8D882195-A100-428D-AB23-6B82481BD9FE"


def test_upper_case_assistant_ids_are_stored_and_found_in_lower_case(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    mapping_from: Callable[[str, ChargebackConfig], AssistantMapping],
) -> None:
    config = config_from(base_config())

    mapping = mapping_from(f"{UPPER},tier1,support,,\n", config)

    assert [entry.assistant_id for entry in mapping.entries] == [UPPER.lower()]
    assert mapping.lookup(UPPER.lower(), date(2026, 10, 1)) == ("tier1", "support")
    assert mapping.lookup(UPPER, date(2026, 10, 1)) == ("tier1", "support")


def test_the_same_assistant_in_two_cases_overlaps_itself(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    mapping_from: Callable[[str, ChargebackConfig], AssistantMapping],
) -> None:
    config = config_from(base_config())

    with pytest.raises(
        ConfigError, match=rf":3: assistant '{UPPER.lower()}' …\.\.… overlaps line 2"
    ):
        mapping_from(f"{UPPER},a,sales,,\n{UPPER.lower()},b,support,,\n", config)


def _retired(end: Any = "2025-12-31") -> dict[str, Any]:
    """The base config with ``support`` retired after ``end``."""
    doc = base_config()
    doc["cost_centers"][1]["valid_to"] = end
    return doc


@pytest.mark.parametrize("end", [date(2025, 12, 31), "2025-12-31"], ids=["yaml-date", "quoted"])
def test_a_cost_center_end_is_a_date(
    end: Any, config_from: Callable[[dict[str, Any]], ChargebackConfig]
) -> None:
    config = config_from(_retired(end))

    assert config.cost_center("support").valid_to == date(2025, 12, 31)
    assert config.cost_center_ends == {"support": date(2025, 12, 31)}


def test_a_timestamp_is_not_a_cost_center_end(
    write_config: Callable[[dict[str, Any]], Path],
) -> None:
    path = write_config(_retired())
    text = path.read_text()
    assert "valid_to: '2025-12-31'" in text
    path.write_text(text.replace("'2025-12-31'", "2025-12-31 18:00:00"))

    with pytest.raises(ConfigError, match=r"valid_to: 2025-12-31 18:00:00 has a time of day"):
        load_config(path)


def test_mapping_rows_of_a_retired_cost_center_load_while_they_end_in_time(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    mapping_from: Callable[[str, ChargebackConfig], AssistantMapping],
) -> None:
    config = config_from(_retired())

    mapping = mapping_from(
        "a1,tier1,support,2025-01-01,2025-06-30\n"
        "a1,tier1,support,2025-07-01,2025-12-31\n"
        "a1,inbound,sales,2026-01-01,\n",
        config,
    )

    assert mapping.lookup("a1", date(2025, 12, 31)) == ("tier1", "support")
    assert mapping.lookup("a1", date(2026, 1, 1)) == ("inbound", "sales")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param(
            "a1,tier1,support,2025-01-01,\n",
            r"assistant_teams\.csv:2: valid_to is empty: the row charges cost center 'support'"
            r" after 2025-12-31, the last day it is charged \(its valid_to in chargeback\.yaml\);"
            r" end the row on or before 2025-12-31, and map the assistant to a cost center still"
            r" charged from 2026-01-01 in a row of its own",
            id="open-ended",
        ),
        pytest.param(
            "a1,tier1,support,2025-01-01,2026-01-01\n",
            r":2: valid_to 2026-01-01 charges cost center 'support' after 2025-12-31",
            id="ends-a-day-late",
        ),
        pytest.param(
            "a1,tier1,support,2026-02-01,2026-02-28\n",
            r":2: valid_to 2026-02-28 charges cost center 'support' after 2025-12-31",
            id="starts-after-the-end",
        ),
    ],
)
def test_mapping_rows_charging_a_retired_cost_center_later_are_refused(
    row: str,
    expected: str,
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    mapping_from: Callable[[str, ChargebackConfig], AssistantMapping],
) -> None:
    config = config_from(_retired())

    with pytest.raises(ConfigError, match=expected):
        mapping_from(row, config)


def _period(label: str) -> StatementPeriod:
    return StatementPeriod.for_month(label, "Europe/Berlin")


def test_a_month_up_to_the_end_sees_the_whole_config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = config_from(_retired())

    assert config.for_period(_period("2025-12")) is config
    assert config.for_period(_period("2025-01")) is config


def test_a_month_after_the_end_has_no_retired_cost_center_and_no_share_of_it(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = _retired()
    doc["cost_centers"].append({"id": "ops", "name": "Ops", "owner_email": "o@example.com"})
    doc["shared_costs"] = [
        _pool(amount=1, method="even"),
        _pool(
            name="split",
            amount=1,
            method="fixed",
            percentages={"support": 50, "sales": 30, "ops": 20},
        ),
    ]
    config = config_from(doc)

    january = config.for_period(_period("2026-01"))

    assert january.cost_center_ids == ["sales", "ops"]
    assert january.shared_costs[0] == config.shared_costs[0]
    assert january.shared_costs[1].percentages == {"sales": Decimal(30), "ops": Decimal(20)}
    assert (january.sha256, january.timezone) == (config.sha256, config.timezone)
    assert config.cost_center_ids == ["sales", "support", "ops"], "the loaded config is unchanged"


def test_a_month_whose_fixed_shares_all_ended_is_refused(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = _retired()
    doc["shared_costs"] = [
        _pool(amount=1, method="fixed", percentages={"support": 100, "sales": 0}),
    ]
    config = config_from(doc)

    with pytest.raises(
        ConfigError,
        match=r"shared_costs\[0\]\.percentages: every cost center with a share \(support\) ended"
        r" before 2026-01 \(from 2026-01-01\); give a share to one still charged",
    ):
        config.for_period(_period("2026-01"))
    assert config.for_period(_period("2025-12")) is config


def test_a_month_after_every_cost_center_ended_is_refused(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = _retired()
    doc["cost_centers"][0]["valid_to"] = "2025-11-30"
    config = config_from(doc)

    with pytest.raises(ConfigError, match=r"every cost center ended \(valid_to\) before 2026-01"):
        config.for_period(_period("2026-01"))
    assert config.for_period(_period("2025-12")).cost_center_ids == ["support"]
