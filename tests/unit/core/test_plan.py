"""The query plan: few requests, every question asked once, the same JSON every time."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from vapi_chargeback.analytics.models import NAME_MAX_LENGTH, AnalyticsQuery, AnalyticsQueryDTO
from vapi_chargeback.config import ChargebackConfig, load_config
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import (
    CORE_QUERY,
    DAILY_COST_QUERY,
    ORG_TOTAL_QUERY,
    Plan,
    build_plan,
)

from support.core_fixtures import DEMO_CONFIG, base_config

OCTOBER = StatementPeriod.for_month("2026-10", "Europe/Berlin")


def _demo_plan(limit: int = 20) -> Plan:
    config = load_config(DEMO_CONFIG)
    return build_plan(config, StatementPeriod.for_month("2026-10", config.timezone), limit)


def _definition(id: str, dimensions: list[str], metrics: list[str], **extra: Any) -> dict[str, Any]:
    return {"id": id, "title": id, "dimensions": dimensions, "metrics": metrics, **extra}


def test_demo_plan_shares_one_query_per_shape() -> None:
    plan = _demo_plan()

    assert plan.query_names == [
        CORE_QUERY,
        ORG_TOTAL_QUERY,
        "by-reason-status",
        "by-success",
        "by-type",
    ]
    assert len(plan.definitions) == 10
    reads = {(d.cost_center_id, d.definition_id): d.query for d in plan.definitions}
    assert reads[("sales", "cost-by-assistant-day")] == CORE_QUERY
    assert reads[("operations", "cost-by-assistant-day")] == CORE_QUERY
    assert reads[("marketing", "daily-cost")] == CORE_QUERY
    # by ended reason is inside by status and ended reason, both by day: one query
    assert reads[("sales", "minutes-by-ended-reason")] == "by-reason-status"
    assert reads[("support", "minutes-by-ended-reason")] == "by-reason-status"
    assert reads[("support", "calls-by-success")] == reads[("marketing", "calls-by-success")]


def test_identical_definitions_of_different_owners_cost_one_query(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    same = _definition("by-reason", ["endedReason"], ["calls", "minutes"], step="week")
    doc["cost_centers"][0]["queries"] = [same]
    doc["cost_centers"][1]["queries"] = [dict(same, id="reasons", title="Reasons")]

    plan = build_plan(config_from(doc), OCTOBER)

    assert plan.query_names == [CORE_QUERY, ORG_TOTAL_QUERY, "by-reason", "by-success"]
    assert {d.query for d in plan.definitions} == {"by-reason"}
    assert [op.alias for op in plan.query("by-reason").operations] == ["count_id", "sum_duration"]


def test_same_shape_definitions_merge_their_operations(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    doc["components"] = ["llm"]
    doc["cost_centers"][0]["queries"] = [
        _definition("a", ["status"], ["calls"]),
        _definition("b", ["status", "assistantId"], ["tts"], step="month"),
        _definition("c", ["assistantId"], ["avg_cost_per_minute", "stt"]),
    ]

    plan = build_plan(config_from(doc), OCTOBER)

    assert plan.query_names == [CORE_QUERY, ORG_TOTAL_QUERY, "by-status", "by-success"]
    by_status = plan.query("by-status")
    assert [op.alias for op in by_status.operations] == ["count_id", "sum_tts"]
    assert by_status.group_by == ["assistantId", "status"]
    core = plan.query(CORE_QUERY)
    assert [op.alias for op in core.operations] == [
        "count_id",
        "sum_duration",
        "sum_cost",
        "sum_stt",
        "sum_llm",
    ]
    assert plan.definitions[2].query == CORE_QUERY
    assert plan.definitions[2].aliases == {
        "cost": "sum_cost",
        "seconds": "sum_duration",
        "stt": "sum_stt",
    }


def test_compiled_queries_attribute_by_assistant_variable_and_local_day() -> None:
    plan = _demo_plan()

    for query in plan.queries:
        assert query.table == "call"
        assert query.time_range is not None
        assert query.time_range.start == OCTOBER.start
        assert query.time_range.end == OCTOBER.end
        assert query.time_range.timezone == "Europe/Berlin"
        assert all(op.operation in ("sum", "count") for op in query.operations), query.name
        aliases = [op.alias for op in query.operations]
        assert None not in aliases and len(set(aliases)) == len(aliases), query.name
        if query.name == ORG_TOTAL_QUERY:
            assert query.group_by is None and query.group_by_variable_value is None
            assert query.time_range.step is None
            assert aliases == ["count_id", "sum_duration", "sum_cost"]
        else:
            assert query.group_by is not None and query.group_by[0] == "assistantId"
            assert [v.key for v in query.group_by_variable_value or []] == ["costCenter"]
            assert query.time_range.step == "day"


def test_compiled_queries_validate_against_the_spec_models() -> None:
    plan = _demo_plan()

    for batch in plan.batch_queries():
        wire = AnalyticsQueryDTO(queries=batch).to_wire()
        assert AnalyticsQueryDTO.model_validate(wire).queries == batch
    for query in plan.queries:
        assert AnalyticsQuery.model_validate(query.to_wire()) == query
        assert len(query.name) <= NAME_MAX_LENGTH


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 6, 7, 20])
def test_batches_are_as_few_as_the_limit_allows(limit: int) -> None:
    plan = _demo_plan(limit)

    assert len(plan.batches) == math.ceil(len(plan.queries) / limit)
    assert all(1 <= len(batch) <= limit for batch in plan.batches)
    assert [name for batch in plan.batches for name in batch] == plan.query_names


def test_plan_json_is_deterministic_and_round_trips() -> None:
    first = _demo_plan().model_dump_json(by_alias=True)
    second = _demo_plan().model_dump_json(by_alias=True)

    assert first == second
    again = Plan.model_validate_json(first)
    assert again == _demo_plan()
    assert again.fixed_shared_usd == _demo_plan().fixed_shared_usd
    assert len(first) < 10_000


def test_many_owners_collapse_to_few_queries(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    menu = [
        _definition("daily", ["assistantId"], ["cost", "calls"], step="day"),
        _definition("reasons", ["endedReason"], ["minutes", "avg_minutes_per_call"]),
        _definition("success", ["analysis.successEvaluation"], ["avg_cost_per_call"]),
        _definition("status-type", ["type", "status"], ["calls"]),
        _definition(
            "all", list(("type", "endedReason", "analysis.successEvaluation", "status")), ["cost"]
        ),
    ]
    doc["cost_centers"] = [
        {
            "id": f"cc-{i:02d}",
            "name": f"Center {i}",
            "owner_email": f"o{i}@example.com",
            "queries": [menu[(i + k) % len(menu)] for k in range(3)],
        }
        for i in range(40)
    ]

    plan = build_plan(config_from(doc), OCTOBER, max_queries_per_request=3)

    assert len(plan.definitions) == 120
    # every shape is inside the widest one and all are by day: core, org total, the widest
    assert plan.query_names == [CORE_QUERY, ORG_TOTAL_QUERY, "by-type-reason-success-status"]
    assert len(plan.batches) == 1
    assert max(len(name) for name in plan.query_names) <= NAME_MAX_LENGTH
    assert plan.success_query == "by-type-reason-success-status"
    widest = plan.query("by-type-reason-success-status")
    assert [op.alias for op in widest.operations] == ["count_id", "sum_duration", "sum_cost"]


def test_plan_refuses_a_period_in_another_zone() -> None:
    config = load_config(DEMO_CONFIG)

    with pytest.raises(ValueError, match="org zone is Europe/Berlin"):
        build_plan(config, StatementPeriod.for_month("2026-10", "UTC"))
    with pytest.raises(ValueError, match="max_queries_per_request"):
        build_plan(config, OCTOBER, 0)


def test_a_cost_center_ended_before_the_month_asks_nothing(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    doc["cost_centers"][1]["valid_to"] = "2026-10-15"
    doc["cost_centers"][1]["queries"] = [_definition("by-type", ["type"], ["calls"])]
    config = config_from(doc)

    october = build_plan(config, OCTOBER)
    november = build_plan(config, StatementPeriod.for_month("2026-11", config.timezone))

    assert [(d.cost_center_id, d.query) for d in october.definitions] == [("support", "by-type")]
    assert november.definitions == []
    assert november.query_names == [CORE_QUERY, ORG_TOTAL_QUERY, "by-success"]


def _mapping(config: ChargebackConfig) -> AssistantMapping:
    rows = "assistant_id,team,cost_center_id,valid_from,valid_to\nasst-a,t,sales,,\n"
    entries, _ = parse_mapping(rows.encode(), "teams.csv", set(config.cost_center_ids))
    return AssistantMapping(entries)


def test_a_narrower_shape_asked_more_finely_keeps_its_own_query(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    doc["cost_centers"][0]["queries"] = [
        _definition("by-day", ["endedReason"], ["calls"], step="day"),
        _definition("whole", ["status", "endedReason"], ["calls"]),
        _definition("weekly", ["status"], ["minutes"], step="week"),
    ]
    config = config_from(doc)

    plan = build_plan(config, OCTOBER, mapping=_mapping(config), window_days=31)

    reads = {d.definition_id: d.query for d in plan.definitions}
    # by day is finer than the whole month: reading it from month rows is impossible, and
    # asking the wider shape by day would multiply its rows
    assert reads["by-day"] == "by-reason"
    assert plan.query("by-reason").time_range.step == "day"  # type: ignore[union-attr]
    # by week is finer than the month too; the whole-month shape keeps its coarse query
    assert reads["weekly"] == "by-status"
    assert reads["whole"] == "by-reason-status"
    assert plan.query("by-reason-status").time_range.step is None  # type: ignore[union-attr]


def test_the_demo_plan_reads_successes_and_daily_cost_from_queries_it_already_has() -> None:
    plan = _demo_plan()

    assert plan.success_query == "by-success"
    assert plan.daily_cost_query == CORE_QUERY
    assert "count_id" in [op.alias for op in plan.query("by-success").operations]
    assert len(plan.queries) == 5, "no query added for successful calls or daily cost"


def test_successes_get_the_coarsest_query_the_mapping_allows(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = config_from(base_config())

    coarse = build_plan(config, OCTOBER, mapping=_mapping(config), window_days=14)
    daily = build_plan(config, OCTOBER)

    success = coarse.query("by-success")
    assert success.group_by == ["assistantId", "analysis.successEvaluation"]
    assert [v.key for v in success.group_by_variable_value or []] == ["costCenter"]
    assert [op.alias for op in success.operations] == ["count_id"]
    assert success.time_range is not None and success.time_range.step is None
    assert daily.query("by-success").time_range.step == "day"  # type: ignore[union-attr]


def test_a_definition_of_the_success_shape_gains_a_count_without_a_second_query(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    doc["cost_centers"][0]["queries"] = [
        _definition("s", ["analysis.successEvaluation"], ["cost"], step="week")
    ]

    plan = build_plan(config_from(doc), OCTOBER)

    assert plan.query_names.count("by-success") == 1
    assert plan.success_query == plan.definitions[0].query == "by-success"
    assert [op.alias for op in plan.query("by-success").operations] == ["count_id", "sum_cost"]


def test_a_coarse_core_gets_a_day_query_of_its_shape_for_daily_cost(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = config_from(base_config())

    plan = build_plan(config, OCTOBER, 2, mapping=_mapping(config), window_days=14)

    assert plan.daily_cost_query == DAILY_COST_QUERY
    parts = [plan.query(name) for name in plan.parts(DAILY_COST_QUERY)]
    assert len(parts) == 3, "windowed like every day query (14 days, cut at Mondays)"
    for query in parts:
        assert query.group_by == ["assistantId"]
        assert [v.key for v in query.group_by_variable_value or []] == ["costCenter"]
        assert [op.alias for op in query.operations] == ["sum_cost"]
        assert query.time_range is not None and query.time_range.step == "day"
    assert plan.query(CORE_QUERY).time_range.step is None  # type: ignore[union-attr]
    assert len(plan.batches) == math.ceil(len(plan.queries) / 2)
