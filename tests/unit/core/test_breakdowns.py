"""Owner breakdowns: the cost center's own rows, rolled up to the definition's shape."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from vapi_chargeback.allocate import allocate
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import build_plan
from vapi_chargeback.statement import Breakdown

from support.core_fixtures import Call, base_config, fake_results

D = Decimal
MAPPING = (
    "assistant_id,team,cost_center_id,valid_from,valid_to\n"
    "asst-sales,outbound-sales,sales,,\n"
    "asst-support,billing-support,support,,\n"
)


def _definition(
    id: str, dimensions: list[str], metrics: list[str], step: str | None
) -> dict[str, Any]:
    return {
        "id": id,
        "title": id.title(),
        "dimensions": dimensions,
        "metrics": metrics,
        "step": step,
    }


CALLS = [
    Call(
        date(2026, 10, 1),
        D("1.004"),
        "asst-sales",
        duration=D(90),
        success=True,
        ended_reason="hangup",
    ),
    Call(
        date(2026, 10, 1),
        D("1.004"),
        "asst-sales",
        duration=D(30),
        success=False,
        ended_reason="hangup",
    ),
    Call(
        date(2026, 10, 4),
        D("1.004"),
        "asst-sales",
        duration=D(60),
        success=True,
        ended_reason="voicemail",
    ),
    Call(
        date(2026, 10, 5),
        D("2.50"),
        "asst-sales",
        duration=D(0),
        success=None,
        ended_reason="error",
    ),
    Call(date(2026, 10, 5), D("7.00"), "asst-sales", "support", duration=D(120), success="pass"),
    Call(date(2026, 10, 6), D("3.00"), "asst-support", duration=D(300), success=True),
    Call(date(2026, 10, 6), D("9.00"), "asst-nobody", duration=D(60)),
]


def _breakdowns(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    sales: list[dict[str, Any]],
    support: list[dict[str, Any]] | None = None,
) -> dict[str, list[Breakdown]]:
    doc = base_config()
    doc["cost_centers"][0]["queries"] = sales
    doc["cost_centers"][1]["queries"] = support or []
    config = config_from(doc)
    plan = build_plan(config, StatementPeriod.for_month("2026-10", config.timezone))
    entries, _ = parse_mapping(MAPPING.encode(), "teams.csv", set(config.cost_center_ids))
    return allocate(config, AssistantMapping(entries), plan, fake_results(plan, CALLS)).breakdowns


@pytest.mark.parametrize(
    ("definition", "columns", "rows", "total"),
    [
        pytest.param(
            _definition("by-assistant-day", ["assistantId"], ["calls", "minutes", "cost"], "day"),
            ["day", "assistant_id", "calls", "minutes", "cost_usd"],
            [
                [date(2026, 10, 1), "asst-sales", 2, D("2.00"), D("2.01")],
                [date(2026, 10, 4), "asst-sales", 1, D("1.00"), D("1.00")],
                [date(2026, 10, 5), "asst-sales", 1, D("0.00"), D("2.50")],
            ],
            ["Total", "", 4, D("3.00"), D("5.51")],
            id="assistant-by-day",
        ),
        pytest.param(
            _definition(
                "success-weekly",
                ["analysis.successEvaluation"],
                ["calls", "avg_cost_per_call"],
                "week",
            ),
            ["week", "week_coverage", "success_evaluation", "calls", "avg_cost_per_call_usd"],
            [
                [date(2026, 9, 28), "Partial: 2026-10-01 to 2026-10-04", "false", 1, D("1.004")],
                [date(2026, 9, 28), "Partial: 2026-10-01 to 2026-10-04", "true", 2, D("1.004")],
                [date(2026, 10, 5), "Full week", "(not evaluated)", 1, D("2.50")],
            ],
            ["Total", "", "", 4, D("1.3775")],
            id="weeks-start-monday-partial-marked",
        ),
        pytest.param(
            _definition(
                "reasons",
                ["endedReason"],
                ["minutes", "avg_minutes_per_call", "avg_cost_per_minute"],
                None,
            ),
            ["ended_reason", "minutes", "avg_minutes_per_call", "avg_cost_per_minute_usd"],
            [
                ["error", D("0.00"), D("0"), None],
                ["hangup", D("2.00"), D("1"), D("1.004")],
                ["voicemail", D("1.00"), D("1"), D("1.004")],
            ],
            ["Total", D("3.00"), D("0.75"), D("1.8366666667")],
            id="whole-month-with-averages-kept-exact",
        ),
        pytest.param(
            _definition("monthly", [], ["calls", "cost", "llm"], "month"),
            ["month", "calls", "cost_usd", "llm_usd"],
            [[date(2026, 10, 1), 4, D("5.51"), D("0.00")]],
            ["Total", 4, D("5.51"), D("0.00")],
            id="month-total",
        ),
        pytest.param(
            _definition("no-labels", [], ["calls", "cost"], None),
            ["calls", "cost_usd"],
            [[4, D("5.51")]],
            [4, D("5.51")],
            id="no-label-column-no-label",
        ),
    ],
)
def test_breakdown_tables(
    definition: dict[str, Any],
    columns: list[str],
    rows: list[list[object]],
    total: list[object],
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    (table,) = _breakdowns(config_from, [definition])["sales"]

    assert (table.definition_id, table.title) == (definition["id"], definition["title"])
    assert table.columns == columns
    assert table.rows == rows
    assert table.total == total
    assert [type(cell) for cell in table.total] == [type(cell) for cell in total]


def test_rows_follow_the_allocation_rules(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    same = _definition("by-assistant", ["assistantId"], ["calls", "cost"], None)

    tables = _breakdowns(config_from, [same], [same])

    assert tables["sales"][0].rows == [["asst-sales", 4, D("5.51")]]
    assert tables["support"][0].rows == [
        ["asst-sales", 1, D("7.00")],
        ["asst-support", 1, D("3.00")],
    ]


def test_every_cost_center_has_an_entry(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    tables = _breakdowns(config_from, [_definition("d", [], ["calls"], None)])

    assert list(tables) == ["sales", "support"]
    assert tables["support"] == []
    assert tables["sales"][0].rows == [[4]]
