"""The verification's parts without HTTP: the recount of hand-made calls, the comparison, the
tolerance, Other by type.

The recount must be what the analytics API would answer for the same calls, and go
through the very same allocation: here a month of hand-made calls is allocated twice,
once from the recount and once from the analytics-shaped rows written by hand, and the
lines must be equal.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.allocate import allocate
from vapi_chargeback.analytics.calls import CallPage, CallRecord
from vapi_chargeback.analytics.windows import Window
from vapi_chargeback.attribution import Attributor
from vapi_chargeback.config import load_config
from vapi_chargeback.mapping import load_mapping
from vapi_chargeback.money import round_money
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.statement import ChargebackLine
from vapi_chargeback.verify.compare import compare_days, compare_lines, largest_first
from vapi_chargeback.verify.recount import UNITEMISED, Recount, recount_plan
from vapi_chargeback.verify.report import ROUNDING, other_by_type
from vapi_chargeback.verify.settings import VerificationSettings

ROOT = Path(__file__).resolve().parents[3]
CONFIG_FILE = ROOT / "include" / "config" / "chargeback.yaml"
CONFIG = load_config(CONFIG_FILE)
MAPPING = load_mapping(CONFIG_FILE.parent / CONFIG.mapping, CONFIG)
PERIOD = StatementPeriod.for_month("2026-10", CONFIG.timezone)
SALES_ASSISTANT = next(e.assistant_id for e in MAPPING.entries if e.cost_center_id == "sales")


def call(
    number: int,
    created: str,
    *,
    assistant: str | None = SALES_ASSISTANT,
    cost: str | None = "1.000000",
    llm: str = "0.400000",
    costs: list[dict[str, Any]] | None = None,
    seconds: int | None = 90,
    variable: str | None = None,
    success: bool | None = True,
) -> CallRecord:
    moment = datetime.fromisoformat(created)
    record: dict[str, Any] = {
        "id": f"00000000-0000-4000-8000-{number:012d}",
        "assistantId": assistant,
        "createdAt": created,
        "cost": cost,
        "costBreakdown": {"llm": llm, "stt": "0.100000"} if cost is not None else None,
        "costs": costs,
    }
    if seconds is not None:
        record["startedAt"] = created
        record["endedAt"] = (moment + timedelta(seconds=seconds)).isoformat()
    if variable is not None:
        record["assistantOverrides"] = {"variableValues": {"costCenter": variable}}
    if success is not None:
        record["analysis"] = {"successEvaluation": success}
    return CallRecord.model_validate(record)


def page(*calls: CallRecord, sha: str = "a" * 64, attempts: int = 1) -> CallPage:
    return CallPage(Window(0, 1), sha, 10, len(calls), True, attempts, list(calls))


ANALYSIS = {"type": "analysis", "analysisType": "summary", "cost": "0.250000"}
VOICEMAIL = {"type": "voicemail-detection", "cost": "0.150000"}


def month_of_calls() -> list[CallRecord]:
    return [
        # 23:30 UTC on Oct 14 is Oct 15 in Berlin: the day is the org's local day.
        call(1, "2026-10-14T23:30:00+00:00", costs=[ANALYSIS, VOICEMAIL]),
        call(2, "2026-10-14T21:30:00+00:00", costs=[ANALYSIS]),
        call(3, "2026-10-15T08:00:00+00:00", assistant=None, cost="0.300000", llm="0.1"),
        call(4, "2026-10-15T08:00:00+00:00", variable="support", success=False),
        call(5, "2026-10-16T08:00:00+00:00", cost=None, seconds=None, success=None),
    ]


def test_calls_are_summed_per_local_day_assistant_and_variable_with_other_by_type() -> None:
    recount = Recount(PERIOD, CONFIG.components)
    recount.add_pages([page(*month_of_calls()[:2]), page(*month_of_calls()[2:], sha="b" * 64)])
    assert recount.calls == 5 and recount.pages_sha256 == ["a" * 64, "b" * 64]
    cells = recount.cells
    assert cells[(date(2026, 10, 15), SALES_ASSISTANT, None)][:3] == [1, 90, Decimal(1)]
    assert cells[(date(2026, 10, 14), SALES_ASSISTANT, None)][:3] == [1, 90, Decimal(1)]
    # a call that has not ended yet: counted, no seconds, no cost.
    assert cells[(date(2026, 10, 16), SALES_ASSISTANT, None)][:3] == [1, 0, 0]
    # Other = cost − reported components (llm + stt): itemised where costs[] says so.
    day15 = recount.other[(date(2026, 10, 15), SALES_ASSISTANT, None)]
    assert day15 == {
        "analysis": Decimal("0.25"),
        "voicemail-detection": Decimal("0.15"),
        UNITEMISED: Decimal("0.10"),
    }
    assert recount.successes[((date(2026, 10, 15), SALES_ASSISTANT, "support"), "false")] == 1


def test_a_component_not_reported_counts_as_its_cost_item_type() -> None:
    recount = Recount(PERIOD, ["stt"])
    model = {"type": "model", "cost": "0.400000"}
    recount.add_page(page(call(1, "2026-10-20T10:00:00+00:00", costs=[model, ANALYSIS])))
    other = recount.other[(date(2026, 10, 20), SALES_ASSISTANT, None)]
    assert other == {
        "model": Decimal("0.4"),
        "analysis": Decimal("0.25"),
        UNITEMISED: Decimal("0.25"),
    }


def test_the_recount_allocates_exactly_like_the_analytics_rows_it_imitates() -> None:
    """The recount's rows go through ``allocate`` itself: equal rows, equal lines."""
    recount = Recount(PERIOD, CONFIG.components)
    recount.add_page(page(*month_of_calls()))
    plan = recount_plan(CONFIG, PERIOD)
    results = recount.results(plan, CONFIG.variable_key)
    statement = allocate(CONFIG, MAPPING, plan, results)
    direct = {(line.cost_center_id, line.allocation): line for line in statement.lines}
    sales = direct[("sales", "direct")]
    assert (sales.calls, sales.cost_usd, sales.minutes) == (3, Decimal("2.00"), Decimal("3.00"))
    assert direct[("support", "direct")].calls == 1, "the variable value names its cost center"
    # The call without an assistant is re-spread by the demo's pool, as analytics rows would be.
    pool = [line for line in statement.lines if line.allocation == "shared:calls-without-assistant"]
    assert sum(line.cost_usd for line in pool) == Decimal("0.30")
    # And the same rows as the analytics API would send them (strings, default keys) agree.
    core = results[plan.core_query].result
    as_text = [
        {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()} for row in core
    ]
    replayed = dict(results)
    replayed[plan.core_query] = results[plan.core_query].model_copy(update={"result": as_text})
    assert allocate(CONFIG, MAPPING, plan, replayed).lines == statement.lines


