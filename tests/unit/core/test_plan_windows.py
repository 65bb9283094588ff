"""The mapping-aware plan: coarser and windowed queries, the very same statement.

Given the mapping, ``build_plan`` asks each shape at the coarsest grain its definitions
need and splits queries into time windows. Whatever the cut, allocation must produce
exactly what the day-by-day plan produces; these tests answer both plans from the same
calls with a fake API that honours each query's time range and step, and compare.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vapi_chargeback import plan as plan_module
from vapi_chargeback.allocate import allocate
from vapi_chargeback.analytics.models import NAME_MAX_LENGTH, AnalyticsQueryResult
from vapi_chargeback.attribution import AnalyticsResultError
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import (
    CORE_QUERY,
    DAILY_COST_QUERY,
    MAX_MAPPING_SEGMENTS,
    ORG_TOTAL_QUERY,
    Plan,
    build_plan,
)
from vapi_chargeback.reconcile import ReconciliationError, reconcile

from support.core_fixtures import Call, base_config

D = Decimal
WINDOW_DAYS = 14
"""Two weeks: the fixed windows these tests were written for (a run sizes them by rows)."""
ZERO_ID = "00000000-0000-0000-0000-000000000000"
MAPPING = (
    "assistant_id,team,cost_center_id,valid_from,valid_to\n"
    "asst-moving,inbound-sales,sales,,2026-10-14\n"
    "asst-moving,tier1-support,support,2026-10-15,\n"
    "asst-sales,outbound-sales,sales,,\n"
    "asst-support,billing-support,support,2026-01-01,\n"
)
ASSISTANTS = ("asst-moving", "asst-sales", "asst-support", "asst-stranger", ZERO_ID, None)
VARIABLES = (None, None, None, "sales", "support", "legacy-crm", "")
REASONS = ("customer-ended-call", "assistant-ended-call", "voicemail")
TYPES = ("inboundPhoneCall", "outboundPhoneCall", "webCall")
SUCCESS = (None, "true", "false")
STATUSES = ("ended", "in-progress")


def _definition(id: str, dimensions: list[str], metrics: list[str], **extra: Any) -> dict[str, Any]:
    return {"id": id, "title": id, "dimensions": dimensions, "metrics": metrics, **extra}


MENU = [
    _definition("by-assistant-day", ["assistantId"], ["calls", "minutes", "cost"], step="day"),
    _definition("by-assistant", ["assistantId"], ["cost", "llm", "avg_cost_per_minute"]),
    _definition("weekly", [], ["calls", "cost", "avg_cost_per_call"], step="week"),
    _definition("reasons", ["endedReason"], ["minutes", "avg_minutes_per_call"]),
    _definition("success-weekly", ["analysis.successEvaluation"], ["calls", "cost"], step="week"),
    _definition("type-month", ["type"], ["cost", "stt", "tts"], step="month"),
    _definition("status-reason", ["status", "endedReason"], ["calls"], step="week"),
    _definition("type-day", ["type"], ["calls", "vapi"], step="day"),
]


def _config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    timezone: str = "Europe/Berlin",
    *,
    leave_out: tuple[str, ...] = (),
) -> ChargebackConfig:
    """Two owners over the menu; ``leave_out`` drops definitions by id (without
    ``status-reason``, the period shape of ``reasons`` has no wider shape to read)."""
    doc = base_config()
    doc["org"]["timezone"] = timezone
    kept = [item for item in MENU if item["id"] not in leave_out]
    doc["cost_centers"][0]["queries"] = [item for item in kept if item in MENU[:5]]
    doc["cost_centers"][1]["queries"] = [item for item in kept if item in [MENU[0], *MENU[4:]]]
    doc["shared_costs"] = [
        {"name": "fee", "amount": D("10.00"), "method": "even"},
        {
            "name": "calls-without-assistant",
            "source": "calls-without-assistant",
            "method": "proportional",
            "driver": "cost",
        },
    ]
    return config_from(doc)


def _mapping(config: ChargebackConfig, csv: str = MAPPING) -> AssistantMapping:
    entries, problems = parse_mapping(csv.encode(), "teams.csv", set(config.cost_center_ids))
    assert problems == []
    return AssistantMapping(entries)


def _calls(seed: int, month: str = "2026-10", count: int = 400) -> list[Call]:
    rng = random.Random(seed)
    first = date.fromisoformat(f"{month}-01")
    days = ((first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
    return [
        Call(
            day=first + timedelta(days=rng.randrange(days)),
            cost=D(rng.randrange(0, 90_000)) / 10_000,
            assistant=rng.choice(ASSISTANTS),
            variable=rng.choice(VARIABLES),
            duration=D(rng.randrange(0, 900_000)) / 1_000,
            components={
                name: D(rng.randrange(0, 5_000)) / 100_000
                for name in ("transport", "stt", "llm", "tts", "vapi")
            },
            type=rng.choice(TYPES),
            ended_reason=rng.choice(REASONS),
            success=rng.choice(SUCCESS),
            status=rng.choice(STATUSES),
        )
        for _ in range(count)
    ]


def _instant(day: date, zone: ZoneInfo) -> str:
    midnight = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    return midnight.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def answer(
    plan: Plan, calls: list[Call], *, week_label: str = "monday"
) -> dict[str, AnalyticsQueryResult]:
    """What the API answers to each planned query: calls inside its time range, bucketed by
    its step in the org zone (weeks start Monday), one row per non-empty group.

    ``week_label="clipped"`` labels a week that starts before the range with the range's
    first day, as an API generating buckets from the range start would.
    """
    zone = ZoneInfo(plan.period.timezone)
    results = {}
    for query in plan.queries:
        assert query.time_range is not None and query.time_range.start and query.time_range.end
        first = query.time_range.start.astimezone(zone).date()
        end = query.time_range.end.astimezone(zone).date()
        step = query.time_range.step
        groups: dict[tuple[object, ...], list[Call]] = {}
        for call in calls:
            if not first <= call.day < end:
                continue
            key: list[object] = []
            if step == "day":
                key.append(call.day)
            elif step == "week":
                monday = call.day - timedelta(days=call.day.weekday())
                key.append(max(monday, first) if week_label == "clipped" else monday)
            key += [call.column(g) for g in query.group_by or []]
            key += [call.variable for _ in query.group_by_variable_value or []]
            groups.setdefault(tuple(key), []).append(call)
        rows = []
        for key, members in groups.items():
            values = list(key)
            row: dict[str, Any] = {}
            if step is not None:
                row["date"] = _instant(values.pop(0), zone)
            for name in query.group_by or []:
                row[name] = values.pop(0)
            for variable in query.group_by_variable_value or []:
                row[variable.key] = values.pop(0)
            for op in query.operations:
                present = [v for v in (c.column(op.column) for c in members) if v is not None]
                row[op.alias or ""] = (
                    len(present) if op.operation == "count" else sum(present, D(0))
                )
            rows.append(row)
        results[query.name] = AnalyticsQueryResult.model_validate(
            {"name": query.name, "timeRange": query.time_range.to_wire(), "result": rows}
        )
    return results


def _plans(
    config: ChargebackConfig, mapping: AssistantMapping, month: str = "2026-10"
) -> tuple[Plan, Plan]:
    period = StatementPeriod.for_month(month, config.timezone)
    return build_plan(config, period), build_plan(
        config, period, mapping=mapping, window_days=WINDOW_DAYS
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("week_label", ["monday", "clipped"])
def test_windowed_plan_gives_the_same_statement_as_the_daily_plan(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], seed: int, week_label: str
) -> None:
    config = _config(config_from)
    mapping = _mapping(config)
    daily, windowed = _plans(config, mapping)
    calls = _calls(seed)

    expected = allocate(config, mapping, daily, answer(daily, calls))
    results = answer(windowed, calls, week_label=week_label)
    statement = allocate(config, mapping, windowed, results)

    assert statement == expected
    assert any(line.successful_calls for line in statement.lines)
    assert {line.charged_by for line in statement.lines} == {"mapping", "variable", ""}
    assert set(statement.daily_cost_usd) == {"sales", "support"}
    assert reconcile(statement, windowed, results).ok
    assert sum(len(r.result) for r in results.values()) < sum(
        len(r.result) for r in answer(daily, calls).values()
    )


@pytest.mark.parametrize("seed", [4, 5])
def test_a_coarse_core_with_its_day_query_gives_the_same_statement_as_the_daily_plan(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], seed: int
) -> None:
    doc = base_config()
    doc["cost_centers"][0]["queries"] = [MENU[1], MENU[3]]
    config = config_from(doc)
    mapping = _mapping(config)
    daily, windowed = _plans(config, mapping)
    calls = _calls(seed)

    statement = allocate(config, mapping, windowed, answer(windowed, calls))

    for part in windowed.parts(windowed.core_query):
        assert windowed.query(part).time_range.step is None  # type: ignore[union-attr]
    assert windowed.daily_cost_query == DAILY_COST_QUERY
    assert statement == allocate(config, mapping, daily, answer(daily, calls))
    assert len(statement.daily_cost_usd["sales"]) > 20
    assert any(line.successful_calls for line in statement.lines)


@pytest.mark.parametrize(
    ("timezone", "month"),
    [("America/New_York", "2026-03"), ("Asia/Kolkata", "2026-02"), ("UTC", "2026-11")],
)
def test_windows_follow_the_local_calendar_in_other_zones(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], timezone: str, month: str
) -> None:
    config = _config(config_from, timezone)
    mapping = _mapping(config, MAPPING.replace("2026-10-1", f"{month}-1"))
    daily, windowed = _plans(config, mapping, month)
    calls = _calls(7, month)

    assert allocate(config, mapping, windowed, answer(windowed, calls)) == allocate(
        config, mapping, daily, answer(daily, calls)
    )


def test_windowed_plan_shape(config_from: Callable[[dict[str, Any]], ChargebackConfig]) -> None:
    config = _config(config_from)
    _, plan = _plans(config, _mapping(config))

    steps = {q.name: q.time_range.step for q in plan.queries if q.time_range}
    # the core shape has a day definition: day rows in windows cut at Mondays, mapping ignored
    assert plan.parts(CORE_QUERY) == [
        "core-allocation-01",
        "core-allocation-12",
        "core-allocation-26",
    ]
    assert {steps[name] for name in plan.parts(CORE_QUERY)} == {"day"}
    # a week shape: split at the mapping change (the 15th) and again at a Monday
    assert plan.parts("by-success") == ["by-success-01", "by-success-15", "by-success-26"]
    assert {steps[name] for name in plan.parts("by-success")} == {"week"}
    # a shape inside a wider one asked at least as finely reads the wider one's rows:
    # "reasons" (no step) rolls up the week rows of "status-reason", and costs no query
    reads = {d.definition_id: d.query for d in plan.definitions}
    assert reads["reasons"] == reads["status-reason"] == "by-reason-status"
    assert plan.parts("by-reason-status") == [
        "by-reason-status-01",
        "by-reason-status-15",
        "by-reason-status-26",
    ]
    assert {steps[name] for name in plan.parts("by-reason-status")} == {"week"}
    assert not any(name.startswith("by-reason-0") for name in plan.query_names)
    # a shape without steps finer than the month: one row per group and mapping stretch
    alone = _config(config_from, leave_out=("status-reason",))
    _, coarse = _plans(alone, _mapping(alone))
    assert coarse.parts("by-reason") == ["by-reason-01", "by-reason-15"]
    assert {coarse.query(name).time_range.step for name in coarse.parts("by-reason")} == {None}  # type: ignore[union-attr]
    assert plan.parts(ORG_TOTAL_QUERY) == [ORG_TOTAL_QUERY]
    assert plan.queries[3].name == ORG_TOTAL_QUERY
    assert max(len(name) for name in plan.query_names) <= NAME_MAX_LENGTH
    assert len(plan.batches) == math.ceil(len(plan.queries) / plan.max_queries_per_request)
    for family in [CORE_QUERY, *{d.query for d in plan.definitions}]:
        ranges = [plan.query(name).time_range for name in plan.parts(family)]
        assert ranges[0] and ranges[0].start == plan.period.start
        assert ranges[-1] and ranges[-1].end == plan.period.end
        for before, after in pairwise(ranges):
            assert before and after and before.end == after.start


def test_without_mapping_changes_coarse_shapes_take_one_query(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _config(config_from, leave_out=("status-reason",))
    steady = (
        "assistant_id,team,cost_center_id,valid_from,valid_to\nasst-sales,outbound-sales,sales,,\n"
    )
    _, plan = _plans(config, _mapping(config, steady))

    assert plan.parts("by-reason") == ["by-reason"]
    assert plan.query("by-reason").time_range.step is None  # type: ignore[union-attr]
    assert plan.parts("by-success") == ["by-success-01", "by-success-12", "by-success-26"]


def test_a_mapping_changing_on_many_days_falls_back_to_day_rows(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _config(config_from)
    rows = ["assistant_id,team,cost_center_id,valid_from,valid_to"]
    for day in range(MAX_MAPPING_SEGMENTS):
        rows.append(f"asst-{day},outbound-sales,sales,,2026-10-{10 + day}")
    mapping = _mapping(config, "\n".join(rows) + "\n")
    daily, plan = _plans(config, mapping)

    assert {q.time_range.step for q in plan.queries if q.name != ORG_TOTAL_QUERY} == {"day"}  # type: ignore[union-attr]
    calls = _calls(11)
    assert allocate(config, mapping, plan, answer(plan, calls)) == allocate(
        config, mapping, daily, answer(daily, calls)
    )


def test_window_days_must_hold_a_week(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _config(config_from)
    period = StatementPeriod.for_month("2026-10", config.timezone)

    with pytest.raises(ValueError, match="window_days must be >= 7"):
        build_plan(config, period, mapping=_mapping(config), window_days=6)


@pytest.mark.parametrize(
    ("query", "stamp", "message"),
    [
        pytest.param(
            "core-allocation-12", "2026-10-05T22:00:00.000Z", "outside the query's days", id="day"
        ),
        pytest.param("by-success-26", "2026-10-04T22:00:00.000Z", "starts no week", id="week"),
    ],
)
def test_rows_outside_their_window_fail_loudly(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    query: str,
    stamp: str,
    message: str,
) -> None:
    config = _config(config_from)
    mapping = _mapping(config)
    _, plan = _plans(config, mapping)
    results = answer(plan, _calls(5))
    result = results[query]
    results[query] = result.model_copy(update={"result": [{**result.result[0], "date": stamp}]})

    with pytest.raises(AnalyticsResultError, match=message):
        allocate(config, mapping, plan, results)


def test_a_windowed_core_query_is_totalled_over_its_windows_when_reconciliation_fails(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _config(config_from)
    mapping = _mapping(config)
    _, plan = _plans(config, mapping)
    results = answer(plan, _calls(9))
    statement = allocate(config, mapping, plan, results)
    total = results[ORG_TOTAL_QUERY]
    results[ORG_TOTAL_QUERY] = total.model_copy(
        update={"result": [{**total.result[0], "sum_cost": total.result[0]["sum_cost"] + 5}]}
    )

    with pytest.raises(
        ReconciliationError, match="grouped query 'core-allocation' totals"
    ) as caught:
        reconcile(statement, plan, results)
    assert "the two queries disagree" in str(caught.value)


RETIRING = {"id": "legacy-crm", "name": "Legacy CRM", "owner_email": "l@example.com"}
"""Named by some calls' variable all month, charged only through its ``valid_to``."""


