"""Allocation rules, exact lines, shared pools and reconciliation, end to end over fake rows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback import statement_json
from vapi_chargeback.allocate import allocate
from vapi_chargeback.attribution import AnalyticsResultError
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.money import round_money
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import build_plan
from vapi_chargeback.reconcile import ReconciliationError, reconcile
from vapi_chargeback.statement import ChargebackLine, Statement
from vapi_chargeback.statements.totals import summarize
from vapi_chargeback.statements.validate import validate_statement
from vapi_chargeback.statements.xlsx import write_cost_center_workbook

from support.core_fixtures import Call, base_config, fake_results

D = Decimal
ZERO_ID = "00000000-0000-0000-0000-000000000000"
OCT = 10

MAPPING = (
    "assistant_id,team,cost_center_id,valid_from,valid_to\n"
    "asst-moving,inbound-sales,sales,,2026-10-14\n"
    "asst-moving,tier1-support,support,2026-10-15,\n"
    "asst-sales,outbound-sales,sales,,\n"
    "asst-support,billing-support,support,2026-01-01,\n"
)


def _mapping(config: ChargebackConfig, csv: str = MAPPING) -> AssistantMapping:
    entries, problems = parse_mapping(csv.encode(), "teams.csv", set(config.cost_center_ids))
    assert problems == []
    return AssistantMapping(entries)


def _run(
    config: ChargebackConfig,
    calls: list[Call],
    mapping: AssistantMapping | None = None,
    *,
    as_strings: bool = False,
) -> Statement:
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, calls, as_strings=as_strings)
    statement = allocate(config, mapping or _mapping(config), plan, results)
    reconcile(statement, plan, results)
    return statement


def _summary(statement: Statement) -> list[tuple[str, str, str, str, int, str]]:
    return [
        (
            line.cost_center_id,
            line.team,
            line.assistant_id,
            line.allocation,
            line.calls,
            str(line.cost_usd),
        )
        for line in statement.lines
    ]


def _day(n: int) -> date:
    return date(2026, OCT, n)


@pytest.fixture
def config(config_from: Callable[[dict[str, Any]], ChargebackConfig]) -> ChargebackConfig:
    return config_from(base_config())


def test_mid_month_mapping_change_splits_an_assistant_by_local_day(
    config: ChargebackConfig,
) -> None:
    calls = [
        Call(_day(1), D("1.00"), "asst-moving"),
        Call(_day(14), D("2.00"), "asst-moving"),
        Call(_day(15), D("4.00"), "asst-moving"),
        Call(_day(25), D("8.00"), "asst-moving"),
        Call(_day(31), D("16.00"), "asst-moving"),
    ]

    statement = _run(config, calls)

    assert _summary(statement) == [
        ("sales", "inbound-sales", "asst-moving", "direct", 2, "3.00"),
        ("support", "tier1-support", "asst-moving", "direct", 3, "28.00"),
    ]


def test_day_is_the_local_date_not_the_utc_date(config: ChargebackConfig) -> None:
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, [Call(_day(15), D("5.00"), "asst-moving")])

    assert results["core-allocation"].result[0]["date"] == "2026-10-14T22:00:00.000Z"
    statement = allocate(config, _mapping(config), plan, results)
    assert _summary(statement) == [("support", "tier1-support", "asst-moving", "direct", 1, "5.00")]


@pytest.mark.parametrize(
    ("assistant", "variable", "expected"),
    [
        pytest.param(
            "asst-sales",
            "support",
            ("support", "", "asst-sales", "direct"),
            id="value-beats-mapping-team-cleared",
        ),
        pytest.param(
            "asst-sales",
            "sales",
            ("sales", "outbound-sales", "asst-sales", "direct"),
            id="value-agrees-team-kept",
        ),
        pytest.param(
            "asst-moving",
            "support",
            ("support", "", "asst-moving", "direct"),
            id="value-beats-mapping-before-move",
        ),
        pytest.param(
            "asst-unknown",
            "sales",
            ("sales", "", "asst-unknown", "direct"),
            id="value-allocates-unmapped",
        ),
        pytest.param(
            None, "support", ("support", "", "", "direct"), id="value-allocates-no-assistant"
        ),
        pytest.param(
            "asst-sales",
            "",
            ("sales", "outbound-sales", "asst-sales", "direct"),
            id="empty-value-falls-to-mapping",
        ),
        pytest.param(
            "asst-sales",
            "Support",
            ("sales", "outbound-sales", "asst-sales", "direct"),
            id="value-must-match-exactly",
        ),
        pytest.param(
            "asst-sales",
            42,
            ("sales", "outbound-sales", "asst-sales", "direct"),
            id="non-string-value-falls-to-mapping",
        ),
        pytest.param(
            "asst-unknown",
            None,
            ("UNALLOCATED", "", "asst-unknown", "unallocated:unmapped-assistant"),
            id="unmapped",
        ),
        pytest.param(
            "asst-unknown",
            "legal",
            ("UNALLOCATED", "", "asst-unknown", "unallocated:unknown-cost-center"),
            id="unknown-value-unmapped",
        ),
        pytest.param(
            "asst-unknown",
            7,
            ("UNALLOCATED", "", "asst-unknown", "unallocated:unknown-cost-center"),
            id="numeric-value-unmapped",
        ),
        pytest.param(
            None, None, ("UNALLOCATED", "", "", "unallocated:no-assistant"), id="no-assistant"
        ),
        pytest.param(
            "", None, ("UNALLOCATED", "", "", "unallocated:no-assistant"), id="empty-assistant"
        ),
        pytest.param(
            ZERO_ID, None, ("UNALLOCATED", "", "", "unallocated:no-assistant"), id="all-zero-id"
        ),
        pytest.param(
            ZERO_ID,
            "legal",
            ("UNALLOCATED", "", "", "unallocated:no-assistant"),
            id="no-assistant-beats-unknown-value",
        ),
        pytest.param(
            "asst-support",
            None,
            ("support", "billing-support", "asst-support", "direct"),
            id="mapping",
        ),
    ],
)
def test_first_matching_rule_wins(
    config: ChargebackConfig, assistant: str | None, variable: object, expected: tuple[str, ...]
) -> None:
    statement = _run(config, [Call(_day(3), D("1.25"), assistant, variable)])

    assert _summary(statement) == [(*expected, 1, "1.25")]


def test_upper_case_assistant_ids_from_the_api_allocate_the_same(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    doc["cost_centers"][0]["queries"] = [
        {
            "id": "by-assistant",
            "title": "By assistant",
            "dimensions": ["assistantId"],
            "metrics": ["calls", "cost"],
        }
    ]
    config = config_from(doc)
    uuid = "9f1c2b7e-aa0d-4c3e-bf5a-0e6d2c4b8a1f"
    mapping = _mapping(config, MAPPING + f"{uuid},inbound-sales,sales,,\n")
    lower = [
        Call(_day(3), D("1.25"), uuid),
        Call(_day(4), D("2.50"), uuid),
        Call(_day(5), D("0.75"), "asst-moving"),
        Call(_day(6), D("0.40"), "asst-unmapped"),
    ]
    upper = [replace(call, assistant=(call.assistant or "").upper()) for call in lower]
    mixed = [lower[0], upper[1], lower[2], upper[3]]

    expected = _run(config, lower, mapping)

    assert _run(config, upper, mapping) == expected
    assert _run(config, mixed, mapping) == expected
    assert _summary(expected) == [
        ("sales", "inbound-sales", uuid, "direct", 2, "3.75"),
        ("sales", "inbound-sales", "asst-moving", "direct", 1, "0.75"),
        ("UNALLOCATED", "", "asst-unmapped", "unallocated:unmapped-assistant", 1, "0.40"),
    ]


def test_assistant_less_calls_share_one_unallocated_line(config: ChargebackConfig) -> None:
    calls = [
        Call(_day(2), D("0.10"), None),
        Call(_day(2), D("0.20"), ""),
        Call(_day(9), D("0.40"), ZERO_ID),
        Call(_day(9), D("0.80"), "asst-nobody"),
    ]

    statement = _run(config, calls)

    assert _summary(statement) == [
        ("UNALLOCATED", "", "", "unallocated:no-assistant", 3, "0.70"),
        ("UNALLOCATED", "", "asst-nobody", "unallocated:unmapped-assistant", 1, "0.80"),
    ]
    assert {line.cost_center_name for line in statement.lines} == {"Unallocated"}


def test_lines_round_together_to_the_column_totals(config: ChargebackConfig) -> None:
    parts = {"transport": D("0.0011"), "stt": D("0.0012"), "llm": D("0.0013")}
    calls = [
        Call(_day(d), D("0.0046"), a, duration=D("10.5"), components=parts)
        for d in range(1, 29)
        for a in ("asst-sales", "asst-support", "asst-moving", "asst-x")
    ]

    statement = _run(config, calls)

    lines = statement.lines
    assert (
        sum(line.cost_usd for line in lines) == round_money(D("0.0046") * len(calls)) == D("0.52")
    )
    assert sum(line.minutes for line in lines) == round_money(D("10.5") * len(calls) / 60)
    for name, value in parts.items():
        assert sum(line.components_usd[name] for line in lines) == round_money(value * len(calls))
    assert all(abs(line.cost_usd - D("0.0046") * line.calls) < D("0.01") for line in lines)
    for line in lines:
        assert line.other_usd == line.cost_usd - sum(line.components_usd.values())
        assert line.components_usd["tts"] == D("0.00")


def test_numbers_as_strings_give_the_same_statement(config: ChargebackConfig) -> None:
    calls = [Call(_day(d), D("0.3333"), "asst-sales", duration=D("61.7")) for d in range(1, 10)]

    assert _run(config, calls, as_strings=True) == _run(config, calls)


def _pools_config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], pools: list[dict[str, Any]]
) -> ChargebackConfig:
    doc = base_config()
    doc["cost_centers"].append(
        {"id": "marketing", "name": "Marketing", "owner_email": "m@example.com"}
    )
    doc["shared_costs"] = pools
    return config_from(doc)


SHARED_CALLS = [
    Call(_day(1), D("3.00"), "asst-sales", duration=D(600)),
    Call(_day(2), D("3.00"), "asst-sales", duration=D(600)),
    Call(_day(2), D("3.00"), "asst-sales", duration=D(600)),
    Call(_day(5), D("1.00"), "asst-support", duration=D(1800)),
    Call(_day(6), D("0.50"), None),
    Call(_day(7), D("0.51"), ZERO_ID),
]


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        pytest.param(
            {"name": "fee", "amount": D("100.00"), "method": "even"},
            {"sales": "33.34", "support": "33.33", "marketing": "33.33"},
            id="even",
        ),
        pytest.param(
            {"name": "fee", "amount": D("10.00"), "method": "proportional", "driver": "calls"},
            {"sales": "7.50", "support": "2.50"},
            id="proportional-calls",
        ),
        pytest.param(
            {"name": "fee", "amount": D("10.00"), "method": "proportional", "driver": "cost"},
            {"sales": "9.00", "support": "1.00"},
            id="proportional-cost",
        ),
        pytest.param(
            {"name": "fee", "amount": D("10.00"), "method": "proportional", "driver": "minutes"},
            {"sales": "5.00", "support": "5.00"},
            id="proportional-minutes",
        ),
        pytest.param(
            {
                "name": "fee",
                "amount": D("0.05"),
                "method": "fixed",
                "percentages": {"sales": D("33.3"), "marketing": D("66.7")},
            },
            {"sales": "0.02", "marketing": "0.03"},
            id="fixed",
        ),
    ],
)
def test_fixed_pools_add_shared_lines(
    pool: dict[str, Any],
    expected: dict[str, str],
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _pools_config(config_from, [pool])

    statement = _run(config, SHARED_CALLS)

    shared = [line for line in statement.lines if line.allocation == "shared:fee"]
    assert {line.cost_center_id: str(line.cost_usd) for line in shared} == expected
    for line in shared:
        assert (line.team, line.assistant_id, line.calls, line.minutes) == ("", "", 0, D(0))
        assert set(line.components_usd.values()) == {D(0)}
    assert sum(line.cost_usd for line in statement.lines) == D("11.01") + pool["amount"]


def test_calls_without_assistant_are_respread_not_unallocated(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _pools_config(
        config_from,
        [
            {"name": "fee", "amount": D("1.00"), "method": "even"},
            {
                "name": "orphans",
                "source": "calls-without-assistant",
                "method": "fixed",
                "percentages": {"sales": 50, "support": 25, "marketing": 25},
            },
        ],
    )

    parts = {"llm": D("0.105"), "stt": D("0.01")}
    orphans = [
        Call(_day(6), D("0.50"), None, duration=D(90), components=parts),
        Call(_day(7), D("0.51"), ZERO_ID, duration=D(45), components=parts),
    ]
    calls = [*SHARED_CALLS[:4], *orphans, Call(_day(8), D("2.00"), "asst-nobody")]

    statement = _run(config, calls)

    assert _summary(statement) == [
        ("sales", "outbound-sales", "asst-sales", "direct", 3, "9.00"),
        ("sales", "", "", "shared:fee", 0, "0.34"),
        ("sales", "", "", "shared:orphans", 1, "0.51"),
        ("support", "billing-support", "asst-support", "direct", 1, "1.00"),
        ("support", "", "", "shared:fee", 0, "0.33"),
        ("support", "", "", "shared:orphans", 1, "0.25"),
        ("marketing", "", "", "shared:fee", 0, "0.33"),
        ("marketing", "", "", "shared:orphans", 0, "0.25"),
        ("UNALLOCATED", "", "asst-nobody", "unallocated:unmapped-assistant", 1, "2.00"),
    ]
    orphan_lines = [line for line in statement.lines if line.allocation == "shared:orphans"]
    assert [str(line.minutes) for line in orphan_lines] == ["1.13", "0.56", "0.56"]
    assert [str(line.components_usd["llm"]) for line in orphan_lines] == ["0.11", "0.05", "0.05"]
    assert [str(line.components_usd["stt"]) for line in orphan_lines] == ["0.01", "0.01", "0.00"]
    assert "calls, minutes and every cost component" in statement.pool_notes["orphans"]
    assert "fee" not in statement.pool_notes


def test_proportional_pool_with_no_driver_splits_evenly_and_says_so(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _pools_config(
        config_from,
        [
            {
                "name": "sip-trunks",
                "amount": D("166.67"),
                "method": "proportional",
                "driver": "minutes",
            },
            {"name": "seats", "amount": D("9.00"), "method": "proportional", "driver": "calls"},
        ],
    )
    calls = [Call(_day(1), D("1.00"), "asst-sales", duration=D(0))]

    with caplog.at_level(logging.WARNING, logger="vapi_chargeback.allocate"):
        statement = _run(config, calls)

    trunks = {
        line.cost_center_id: str(line.cost_usd)
        for line in statement.lines
        if line.allocation == "shared:sip-trunks"
    }
    assert trunks == {"sales": "55.56", "support": "55.56", "marketing": "55.55"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "shared pool 'sip-trunks' is proportional to minutes, but minutes is zero for every"
        " cost center in 2026-10: split evenly over its 3 cost centers instead"
    ]
    assert statement.pool_notes == {
        "sip-trunks": "Proportional to minutes, but minutes was zero for every cost center"
        " this month: split evenly over the 3 cost centers instead."
    }
    seats = [line for line in statement.lines if line.allocation == "shared:seats"]
    assert [(line.cost_center_id, str(line.cost_usd)) for line in seats] == [("sales", "9.00")]


def test_a_zero_driver_note_reaches_the_shared_costs_sheet(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], tmp_path: Path
) -> None:
    config = _pools_config(
        config_from,
        [
            {"name": "fee", "amount": D("3.00"), "method": "even"},
            {
                "name": "sip-trunks",
                "amount": D("30.00"),
                "method": "proportional",
                "driver": "minutes",
            },
        ],
    )
    allocated = _run(config, [Call(_day(1), D("1.00"), "asst-support", duration=D(0))])
    statement = statement_json.loads(statement_json.dumps(allocated))
    center = statement.cost_centers[1]
    path = tmp_path / "support.xlsx"

    write_cost_center_workbook(
        statement, center, summarize(statement).lines_by_center[center.id], path
    )

    rows = [[c.value for c in row] for row in openpyxl.load_workbook(path)["Shared costs"].rows]
    assert rows[0][0] == "Pool" and rows[0][-1] == "Note"
    assert [(row[0], row[6], row[-1]) for row in rows[1:]] == [
        ("fee", 1, None),
        ("sip-trunks", 10, statement.pool_notes["sip-trunks"]),
        ("Total", 11, None),
    ]
    assert "split evenly over the 3 cost centers" in rows[2][-1]


def _retiring_config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], marketing_ends: date
) -> ChargebackConfig:
    doc = base_config()
    doc["cost_centers"].append(
        {
            "id": "marketing",
            "name": "Marketing",
            "owner_email": "m@example.com",
            "valid_to": marketing_ends,
        }
    )
    doc["shared_costs"] = [
        {"name": "fee", "amount": D("3.00"), "method": "even"},
        {
            "name": "split",
            "amount": D("6.00"),
            "method": "fixed",
            "percentages": {"sales": 50, "support": 25, "marketing": 25},
        },
    ]
    return config_from(doc)


def test_a_cost_center_ended_before_the_month_gets_no_share_no_charge_no_statement(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _retiring_config(config_from, date(2026, 9, 30))
    calls = [
        Call(_day(2), D("1.00"), "asst-sales", "marketing"),
        Call(_day(3), D("2.00"), "asst-nobody", "marketing"),
        Call(_day(4), D("4.00"), None, "marketing"),
    ]

    statement = _run(config, calls)

    assert _summary(statement) == [
        ("sales", "outbound-sales", "asst-sales", "direct", 1, "1.00"),
        ("sales", "", "", "shared:fee", 0, "1.50"),
        ("sales", "", "", "shared:split", 0, "4.00"),
        ("support", "", "", "shared:fee", 0, "1.50"),
        ("support", "", "", "shared:split", 0, "2.00"),
        ("UNALLOCATED", "", "", "unallocated:no-assistant", 1, "4.00"),
        ("UNALLOCATED", "", "asst-nobody", "unallocated:unknown-cost-center", 1, "2.00"),
    ]
    assert [center.id for center in statement.cost_centers] == ["sales", "support"]
    validate_statement(statement)


def test_variable_values_name_a_cost_center_only_through_its_last_day(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _retiring_config(config_from, _day(15))
    calls = [
        Call(_day(15), D("1.00"), "asst-nobody", "marketing"),
        Call(_day(16), D("2.00"), "asst-nobody", "marketing"),
        Call(_day(16), D("4.00"), "asst-sales", "marketing"),
    ]

    statement = _run(config, calls)

    assert _summary(statement) == [
        ("sales", "outbound-sales", "asst-sales", "direct", 1, "4.00"),
        ("sales", "", "", "shared:fee", 0, "1.00"),
        ("sales", "", "", "shared:split", 0, "3.00"),
        ("support", "", "", "shared:fee", 0, "1.00"),
        ("support", "", "", "shared:split", 0, "1.50"),
        ("marketing", "", "asst-nobody", "direct", 1, "1.00"),
        ("marketing", "", "", "shared:fee", 0, "1.00"),
        ("marketing", "", "", "shared:split", 0, "1.50"),
        ("UNALLOCATED", "", "asst-nobody", "unallocated:unknown-cost-center", 1, "2.00"),
    ]
    assert [center.id for center in statement.cost_centers] == ["sales", "support", "marketing"]


def test_reconciliation_catches_rows_lost_from_the_grouped_query(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _pools_config(config_from, [{"name": "fee", "amount": D("5.00"), "method": "even"}])
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, SHARED_CALLS)
    core = results["core-allocation"]
    results["core-allocation"] = core.model_copy(update={"result": core.result[1:]})
    statement = allocate(config, _mapping(config), plan, results)

    with pytest.raises(ReconciliationError) as caught:
        reconcile(statement, plan, results)

    message = str(caught.value)
    assert "lines 13.01 != org total 11.01 + shared 5.00 = 16.01 (difference -3.00)" in message
    assert (
        "grouped query 'core-allocation' totals 8.01; ungrouped 'org-total' totals 11.01" in message
    )
    assert caught.value.reconciliation.difference_usd == D("-3.00")


def test_reconciliation_result_when_it_adds_up(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _pools_config(config_from, [{"name": "fee", "amount": D("5.00"), "method": "even"}])
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, SHARED_CALLS)

    result = reconcile(allocate(config, _mapping(config), plan, results), plan, results)

    assert (result.org_total_usd, result.shared_total_usd, result.lines_total_usd) == (
        D("11.01"),
        D("5.00"),
        D("16.01"),
    )
    assert result.ok


@pytest.mark.parametrize(
    ("row_change", "message"),
    [
        pytest.param({"date": "2026-10-15T00:00:00.000Z"}, "not a local midnight", id="utc-bucket"),
        pytest.param({"date": "2026-11-01T23:00:00.000Z"}, "outside 2026-10", id="other-month"),
        pytest.param({"date": None}, "no 'date'", id="no-date"),
        pytest.param({"date": "yesterday"}, "not an ISO-8601 instant", id="bad-date"),
        pytest.param(
            {"sum_cost": 1.5}, r"sum_cost: expected an exact number, not a float", id="float"
        ),
        pytest.param({"sum_cost": "12,50"}, "numeric string", id="bad-string"),
        pytest.param({"count_id": "2.5"}, "not a whole number", id="fractional-count"),
    ],
)
def test_unexpected_rows_fail_loudly(
    config: ChargebackConfig, row_change: dict[str, object], message: str
) -> None:
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    results = fake_results(plan, [Call(_day(3), D("1.00"), "asst-sales")])
    core = results["core-allocation"]
    results["core-allocation"] = core.model_copy(
        update={"result": [{**core.result[0], **row_change}]}
    )

    with pytest.raises(AnalyticsResultError, match=message):
        allocate(config, _mapping(config), plan, results)


def test_missing_result_names_the_query(config: ChargebackConfig) -> None:
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))

    with pytest.raises(AnalyticsResultError, match="no result for query 'core-allocation'"):
        allocate(config, _mapping(config), plan, {})


def test_dst_month_in_new_york(config_from: Callable[[dict[str, Any]], ChargebackConfig]) -> None:
    doc = base_config()
    doc["org"]["timezone"] = "America/New_York"
    config = config_from(doc)
    plan = build_plan(config, StatementPeriod.for_month("2026-03", config.timezone))
    calls = [Call(date(2026, 3, d), D("1.00"), "asst-moving") for d in (1, 8, 9, 31)]

    results = fake_results(plan, calls)
    statement = allocate(config, _mapping(config), plan, results)

    dates = sorted(row["date"] for row in results["core-allocation"].result)
    assert dates == [
        "2026-03-01T05:00:00.000Z",
        "2026-03-08T05:00:00.000Z",
        "2026-03-09T04:00:00.000Z",
        "2026-03-31T04:00:00.000Z",
    ]
    assert _summary(statement) == [("sales", "inbound-sales", "asst-moving", "direct", 4, "4.00")]
    assert reconcile(statement, plan, results).ok


# --- property: any calls, any pools → exact lines, non-negative shares, reconciled ----

ASSISTANTS = [None, "", ZERO_ID, "asst-moving", "asst-sales", "asst-support", "asst-x", "asst-y"]
VARIABLES = [None, "", "sales", "support", "marketing", "legal", 3]

call_strategy = st.builds(
    Call,
    day=st.integers(min_value=1, max_value=31).map(_day),
    cost=st.decimals(min_value=0, max_value=50, places=6, allow_nan=False),
    assistant=st.sampled_from(ASSISTANTS),
    variable=st.sampled_from(VARIABLES),
    duration=st.decimals(min_value=0, max_value=3600, places=3, allow_nan=False),
    components=st.fixed_dictionaries(
        {
            c: st.decimals(min_value=0, max_value=5, places=5, allow_nan=False)
            for c in ("llm", "stt")
        }
    ),
)
amount_pool_strategy = st.one_of(
    st.builds(lambda a: {"amount": a, "method": "even"}, st.decimals(0, 10**5, places=2)),
    st.builds(
        lambda a, d: {"amount": a, "method": "proportional", "driver": d},
        st.decimals(0, 10**5, places=2),
        st.sampled_from(["cost", "minutes", "calls"]),
    ),
    st.builds(
        lambda a, p: {
            "amount": a,
            "method": "fixed",
            "percentages": {"sales": p, "marketing": 100 - p},
        },
        st.decimals(0, 10**5, places=2),
        st.integers(0, 100),
    ),
)
RESPREAD = {"source": "calls-without-assistant"}
respread_pool_strategy = st.one_of(
    st.just({**RESPREAD, "method": "even"}),
    st.sampled_from(["cost", "minutes", "calls"]).map(
        lambda d: {**RESPREAD, "method": "proportional", "driver": d}
    ),
    st.integers(0, 100).map(
        lambda p: {**RESPREAD, "method": "fixed", "percentages": {"sales": p, "support": 100 - p}}
    ),
)
pool_strategy = st.one_of(amount_pool_strategy, respread_pool_strategy)


def _assert_every_column_adds_up(
    statement: Statement, calls: list[Call], pools: list[dict[str, Any]]
) -> None:
    """Σ of each column over all lines is the org total (cost: plus the fixed pools)."""
    lines = statement.lines
    fixed = sum((p["amount"] for p in pools if "amount" in p), D(0))
    assert sum(line.cost_usd for line in lines) == round_money(sum(c.cost for c in calls)) + fixed
    assert sum(line.calls for line in lines) == len(calls)
    assert sum(line.minutes for line in lines) == round_money(sum(c.duration for c in calls) / 60)
    for name in ("llm", "stt"):
        exact = sum(c.components[name] for c in calls)
        assert sum(line.components_usd[name] for line in lines) == round_money(exact)
    for name in ("transport", "tts", "vapi"):
        assert {line.components_usd[name] for line in lines} <= {D(0)}
    for line in lines:
        assert line.cost_usd == line.cost_usd.quantize(D("0.01"))
        assert line.minutes == line.minutes.quantize(D("0.01"))
        if line.allocation.startswith("shared:"):
            usage = [line.calls, line.minutes, line.cost_usd, *line.components_usd.values()]
            assert any(usage), f"an empty shared line {line}"
            assert min(usage) >= 0


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(call_strategy, min_size=1, max_size=40),
    pools=st.lists(pool_strategy, max_size=3, unique_by=lambda p: "source" in p),
)
def test_any_statement_adds_up_exactly(
    calls: list[Call],
    pools: list[dict[str, Any]],
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    named = [{"name": f"pool-{i}", **pool} for i, pool in enumerate(pools)]
    config = _pools_config(config_from, named)

    statement = _run(config, calls)

    _assert_every_column_adds_up(statement, calls, pools)
    assert statement.lines == sorted(statement.lines, key=_canonical(config))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(call_strategy, min_size=1, max_size=40),
    respread=respread_pool_strategy,
    others=st.lists(amount_pool_strategy, max_size=3),
    position=st.integers(0, 3),
)
def test_a_calls_without_assistant_pool_keeps_calls_minutes_and_components_whole(
    calls: list[Call],
    respread: dict[str, Any],
    others: list[dict[str, Any]],
    position: int,
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    pools = [*others[:position], respread, *others[position:]]
    named = [{"name": f"pool-{i}", **pool} for i, pool in enumerate(pools)]
    config = _pools_config(config_from, named)

    statement = _run(config, calls)

    _assert_every_column_adds_up(statement, calls, pools)
    assert all(line.allocation != "unallocated:no-assistant" for line in statement.lines)
    centers = set(config.cost_center_ids)
    orphans = [
        c
        for c in calls
        if c.assistant in (None, "", ZERO_ID)
        and not (isinstance(c.variable, str) and c.variable in centers)
    ]
    respread_name = named[min(position, len(others))]["name"]
    moved = [line for line in statement.lines if line.allocation == f"shared:{respread_name}"]
    assert sum(line.calls for line in moved) == len(orphans)
    assert statement.pool_notes[respread_name].startswith("Re-spreads the calls without")


def _canonical(
    config: ChargebackConfig,
) -> Callable[[ChargebackLine], tuple[int, int, str, str]]:
    """The documented order: cost centers as configured, then UNALLOCATED; within one,
    direct lines, shared pools in config order, unallocated reasons by precedence."""
    centers = [*config.cost_center_ids, "UNALLOCATED"]
    kinds = ["direct", *(f"shared:{pool.name}" for pool in config.shared_costs)]
    kinds += ["unallocated:no-assistant", "unallocated:unknown-cost-center"]
    kinds += ["unallocated:unmapped-assistant"]

    def key(line: ChargebackLine) -> tuple[int, int, str, str]:
        return (
            centers.index(line.cost_center_id),
            kinds.index(line.allocation),
            line.team,
            line.assistant_id,
        )

    return key


def test_day_starting_in_a_dst_gap_is_recognised(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    doc["org"]["timezone"] = "America/Santiago"
    config = config_from(doc)
    plan = build_plan(config, StatementPeriod.for_month("2026-09", config.timezone))
    calls = [Call(date(2026, 9, d), D("1.00"), "asst-sales") for d in (5, 6, 7)]

    results = fake_results(plan, calls)
    statement = allocate(config, _mapping(config), plan, results)

    dates = sorted(row["date"] for row in results["core-allocation"].result)
    assert dates == [
        "2026-09-05T04:00:00.000Z",
        "2026-09-06T04:00:00.000Z",
        "2026-09-07T03:00:00.000Z",
    ]
    assert _summary(statement) == [("sales", "outbound-sales", "asst-sales", "direct", 3, "3.00")]