@pytest.mark.parametrize(
    ("statement", "recount", "money", "blocks"),
    [
        ("10.00", "10.00", True, False),
        ("10.00", "10.01", True, False),  # within the absolute tolerance
        ("10.00", "10.02", True, True),
        ("1000.00", "1000.50", True, False),  # within 0.1 % of the larger figure
        ("1000.00", "1001.50", True, True),
        ("100", "101", False, True),  # calls: no absolute tolerance, 1 % > 0.1 %
        ("2000", "2001", False, False),
    ],
    ids=["equal", "cent", "two-cents", "relative-ok", "relative-over", "calls-over", "calls-ok"],
)
def test_a_difference_blocks_only_beyond_both_tolerances(
    statement: str, recount: str, money: bool, blocks: bool
) -> None:
    policy = VerificationSettings(tolerance_usd=Decimal("0.01"), tolerance_pct=Decimal("0.1"))
    assert policy.blocks(Decimal(statement), Decimal(recount), money=money) is blocks


def line(center: str, assistant: str, calls: int, cost: str, llm: str = "0.00") -> ChargebackLine:
    return ChargebackLine(
        center,
        center.title(),
        "team",
        assistant,
        "direct",
        calls,
        Decimal(calls),
        Decimal(cost),
        {"llm": Decimal(llm)},
    )