def _retiring_config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], valid_to: str, *, coarse_core: bool
) -> ChargebackConfig:
    doc = _config(config_from).model_dump(mode="json", exclude_none=True)
    if coarse_core:
        doc["cost_centers"][0]["queries"] = [MENU[1], MENU[3]]
        doc["cost_centers"][1]["queries"] = []
    doc["cost_centers"].append({**RETIRING, "valid_to": valid_to})
    return config_from(doc)


@pytest.mark.parametrize("coarse_core", [False, True], ids=["week-and-period", "period-core"])
@pytest.mark.parametrize("valid_to", ["2026-10-20", "2026-10-14", "2026-10-25"])
@pytest.mark.parametrize("week_label", ["monday", "clipped"])
def test_a_cost_center_retired_mid_month_gives_the_same_statement_as_the_daily_plan(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    coarse_core: bool,
    valid_to: str,
    week_label: str,
) -> None:
    config = _retiring_config(config_from, valid_to, coarse_core=coarse_core)
    mapping = _mapping(config)
    daily, windowed = _plans(config, mapping)
    calls = _calls(13)
    end = date.fromisoformat(valid_to)
    assert any(c.variable == RETIRING["id"] and c.day > end for c in calls)

    expected = allocate(config, mapping, daily, answer(daily, calls))
    statement = allocate(config, mapping, windowed, answer(windowed, calls, week_label=week_label))

    assert statement == expected
    assert any(line.cost_center_id == RETIRING["id"] for line in statement.lines)
    assert max(day for day, _ in statement.daily_cost_usd[RETIRING["id"]]) <= end


