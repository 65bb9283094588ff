"""The figures a readable statement adds to the money: the rule that charged each line, its
successful calls, each cost center's daily cost, and breakdowns that add up to the lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vapi_chargeback import statement_json
from vapi_chargeback.allocate import allocate
from vapi_chargeback.breakdowns import round_to_statement
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.money import CENT
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import build_plan
from vapi_chargeback.reconcile import reconcile
from vapi_chargeback.statement import Breakdown, ChargebackLine, Statement

from support.core_fixtures import Call, base_config, fake_results

D = Decimal
ZERO_ID = "00000000-0000-0000-0000-000000000000"
MAPPING = (
    "assistant_id,team,cost_center_id,valid_from,valid_to\n"
    "asst-moving,inbound-sales,sales,,2026-10-14\n"
    "asst-moving,tier1-support,support,2026-10-15,\n"
    "asst-sales,outbound-sales,sales,,\n"
    "asst-support,billing-support,support,,\n"
)


def _definition(id: str, dimensions: list[str], metrics: list[str], **extra: Any) -> dict[str, Any]:
    return {"id": id, "title": id, "dimensions": dimensions, "metrics": metrics, **extra}


DEFINITIONS = [
    _definition("daily", [], ["calls", "minutes", "cost", "llm"], step="day"),
    _definition("reasons", ["endedReason"], ["calls", "minutes", "avg_cost_per_minute"]),
    _definition("success", ["analysis.successEvaluation"], ["calls", "cost"], step="week"),
    _definition("assistants", ["assistantId"], ["cost", "stt"]),
]


def _config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    timezone: str = "Europe/Berlin",
    definitions: list[dict[str, Any]] | None = None,
) -> ChargebackConfig:
    doc = base_config()
    doc["org"]["timezone"] = timezone
    for center in doc["cost_centers"]:
        center["queries"] = DEFINITIONS if definitions is None else definitions
    doc["shared_costs"] = [{"name": "fee", "amount": D("10.00"), "method": "even"}]
    return config_from(doc)


def _run(config: ChargebackConfig, calls: list[Call], month: str = "2026-10") -> Statement:
    entries, problems = parse_mapping(MAPPING.encode(), "teams.csv", set(config.cost_center_ids))
    assert problems == []
    plan = build_plan(config, StatementPeriod.for_month(month, config.timezone))
    results = fake_results(plan, calls)
    statement = allocate(config, AssistantMapping(entries), plan, results)
    assert reconcile(statement, plan, results).ok
    return statement


def _day(n: int, month: int = 10) -> date:
    return date(2026, month, n)


def _direct_cost(statement: Statement, center: str) -> Decimal:
    return sum(
        (
            line.cost_usd
            for line in statement.lines
            if line.cost_center_id == center and line.allocation == "direct"
        ),
        D(0),
    )


# --- charged_by and successful_calls ------------------------------------------------


CALLS = [
    Call(_day(1), D("1.00"), "asst-sales", success="true"),
    Call(_day(1), D("2.00"), "asst-sales", "sales", success="false"),
    Call(_day(2), D("4.00"), "asst-sales", "support", success="true"),
    Call(_day(2), D("8.00"), "asst-sales", "support", success=True),
    Call(_day(3), D("16.00"), "asst-nobody", "support", success="true"),
    Call(_day(3), D("32.00"), None, "sales", success="true"),
    Call(_day(4), D("64.00"), "asst-nobody", success="true"),
    Call(_day(20), D("128.00"), "asst-moving", success="true"),
    Call(_day(20), D("0.50"), "asst-moving", "sales", success=None),
]


def test_each_line_says_which_rule_charged_it_and_counts_its_successes(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    statement = _run(_config(config_from, definitions=[]), CALLS)

    assert [_rule_and_successes(line) for line in statement.lines] == [
        ("sales", "", "", "direct", "variable", 1, 1),
        ("sales", "", "asst-moving", "direct", "variable", 1, 0),
        ("sales", "outbound-sales", "asst-sales", "direct", "mapping", 2, 1),
        ("sales", "", "", "shared:fee", "", 0, None),
        ("support", "", "asst-nobody", "direct", "variable", 1, 1),
        ("support", "", "asst-sales", "direct", "variable", 2, 2),
        ("support", "tier1-support", "asst-moving", "direct", "mapping", 1, 1),
        ("support", "", "", "shared:fee", "", 0, None),
        ("UNALLOCATED", "", "asst-nobody", "unallocated:unmapped-assistant", "", 1, 1),
    ]


def _rule_and_successes(line: ChargebackLine) -> tuple[object, ...]:
    return (
        *(line.cost_center_id, line.team, line.assistant_id, line.allocation, line.charged_by),
        *(line.calls, line.successful_calls),
    )


def test_the_new_fields_survive_the_hand_over_between_tasks(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    statement = _run(_config(config_from), CALLS)

    again = statement_json.loads(statement_json.dumps(statement))

    assert again == statement
    cells = [cell for table in again.breakdowns["sales"] for row in table.rows for cell in row]
    assert any(type(cell) is date for cell in cells), "day buckets come back as dates"
    assert all(type(day) is date for days in again.daily_cost_usd.values() for day, _ in days)
    assert again.breakdowns["sales"][0].total == statement.breakdowns["sales"][0].total != []


# --- daily cost ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "month", "days"),
    [
        pytest.param("Europe/Berlin", 10, (24, 25, 26), id="berlin-october-clocks-back"),
        pytest.param("America/New_York", 3, (7, 8, 9), id="new-york-march-clocks-forward"),
        pytest.param("America/New_York", 11, (1, 2, 30), id="new-york-november-clocks-back"),
    ],
)
def test_daily_cost_adds_up_to_each_cost_centers_direct_lines_in_a_dst_month(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    timezone: str,
    month: int,
    days: tuple[int, ...],
) -> None:
    config = _config(config_from, timezone, definitions=[])
    first, dst, last = (_day(n, month) for n in days)
    calls = [
        Call(first, D("0.005"), "asst-sales"),
        Call(dst, D("0.005"), "asst-sales"),
        Call(dst, D("0.005"), "asst-nobody", "sales"),
        Call(last, D("0.005"), "asst-sales"),
        Call(last, D("1.237"), "asst-support"),
        Call(dst, D("9.00"), "asst-nobody"),
    ]

    statement = _run(config, calls, f"2026-{month:02d}")

    daily = statement.daily_cost_usd
    assert list(daily) == ["sales", "support"]
    assert [day for day, _ in daily["sales"]] == [first, dst, last]
    assert [day for day, _ in daily["support"]] == [last]
    for center, series in daily.items():
        assert sum(cost for _, cost in series) == _direct_cost(statement, center), center
        assert all(cost == cost.quantize(CENT) for _, cost in series)
    assert _direct_cost(statement, "sales") == D("0.02")
    assert [cost for _, cost in daily["sales"]] == [D("0.01"), D("0.01"), D("0.00")], (
        "the statement's 0.02 by largest remainder: 0.5, 1 and 0.5 cents, a tie to the earlier"
    )
    assert daily["support"] == [(last, D("1.24"))]


# --- breakdowns ---------------------------------------------------------------------


def test_breakdowns_add_up_to_the_statement_not_to_their_own_rounding(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    """Lines are rounded over the whole statement: here sales' line takes the shared cent,
    support's line none. Rounded on its own, support's table would say 0.01."""
    config = _config(config_from, definitions=[DEFINITIONS[0]])
    calls = [
        Call(_day(1), D("0.006"), "asst-sales"),
        Call(_day(1), D("0.003"), "asst-support"),
        Call(_day(2), D("0.003"), "asst-support"),
    ]

    statement = _run(config, calls)

    assert (_direct_cost(statement, "sales"), _direct_cost(statement, "support")) == (
        D("0.01"),
        D("0.00"),
    )
    (support,) = statement.breakdowns["support"]
    assert [row[3] for row in support.rows] == [D("0.00"), D("0.00")]
    assert support.total == ["Total", 2, D("2.00"), D("0.00"), D("0.00")]
    (sales,) = statement.breakdowns["sales"]
    assert sales.total == ["Total", 1, D("1.00"), D("0.01"), D("0.00")]


def test_missing_categories_are_named_and_partial_weeks_marked(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    calls = [
        Call(_day(1), D("1.00"), "asst-sales", ended_reason=None, success=None),  # type: ignore[arg-type]
        Call(_day(5), D("1.00"), "asst-sales", ended_reason="", success="true"),
        Call(_day(27), D("1.00"), None, "sales", success="false"),
    ]

    statement = _run(_config(config_from), calls)

    tables = {table.definition_id: table for table in statement.breakdowns["sales"]}
    assert [row[0] for row in tables["reasons"].rows] == ["customer-ended-call", "(none)"]
    assert [row[:3] for row in tables["success"].rows] == [
        [_day(28, 9), "Partial: 2026-10-01 to 2026-10-04", "(not evaluated)"],
        [_day(5), "Full week", "true"],
        [_day(26), "Partial: 2026-10-26 to 2026-10-31", "false"],
    ]
    assert [row[0] for row in tables["assistants"].rows] == ["asst-sales", "(no assistant)"]


# --- properties ---------------------------------------------------------------------

call_strategy = st.builds(
    Call,
    day=st.integers(min_value=1, max_value=31).map(_day),
    cost=st.decimals(min_value=0, max_value=50, places=4, allow_nan=False),
    assistant=st.sampled_from([None, ZERO_ID, "asst-moving", "asst-sales", "asst-support", "x"]),
    variable=st.sampled_from([None, "", "sales", "support", "legal"]),
    duration=st.decimals(min_value=0, max_value=3600, places=3, allow_nan=False),
    components=st.fixed_dictionaries(
        {
            c: st.decimals(min_value=0, max_value=5, places=5, allow_nan=False)
            for c in ("llm", "stt")
        }
    ),
    ended_reason=st.sampled_from(["a", "b", ""]),
    success=st.sampled_from([None, "true", "false"]),
)


def _additive_columns(table: Breakdown) -> list[int]:
    additive = ("calls", "minutes", "cost_usd", "llm_usd", "stt_usd")
    return [i for i, name in enumerate(table.columns) if name in additive]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=st.lists(call_strategy, min_size=1, max_size=40))
def test_daily_cost_and_breakdowns_add_up_to_each_cost_centers_direct_lines(
    calls: list[Call], config_from: Callable[[dict[str, Any]], ChargebackConfig]
) -> None:
    statement = _run(_config(config_from), calls)

    for center in ("sales", "support"):
        direct = [
            line
            for line in statement.lines
            if line.cost_center_id == center and line.allocation == "direct"
        ]
        days = statement.daily_cost_usd.get(center, [])
        assert sum((cost for _, cost in days), D(0)) == sum((x.cost_usd for x in direct), D(0))
        assert [day for day, _ in days] == sorted({day for day, _ in days})
        expected = {
            "calls": sum(line.calls for line in direct),
            "minutes": sum((line.minutes for line in direct), D(0)),
            "cost_usd": sum((line.cost_usd for line in direct), D(0)),
            "llm_usd": sum((line.components_usd["llm"] for line in direct), D(0)),
            "stt_usd": sum((line.components_usd["stt"] for line in direct), D(0)),
        }
        for table in statement.breakdowns[center]:
            for index in _additive_columns(table):
                name = table.columns[index]
                column = sum(row[index] for row in table.rows)  # type: ignore[misc]
                assert column == table.total[index] == expected[name], (table.title, name)
        successes = sum(
            line.successful_calls or 0 for line in statement.lines if line.allocation == "direct"
        )
        assert successes == sum(
            1 for call in calls if call.success == "true" and _charged(statement, call)
        )


def _charged(statement: Statement, call: Call) -> bool:
    """Whether a call landed on a direct line (its successes are counted there)."""
    del statement
    mapped = {"asst-sales", "asst-support", "asst-moving"}
    return call.variable in ("sales", "support") or call.assistant in mapped


@settings(max_examples=200, deadline=None)
@given(
    exact=st.lists(st.decimals(min_value=0, max_value=1000, places=4), min_size=1, max_size=30),
    drift=st.integers(min_value=-5, max_value=5),
)
def test_round_to_statement_reaches_the_statement_total_within_a_cent_of_each_share(
    exact: list[Decimal], drift: int
) -> None:
    whole = sum(exact, D(0))
    total = max(whole.quantize(CENT) + drift * CENT, D(0)) if whole else D(0)

    parts = round_to_statement(exact, total)

    assert sum(parts, D(0)) == total
    for part, value in zip(parts, exact, strict=True):
        share = Fraction(value) * Fraction(total) / Fraction(whole) if whole else Fraction(0)
        assert abs(Fraction(part) - share) < Fraction(CENT)