def test_lines_compare_column_by_column_and_name_the_largest_first() -> None:
    policy = VerificationSettings()
    ours = [line("sales", "a", 10, "5.00"), line("support", "b", 3, "1.00")]
    theirs = [
        line("sales", "a", 11, "5.40"),
        line("support", "b", 3, "1.00"),
        line("ops", "c", 1, "0.01"),
    ]
    correction = replace(ours[0], allocation="correction:2026-09", cost_usd=Decimal("-9"))
    result = compare_lines([*ours, correction], theirs, ["llm"], policy)
    assert (result.compared, result.matched) == (3, 1)
    worst = largest_first(result.differences)
    assert [(d.cost_center_id, d.column, d.difference) for d in worst] == [
        ("sales", "cost", Decimal("0.40")),
        ("ops", "calls", Decimal(1)),
        ("sales", "calls", Decimal(1)),
        ("ops", "minutes", Decimal(1)),
        ("sales", "minutes", Decimal(1)),
        ("ops", "cost", Decimal("0.01")),  # within tolerance: last
    ]
    assert [d.over_tolerance for d in worst] == [True] * 5 + [False]


def test_days_compare_exact_sums_and_report_seconds_as_minutes() -> None:
    key = (date(2026, 10, 5), "sales", "t", "a", "direct")
    other = (date(2026, 10, 6), "sales", "t", "a", "direct")
    analytics = {key: [Decimal(2), Decimal(120), Decimal("1.000001")]}
    recount = {
        key: [Decimal(2), Decimal(150), Decimal("1.000001")],
        other: [Decimal(1), Decimal(0), Decimal(0)],
    }
    result = compare_days(analytics, recount, ["calls", "seconds", "cost"], VerificationSettings())
    assert (result.compared, result.matched) == (2, 0)
    minutes = next(d for d in result.differences if d.day == key[0])
    assert (minutes.column, minutes.statement, minutes.recount) == (
        "minutes",
        Decimal(2),
        Decimal("2.5"),
    )
    assert minutes.over_tolerance


class _Everyone(Attributor):
    """Sends every cell to the cost center named by its assistant id."""

    def __init__(self) -> None:
        pass

    def __call__(self, assistant_id: object, variable_value: object, day: date) -> Any:
        from vapi_chargeback.attribution import Attribution

        return Attribution(str(assistant_id), "t", str(assistant_id), "direct", "mapping")


amounts = st.decimals(min_value=0, max_value=Decimal("3"), places=6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(
        st.tuples(
            st.sampled_from(["sales", "support"]),
            st.dictionaries(
                st.sampled_from(["analysis", "voicemail-detection", "knowledge-base", UNITEMISED]),
                amounts,
                min_size=1,
            ),
        ),
        min_size=1,
        max_size=12,
    ),
    lines_other=st.lists(amounts, min_size=2, max_size=2),
)
def test_other_by_type_adds_up_to_the_workbooks_other_to_the_cent(
    cells: list[tuple[str, dict[str, Decimal]]], lines_other: list[Decimal]
) -> None:
    recount = Recount(PERIOD, CONFIG.components)
    for index, (center, types) in enumerate(cells):
        recount.other[(date(2026, 10, 1 + index), center, None)] = dict(types)
    shown = [
        ChargebackLine(c, c, "t", c, "direct", 1, Decimal(1), other.quantize(Decimal("0.01")), {})
        for c, other in zip(["sales", "support"], lines_other, strict=True)
    ]
    for item in other_by_type(recount, _Everyone(), shown):
        assert sum(item.by_type.values(), Decimal(0)) == item.other_usd
        exact = sum(
            (v for c, types in cells if c == item.cost_center_id for v in types.values()),
            Decimal(0),
        )
        rounded = sum((v for k, v in item.by_type.items() if k != ROUNDING), Decimal(0))
        assert rounded == round_money(exact), "the types are the exact Other, rounded once"
