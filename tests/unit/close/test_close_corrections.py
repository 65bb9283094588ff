"""Corrections: final + carried + deltas = recomputed, in every column, to the cent."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.close.corrections import (
    CorrectionLine,
    corrected_period,
    correction_allocation,
    correction_lines,
)
from vapi_chargeback.close.ids import statement_ids
from vapi_chargeback.statement import UNALLOCATED, ChargebackLine

from support.close_lines import COMPONENTS, column_totals, line

D = Decimal
OCTOBER = "2026-10"
IDS = statement_ids("VAPI", OCTOBER, ["sales", "support"], 1)
FINAL = [
    line("sales", "20.00", team="a", assistant="asst-1", calls=10, minutes="30.00",
         components=("1.00", "2.00", "10.00", "3.00", "2.00")),
    line("sales", "6.00", allocation="shared:platform"),
    line("support", "4.00", allocation="shared:platform"),
    line(UNALLOCATED, "1.50", assistant="asst-9", allocation="unallocated:unmapped-assistant",
         calls=1, minutes="2.00"),
]  # fmt: skip


def test_unchanged_lines_give_no_corrections() -> None:
    assert correction_lines(OCTOBER, FINAL, list(reversed(FINAL)), IDS) == []


def test_late_calls_and_a_moved_pool_become_delta_lines_citing_the_corrected_statement() -> None:
    recomputed = [
        line("sales", "23.10", team="a", assistant="asst-1", calls=12, minutes="34.50",
             components=("1.10", "2.40", "11.50", "3.60", "2.40")),
        line("sales", "5.00", allocation="shared:platform"),
        line("support", "5.00", allocation="shared:platform"),
        line("support", "0.70", team="c", assistant="asst-3", calls=1, minutes="1.00"),
        line(UNALLOCATED, "1.50", assistant="asst-9", allocation="unallocated:unmapped-assistant",
             calls=1, minutes="2.00"),
    ]  # fmt: skip

    result = correction_lines(OCTOBER, FINAL, recomputed, IDS)

    got = [
        (c.line.cost_center_id, c.line.team, c.line.assistant_id, c.line.calls, c.line.minutes,
         c.line.cost_usd, list(c.line.components_usd.values()), c.corrects, c.allocations)
        for c in result
    ]  # fmt: skip
    assert got == [
        ("sales", "", "", 0, D("0.00"), D("-1.00"), [D(0)] * 5, "VAPI-2026-10-sales-v1",
         ("shared:platform",)),
        ("sales", "a", "asst-1", 2, D("4.50"), D("3.10"),
         [D("0.10"), D("0.40"), D("1.50"), D("0.60"), D("0.40")], "VAPI-2026-10-sales-v1",
         ("direct",)),
        ("support", "", "", 0, D("0.00"), D("1.00"), [D(0)] * 5, "VAPI-2026-10-support-v1",
         ("shared:platform",)),
        ("support", "c", "asst-3", 1, D("1.00"), D("0.70"), [D(0)] * 5,
         "VAPI-2026-10-support-v1", ("direct",)),
    ]  # fmt: skip
    for correction in result:
        assert correction.line.allocation == "correction:2026-10"
        assert correction.corrected_period == OCTOBER
    assert result[1].line.other_usd == D("0.10")
    assert result[0].line.cost_center_name == "Sales"


def test_an_assistant_moved_to_another_cost_center_is_a_negative_and_a_positive_line() -> None:
    final = [line("sales", "9.00", team="a", assistant="asst-1", calls=3, minutes="6.00")]
    recomputed = [line("support", "9.00", team="a", assistant="asst-1", calls=3, minutes="6.00")]

    result = correction_lines(OCTOBER, final, recomputed, IDS)

    assert [(c.line.cost_center_id, c.line.calls, c.line.cost_usd) for c in result] == [
        ("sales", -3, D("-9.00")),
        ("support", 3, D("9.00")),
    ]


def test_unallocated_lines_and_cost_centers_without_a_statement_cite_the_org_statement() -> None:
    final = [line(UNALLOCATED, "2.00", allocation="unallocated:no-assistant", calls=1)]
    recomputed = [line("ops", "2.00", team="x", assistant="asst-5", calls=1)]

    result = correction_lines(OCTOBER, final, recomputed, IDS)

    assert [(c.line.cost_center_id, c.corrects) for c in result] == [
        ("ops", "VAPI-2026-10-ORG-v1"),
        (UNALLOCATED, "VAPI-2026-10-ORG-v1"),
    ]
    assert [c.line.corrects for c in result] == [c.corrects for c in result], (
        "the line itself carries the corrected id, for the CSV's corrects column"
    )


def test_a_correction_line_keeps_the_assistant_name_the_lines_show() -> None:
    final = [replace(line("sales", "1.00", team="a", assistant="asst-1"), assistant_name="Ava")]
    recomputed = [replace(final[0], cost_usd=D("1.50"))]

    (result,) = correction_lines(OCTOBER, final, recomputed, IDS)

    assert (result.line.assistant_name, result.line.cost_usd) == ("Ava", D("0.50"))


def test_corrections_booked_in_the_month_are_history_not_part_of_its_computation() -> None:
    booked = line("sales", "0.40", team="a", assistant="asst-1", allocation="correction:2026-09")

    assert correction_lines(OCTOBER, [*FINAL, booked], FINAL, IDS) == []
    assert correction_lines(OCTOBER, FINAL, [*FINAL, booked], IDS) == []


def test_corrections_already_carried_into_a_final_month_are_not_charged_again() -> None:
    late = [*FINAL, line("support", "0.70", team="c", assistant="asst-3", calls=1)]
    later = [*late, line("support", "0.30", team="c", assistant="asst-7", calls=1)]
    first = correction_lines(OCTOBER, FINAL, late, IDS)

    assert correction_lines(OCTOBER, FINAL, late, IDS, carried=first) == []
    second = correction_lines(OCTOBER, FINAL, later, IDS, carried=first)
    assert [(c.line.assistant_id, c.line.cost_usd) for c in second] == [("asst-7", D("0.30"))]


def test_a_shuffle_between_allocations_of_one_key_that_nets_to_zero_is_no_correction() -> None:
    final = [line("sales", "5.00", allocation="shared:platform")]
    recomputed = [line("sales", "5.00", allocation="shared:fee")]

    assert correction_lines(OCTOBER, final, recomputed, IDS) == []


def test_allocation_helpers() -> None:
    assert correction_allocation(OCTOBER) == "correction:2026-10"
    assert corrected_period("correction:2026-10") == OCTOBER
    assert corrected_period("direct") is None
    with pytest.raises(ValueError, match="YYYY-MM"):
        corrected_period("correction:October")


def test_mismatched_months_are_refused() -> None:
    with pytest.raises(ValueError, match="statement ids are for 2026-10"):
        correction_lines("2026-09", FINAL, FINAL, IDS)
    stray = CorrectionLine(FINAL[0], "2026-09", "VAPI-2026-09-sales-v1", ("direct",))
    with pytest.raises(ValueError, match="carried correction of 2026-09"):
        correction_lines(OCTOBER, FINAL, FINAL, IDS, carried=[stray])


keys = st.tuples(
    st.sampled_from(["sales", "support", UNALLOCATED]),
    st.sampled_from(["", "a", "b"]),
    st.sampled_from(["", "asst-1", "asst-2"]),
    st.sampled_from(["direct", "shared:platform", "unallocated:no-assistant"]),
)
money = st.integers(min_value=-(10**7), max_value=10**7).map(lambda c: D(c) / 100)


@st.composite
def statement_lines(draw: st.DrawFn) -> list[ChargebackLine]:
    chosen = draw(st.lists(keys, max_size=8, unique=True))
    return [
        line(
            center,
            draw(money),
            team=team,
            assistant=assistant,
            allocation=allocation,
            calls=draw(st.integers(min_value=0, max_value=10**5)),
            minutes=draw(money),
            components=[draw(money) for _ in COMPONENTS],
        )
        for center, team, assistant, allocation in chosen
    ]


@settings(max_examples=300, deadline=None)
@given(final=statement_lines(), middle=statement_lines(), recomputed=statement_lines())
def test_final_plus_carried_plus_deltas_equal_recomputed_in_every_column(
    final: list[ChargebackLine], middle: list[ChargebackLine], recomputed: list[ChargebackLine]
) -> None:
    carried = correction_lines(OCTOBER, final, middle, IDS)

    result = correction_lines(OCTOBER, final, recomputed, IDS, carried=carried)

    deltas = [c.line for c in result]
    booked = [*final, *(c.line for c in carried)]
    columns = ("calls", "minutes", "cost", *(f"component:{c}" for c in COMPONENTS))
    total, target = column_totals([*booked, *deltas]), column_totals(recomputed)
    assert [total.get(c, D(0)) for c in columns] == [target.get(c, D(0)) for c in columns]

    def by_key(lines: list[ChargebackLine]) -> dict[tuple[str, str, str], dict[str, Decimal]]:
        grouped: dict[tuple[str, str, str], list[ChargebackLine]] = {}
        for item in lines:
            grouped.setdefault((item.cost_center_id, item.team, item.assistant_id), []).append(item)
        return {key: column_totals(items) for key, items in grouped.items()}

    before, after, fix = by_key(booked), by_key(recomputed), by_key(deltas)
    for key in before.keys() | after.keys():
        for column in columns:
            old = before.get(key, {}).get(column, D(0))
            new = after.get(key, {}).get(column, D(0))
            assert old + fix.get(key, {}).get(column, D(0)) == new
    assert len(fix) == len(deltas)
    assert all(
        any([c.line.calls, c.line.minutes, c.line.cost_usd, *c.line.components_usd.values()])
        for c in result
    )
    assert {c.line.allocation for c in result} <= {"correction:2026-10"}