def test_coarse_queries_are_cut_the_day_after_a_cost_center_ends(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    config = _retiring_config(config_from, "2026-10-20", coarse_core=False)
    _, plan = _plans(config, _mapping(config))

    # mapping change on the 15th, legacy-crm's last day the 20th, Mondays past 14 days
    assert plan.parts("by-reason-status") == [
        "by-reason-status-01",
        "by-reason-status-15",
        "by-reason-status-21",
    ]
    assert plan.parts("by-success") == ["by-success-01", "by-success-15", "by-success-21"]
    # day rows never span a change: only Mondays cut them
    assert plan.parts(CORE_QUERY) == [
        "core-allocation-01",
        "core-allocation-12",
        "core-allocation-26",
    ]


def test_cost_center_ends_count_towards_the_fall_back_to_day_rows(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    doc = base_config()
    doc["cost_centers"][0]["queries"] = [MENU[1], MENU[3]]
    for day in range(MAX_MAPPING_SEGMENTS - 1):
        doc["cost_centers"].append(
            {**RETIRING, "id": f"legacy-{day}", "valid_to": f"2026-10-{10 + 3 * day}"}
        )
    config = config_from(doc)
    mapping = _mapping(config)
    daily, plan = _plans(config, mapping)

    assert {q.time_range.step for q in plan.queries if q.name != ORG_TOTAL_QUERY} == {"day"}  # type: ignore[union-attr]
    calls = _calls(17)
    assert allocate(config, mapping, plan, answer(plan, calls)) == allocate(
        config, mapping, daily, answer(daily, calls)
    )


@pytest.mark.parametrize("seed", [5, 17])
def test_shapes_read_from_a_wider_query_give_the_statement_of_their_own_queries(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    """Rolling "reasons" up from the week rows of "status-reason" is exact: the same
    statement, breakdowns included, as asking each shape its own query."""
    config = _config(config_from)
    mapping = _mapping(config)
    calls = _calls(seed)
    _, merged = _plans(config, mapping)
    monkeypatch.setattr(plan_module, "_answering_shapes", lambda grains: {s: s for s in grains})
    _, apart = _plans(config, mapping)

    assert "by-reason-01" in apart.query_names and "by-reason-01" not in merged.query_names
    assert len(merged.queries) < len(apart.queries)
    statement = allocate(config, mapping, merged, answer(merged, calls))
    assert statement == allocate(config, mapping, apart, answer(apart, calls))
    assert any(b.rows for tables in statement.breakdowns.values() for b in tables)
