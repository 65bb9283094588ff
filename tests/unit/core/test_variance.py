"""Month-over-month drivers: the effects add up to Δ to the cent, and each means what it says."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.statement import UNALLOCATED, ChargebackLine, PreviousMonth
from vapi_chargeback.variance import (
    Effects,
    Usage,
    Variance,
    drivers,
    exact_effects,
    manifest_block,
    month_over_month,
    unit_effects,
)

from support.statement_samples import sample_statement

D = Decimal
CENTERS = {"sales": "Sales", "support": "Support"}


def usage_line(
    center: str, assistant: str, calls: int, minutes: str, cost: str, team: str = "t"
) -> ChargebackLine:
    return ChargebackLine(
        center,
        CENTERS.get(center, center),
        team,
        assistant,
        "direct",
        calls,
        D(minutes),
        D(cost),
        {},
    )


def other_line(center: str, allocation: str, cost: str) -> ChargebackLine:
    return ChargebackLine(
        center, CENTERS.get(center, center), "", "", allocation, 0, D(0), D(cost), {}
    )


def compare(now: list[ChargebackLine], then: list[ChargebackLine]) -> Variance:
    return drivers("2026-10", now, "2026-09", then, centers=CENTERS)


def center(variance: Variance, center_id: str) -> Effects:
    return next(row.effects for row in variance.cost_centers if row.cost_center_id == center_id)


def assistant(variance: Variance, assistant_id: str) -> Effects:
    return next(row.effects for row in variance.assistants if row.assistant_id == assistant_id)


def test_pure_price_change_is_only_a_rate_effect() -> None:
    variance = compare(
        [usage_line("sales", "a1", 100, "250.00", "30.00")],
        [usage_line("sales", "a1", 100, "250.00", "25.00")],
    )

    assert center(variance, "sales") == Effects(rate_usd=D("5.00"))
    assert variance.org.effects == Effects(rate_usd=D("5.00"))
    assert variance.org.delta_usd == D("5.00")


def test_pure_volume_change_is_only_a_volume_effect() -> None:
    # Twice the calls of the same length at the same $/min: twice the cost, all volume.
    variance = compare(
        [usage_line("sales", "a1", 200, "500.00", "50.00")],
        [usage_line("sales", "a1", 100, "250.00", "25.00")],
    )

    assert assistant(variance, "a1") == Effects(volume_usd=D("25.00"))
    assert center(variance, "sales") == Effects(volume_usd=D("25.00"))


def test_longer_calls_are_a_duration_effect() -> None:
    variance = compare(
        [usage_line("sales", "a1", 100, "300.00", "30.00")],
        [usage_line("sales", "a1", 100, "250.00", "25.00")],
    )

    assert center(variance, "sales") == Effects(duration_usd=D("5.00"))


def test_an_assistant_that_disappears_is_gone_and_a_new_one_is_new() -> None:
    variance = compare(
        [usage_line("sales", "a1", 10, "20.00", "4.00"), usage_line("sales", "a3", 5, "9", "7.25")],
        [usage_line("sales", "a1", 10, "20.00", "4.00"), usage_line("sales", "a2", 3, "6", "1.50")],
    )

    assert assistant(variance, "a2") == Effects(gone_usd=D("-1.50"))
    assert assistant(variance, "a3") == Effects(new_usd=D("7.25"))
    assert center(variance, "sales") == Effects(new_usd=D("7.25"), gone_usd=D("-1.50"))
    assert [row.assistant_id for row in variance.movers()] == ["a3", "a2"]
    gone = next(row for row in variance.assistants if row.assistant_id == "a2")
    assert (gone.previous, gone.current) == (Usage(3, D("6.00"), D("1.50")), None)


def test_pools_corrections_adjustments_and_unallocated_are_other() -> None:
    variance = compare(
        [
            usage_line("sales", "a1", 10, "20", "4.00"),
            other_line("sales", "shared:platform", "9.00"),
            other_line("sales", "adjustment:invoice", "0.10"),
            other_line(UNALLOCATED, "unallocated:no-assistant", "2.00"),
        ],
        [
            usage_line("sales", "a1", 10, "20", "4.00"),
            other_line("sales", "shared:platform", "7.00"),
            other_line("sales", "correction:2026-08", "-0.40"),
        ],
    )

    assert center(variance, "sales") == Effects(other_usd=D("2.50"))
    assert center(variance, UNALLOCATED) == Effects(other_usd=D("2.00"))
    assert variance.org.delta_usd == D("4.50") == variance.org.effects.total_usd


def test_teams_of_one_assistant_are_one_unit() -> None:
    # A re-mapped team is not a new assistant: the lines of both teams are summed.
    variance = compare(
        [
            usage_line("sales", "a1", 5, "10", "2.00", "x"),
            usage_line("sales", "a1", 5, "10", "2.00", "y"),
        ],
        [usage_line("sales", "a1", 10, "20", "4.00", "x")],
    )

    assert center(variance, "sales") == Effects()


def test_a_cost_center_charged_only_last_month_still_has_its_row() -> None:
    variance = compare([], [usage_line("retired", "a9", 1, "1", "3.00")])

    assert [row.cost_center_id for row in variance.cost_centers] == [
        "sales",
        "support",
        "retired",
        UNALLOCATED,
    ]
    assert center(variance, "retired") == Effects(gone_usd=D("-3.00"))


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            (10, "0", "1.00"), (10, "5", "2.00"), ("0", "0", "1.00"), id="no-minutes-then"
        ),
        pytest.param(
            (10, "0", "1.00"), (20, "0", "2.00"), ("1.00", "0", "0"), id="no-minutes-both"
        ),
        pytest.param((0, "0", "1.00"), (10, "5", "2.00"), ("1.00", "0", "0"), id="no-calls-then"),
        pytest.param((0, "0", "1.00"), (0, "0", "3.00"), ("0", "0", "2.00"), id="no-calls-ever"),
        pytest.param((5, "3", "0.00"), (5, "3", "0.00"), ("0", "0", "0"), id="free-both"),
    ],
)
def test_zero_calls_or_minutes_never_divide_by_zero(
    before: tuple[int, str, str], after: tuple[int, str, str], expected: tuple[str, str, str]
) -> None:
    old, new = (Usage(calls, D(minutes), D(cost)) for calls, minutes, cost in (before, after))

    effects = unit_effects(old, new)

    assert (effects.volume_usd, effects.duration_usd, effects.rate_usd) == tuple(map(D, expected))
    assert effects.total_usd == new.cost_usd - old.cost_usd


def test_shapley_effects_are_symmetric_in_the_months() -> None:
    # Swapping the months negates every effect: neither month is the base.
    old, new = Usage(7, D("13.37"), D("4.21")), Usage(11, D("29.03"), D("9.99"))

    forward, backward = exact_effects(old, new), exact_effects(new, old)

    assert forward == tuple(-part for part in backward)
    assert sum(forward, Fraction(0)) == Fraction(new.cost_usd - old.cost_usd)


def test_manifest_block_lists_the_movers_and_adds_up() -> None:
    variance = compare(
        [usage_line("sales", "a1", 20, "40", "8.00"), usage_line("support", "b1", 1, "1", "0.50")],
        [usage_line("sales", "a1", 10, "20", "4.00"), usage_line("support", "b2", 1, "1", "0.70")],
    )

    block = manifest_block(variance)

    assert block is not None
    assert block["previous_period"] == "2026-09"
    assert block["org"]["delta_usd"] == "3.80"
    assert [(m["assistant_id"], m["delta_usd"]) for m in block["top_movers"]] == [
        ("a1", "4.00"),
        ("b2", "-0.70"),
        ("b1", "0.50"),
    ]
    sales = block["cost_centers"]["sales"]
    assert sales["volume_usd"] == "4.00" and sales["top_assistants"][0]["assistant_id"] == "a1"
    assert manifest_block(None) is None


cents = st.integers(min_value=0, max_value=500_000).map(lambda units: D(units) / 100)
hundredths = st.integers(min_value=0, max_value=900_000).map(lambda units: D(units) / 100)
lines = st.lists(
    st.tuples(
        st.sampled_from(["sales", "support", "retired", UNALLOCATED]),
        st.sampled_from(["a1", "a2", "a3", "a4", ""]),
        st.sampled_from(["direct", "direct", "direct", "shared:pool", "correction:2026-08"]),
        st.integers(min_value=0, max_value=5_000),
        hundredths,
        cents,
    ),
    max_size=12,
)


def as_lines(rows: list[tuple[str, str, str, int, Decimal, Decimal]]) -> list[ChargebackLine]:
    return [
        ChargebackLine(
            center, center, f"team-{index % 2}", asst, allocation, calls, minutes, cost, {}
        )
        for index, (center, asst, allocation, calls, minutes, cost) in enumerate(rows)
    ]


@settings(max_examples=150, deadline=None)
@given(now=lines, then=lines)
def test_effects_add_up_to_delta_to_the_cent_for_every_row(
    now: list[tuple[str, str, str, int, Decimal, Decimal]],
    then: list[tuple[str, str, str, int, Decimal, Decimal]],
) -> None:
    current, previous = as_lines(now), as_lines(then)
    variance = compare(current, previous)

    for row in [variance.org, *variance.cost_centers, *variance.assistants]:
        assert row.effects.total_usd == row.delta_usd, row
        assert all(part == part.quantize(D("0.01")) for part in row.effects.parts)
    for row in variance.cost_centers:
        members = [a for a in variance.assistants if a.cost_center_id == row.cost_center_id]
        summed = sum((a.effects for a in members), Effects(other_usd=row.effects.other_usd))
        assert summed == row.effects
        expected = sum(
            (x.cost_usd for x in current if x.cost_center_id == row.cost_center_id), D(0)
        )
        assert row.current_usd == expected
    assert variance.org.delta_usd == sum((x.cost_usd for x in current), D(0)) - sum(
        (x.cost_usd for x in previous), D(0)
    )
    assert variance.org.effects == sum((row.effects for row in variance.cost_centers), Effects())
    for row in variance.assistants:
        assert row.effects.gone_usd <= 0 and row.effects.other_usd == 0


def textbook_shapley(before: Usage, after: Usage) -> tuple[Fraction, Fraction, Fraction]:
    """The three-factor Shapley effects written out over ``Fraction``s, factor by factor."""
    a = (Fraction(before.calls), Fraction(after.calls))
    b = (Fraction(before.minutes) / a[0], Fraction(after.minutes) / a[1])
    c = (
        Fraction(before.cost_usd) / Fraction(before.minutes),
        Fraction(after.cost_usd) / Fraction(after.minutes),
    )

    def weight(x: tuple[Fraction, Fraction], y: tuple[Fraction, Fraction]) -> Fraction:
        return (x[0] * y[0] + x[1] * y[1]) / 3 + (x[0] * y[1] + x[1] * y[0]) / 6

    return (a[1] - a[0]) * weight(b, c), (b[1] - b[0]) * weight(a, c), (c[1] - c[0]) * weight(a, b)


usages = st.builds(
    Usage,
    st.integers(min_value=1, max_value=10_000),
    st.integers(min_value=1, max_value=900_000).map(lambda units: D(units) / 100),
    cents,
)


@settings(max_examples=200, deadline=None)
@given(before=usages, after=usages)
def test_the_integer_shapley_effects_are_the_textbook_ones(before: Usage, after: Usage) -> None:
    assert exact_effects(before, after) == textbook_shapley(before, after)


def test_a_render_computes_the_drivers_once_per_statement() -> None:
    september = [usage_line("sales", "a1", 1, "1", "1.00")]
    statement = sample_statement(previous=PreviousMonth("2026-09", september))

    first = month_over_month(statement)

    assert first is not None and month_over_month(statement) is first
    assert month_over_month(sample_statement(previous=PreviousMonth("2026-09", september))) == first
    assert month_over_month(sample_statement()) is None
