"""Windows and requests sized by a row budget: no planned query is estimated over the cap.

The estimate itself is checked against what the emulator answers in
``tests/integration/test_row_cap.py``; here the plan's arithmetic: every grouped query's
estimate within the budget at 2,000 and 20,000 assistants, windows that tile the month
without gap or overlap (slices of a day too, on a 25-hour day), and requests packed by
estimated rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import pytest

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import AssistantMapping, parse_mapping
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.plan import ORG_TOTAL_QUERY, Plan, RowBudget, build_plan
from vapi_chargeback.row_budget import (
    REQUEST_ROW_BUDGET,
    ROW_BUDGET,
    ROW_CAP,
    RowEstimate,
    Slice,
    cut,
    pack_requests,
)

from support.core_fixtures import MAPPING_HEADER, base_config

OCTOBER = "2026-10"
"""Europe/Berlin's October has a 25-hour day (the 25th), where slices must still tile."""


def _config(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], *definitions: dict[str, Any]
) -> ChargebackConfig:
    doc = base_config()
    doc["cost_centers"][0]["queries"] = list(definitions)
    return config_from(doc)


def _definition(id: str, dimensions: list[str], step: str | None) -> dict[str, Any]:
    extra = {"step": step} if step else {}
    return {"id": id, "title": id, "dimensions": dimensions, "metrics": ["calls"], **extra}


DAY_BY_REASON = _definition("reasons-by-day", ["endedReason"], "day")


def _plan(config: ChargebackConfig, assistants: int, **budget: int) -> Plan:
    """The plan with a steady mapping (so week and month definitions keep their grain)."""
    period = StatementPeriod.for_month(OCTOBER, config.timezone)
    entries, problems = parse_mapping(
        (MAPPING_HEADER + "asst-1,inbound,sales,,\n").encode(), "teams.csv", {"sales", "support"}
    )
    assert problems == []
    return build_plan(
        config,
        period,
        mapping=AssistantMapping(entries),
        rows=RowBudget(assistants=assistants, **budget),
    )


def _assert_tiles_the_month(plan: Plan, family: str) -> None:
    ranges = [plan.query(name).time_range for name in plan.parts(family)]
    assert ranges[0] and ranges[0].start == plan.period.start
    assert ranges[-1] and ranges[-1].end == plan.period.end
    for before, after in pairwise(ranges):
        assert before and after and before.end == after.start and before.start < before.end


def test_a_2000_assistant_day_by_ended_reason_plan_stays_within_the_cap(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    plan = _plan(_config(config_from, DAY_BY_REASON), 2_000)

    grouped = [name for name in plan.query_names if name != ORG_TOTAL_QUERY]
    assert set(plan.estimated_rows) == set(plan.query_names)
    assert all(plan.estimated_rows[name] <= ROW_BUDGET < ROW_CAP for name in grouped)
    # 2,201 assistants × 3 variable values × 4 end reasons a day: 26,412 rows a day, so
    # three days a window; two weeks (the old fixed window) would be ~370k.
    assert (
        RowEstimate.of(2_000, 2, ("endedReason",)).rows(
            Slice(date(2026, 10, 1), date(2026, 10, 14)), "day"
        )
        > ROW_CAP
    )
    assert len(plan.parts("by-reason")) == 11
    assert max(plan.estimated_rows[name] for name in plan.parts("by-reason")) == 3 * 26_412
    _assert_tiles_the_month(plan, "by-reason")
    _assert_tiles_the_month(plan, plan.core_query)


@pytest.mark.parametrize("step", ["day", "week", None])
def test_a_20000_assistant_plan_slices_days_and_stays_within_the_budget(
    config_from: Callable[[dict[str, Any]], ChargebackConfig], step: str | None
) -> None:
    config = _config(config_from, _definition("reasons", ["type", "endedReason"], step))
    plan = _plan(config, 20_000)

    assert all(rows <= ROW_BUDGET for rows in plan.estimated_rows.values())
    parts = plan.parts("by-type-reason")
    # a day of 22,001 assistants × 3 × 2 × 4 is 528k rows, a slice may hold twice its
    # share: fourteen slices of each day
    assert len(parts) == 31 * 14
    assert parts[:2] == ["by-type-reason-01.1", "by-type-reason-01.2"]
    _assert_tiles_the_month(plan, "by-type-reason")
    long_day = [
        plan.query(name).time_range for name in parts if name.startswith("by-type-reason-25.")
    ]
    lengths = [r.end - r.start for r in long_day if r and r.start and r.end]
    assert sum(lengths, timedelta()) == timedelta(hours=25)
    assert max(lengths) - min(lengths) <= timedelta(seconds=1)
    assert len(lengths) == 14
    for time_range in long_day:
        assert time_range and time_range.start and time_range.start.microsecond == 0
        assert time_range.step == step


def test_windows_are_as_long_as_the_budget_allows(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    reasons = _definition("reasons", ["endedReason"], None)
    weekly = _definition("weekly-success", ["analysis.successEvaluation"], "week")
    plan = _plan(_config(config_from, reasons, weekly), 50)

    # a small org: one query per shape, as before the budget existed
    assert plan.families == {}
    assert len(plan.batches) == 1


def test_week_windows_are_cut_at_mondays_while_a_week_fits() -> None:
    estimate = RowEstimate.of(2_000, 40, ("analysis.successEvaluation",))
    windows = cut(Slice(date(2026, 10, 1), date(2026, 10, 31)), "week", estimate)

    assert windows[0].first == date(2026, 10, 1) and windows[-1].last == date(2026, 10, 31)
    for before, after in pairwise(windows):
        assert after.first == before.last + timedelta(days=1)
        assert after.first.weekday() == 0
    assert all(estimate.rows(window, "week") <= ROW_BUDGET for window in windows)
    assert len(windows) < 5


def test_requests_are_packed_by_estimated_rows() -> None:
    estimated = {"a": 250_000, "b": 60_000, "c": 10_000, "d": 400_000, "e": 1}

    batches = pack_requests(list(estimated), 3, estimated, REQUEST_ROW_BUDGET)

    assert batches == [["a"], ["b", "c"], ["d"], ["e"]]
    assert pack_requests(list(estimated), 3, estimated, None) == [["a", "b", "c"], ["d", "e"]]


def test_the_plan_records_its_estimates_in_its_json(
    config_from: Callable[[dict[str, Any]], ChargebackConfig],
) -> None:
    plan = _plan(_config(config_from, DAY_BY_REASON), 2_000, rows_per_request=200_000)

    again = Plan.model_validate_json(plan.model_dump_json())

    assert again.estimated_rows == plan.estimated_rows
    for batch in plan.batches:
        rows = sum(plan.estimated_rows[name] for name in batch)
        assert rows <= 200_000 or len(batch) == 1
