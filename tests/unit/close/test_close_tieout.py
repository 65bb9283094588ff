"""Invoice tie-out: the difference spread by direct cost, exactly; beyond tolerance refused."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.close.invoices import Invoice
from vapi_chargeback.close.tieout import (
    ADJUSTMENT,
    NOT_TIED,
    InvoiceBlock,
    tie_out,
    usage_total,
)
from vapi_chargeback.statement import UNALLOCATED

from support.close_lines import COMPONENTS, line

D = Decimal
OCTOBER = "2026-10"
FIXED = ["platform"]
LINES = [
    line("sales", "400.00", team="a", assistant="asst-1", calls=40, minutes="80.00"),
    line("sales", "200.00", team="b", assistant="asst-2", calls=20, minutes="40.00"),
    line("support", "400.00", team="c", assistant="asst-3", calls=50, minutes="90.00"),
    line("ops", "30.00", allocation="shared:platform"),
    line("sales", "70.00", allocation="shared:platform"),
    line("support", "10.00", allocation="shared:no-assistant", calls=3, minutes="2.00"),
    line(UNALLOCATED, "50.00", assistant="asst-9", allocation="unallocated:unmapped-assistant"),
]
USAGE = D("1060.00")
"""600 + 400 direct, 10 re-spread usage, 50 unallocated; the 100 platform fee is not usage."""


def invoice(amount: str, period: str = OCTOBER) -> Invoice:
    return Invoice(period, "INV-1001", D(amount), 7)


def test_usage_is_every_line_but_fixed_pools_corrections_and_adjustments() -> None:
    others = [
        line("sales", "5.00", allocation="correction:2026-09"),
        line("sales", "1.00", allocation=ADJUSTMENT),
    ]

    assert usage_total(LINES, FIXED) == USAGE
    assert usage_total([*LINES, *others], FIXED) == USAGE
    assert usage_total(LINES) == USAGE + 100


def test_invoice_3_17_above_is_spread_by_direct_cost_and_adds_up_exactly() -> None:
    result = tie_out(OCTOBER, LINES, invoice("1063.17"), components=COMPONENTS, fixed_pools=FIXED)

    assert result.usage_usd == USAGE
    assert result.difference_usd == D("3.17")
    # sales 600/1000 of 3.17 = 1.902, support 400/1000 = 1.268: the spare cent goes to .268.
    assert [(a.cost_center_id, a.cost_usd) for a in result.lines] == [
        ("sales", D("1.90")),
        ("support", D("1.27")),
    ]
    assert sum(a.cost_usd for a in result.lines) == D("3.17")
    for adjustment in result.lines:
        assert adjustment.allocation == ADJUSTMENT
        assert (adjustment.team, adjustment.assistant_id, adjustment.calls) == ("", "", 0)
        assert adjustment.minutes == 0
        assert list(adjustment.components_usd) == list(COMPONENTS)
        assert adjustment.other_usd == adjustment.cost_usd
        assert adjustment.cost_center_name in ("Sales", "Support")
    assert result.within_tolerance
    assert result.approvable
    assert "1063.17" in result.message
    assert "1060.00" in result.message
    assert "over 2 cost centers" in result.message


def test_invoice_5_percent_off_cannot_be_approved_and_says_both_amounts() -> None:
    result = tie_out(OCTOBER, LINES, invoice("1113.00"), components=COMPONENTS, fixed_pools=FIXED)

    assert not result.within_tolerance
    assert not result.approvable
    assert result.difference_pct == D("5.00")
    assert "2026-10 cannot be approved" in result.message
    assert "invoice INV-1001 is 1113.00 USD" in result.message
    assert "Vapi usage is 1060.00 USD" in result.message
    assert "+53.00 USD" in result.message
    assert "invoices.csv line 7" in result.message
    assert sum(a.cost_usd for a in result.lines) == D("53.00")


@pytest.mark.parametrize(
    ("amount", "within"),
    [
        pytest.param("1081.20", True, id="exactly-2-percent-above"),
        pytest.param("1081.21", False, id="a-cent-beyond-above"),
        pytest.param("1038.80", True, id="exactly-2-percent-below"),
        pytest.param("1038.79", False, id="a-cent-beyond-below"),
    ],
)
def test_the_tolerance_is_inclusive_and_relative_to_usage(amount: str, within: bool) -> None:
    result = tie_out(OCTOBER, LINES, invoice(amount), components=COMPONENTS, fixed_pools=FIXED)

    assert result.within_tolerance is within
    assert result.approvable is within


def test_the_tolerance_is_configurable() -> None:
    strict = tie_out(
        OCTOBER,
        LINES,
        invoice("1060.01"),
        components=COMPONENTS,
        fixed_pools=FIXED,
        tolerance_pct=D(0),
    )

    assert not strict.approvable
    assert "beyond the 0 % tolerance" in strict.message


def test_an_invoice_below_usage_gives_negative_adjustments() -> None:
    result = tie_out(OCTOBER, LINES, invoice("1059.99"), components=COMPONENTS, fixed_pools=FIXED)

    assert [(a.cost_center_id, a.cost_usd) for a in result.lines] == [("sales", D("-0.01"))]
    assert result.approvable


def test_an_exact_match_needs_no_adjustment() -> None:
    result = tie_out(OCTOBER, LINES, invoice("1060.00"), components=COMPONENTS, fixed_pools=FIXED)

    assert result.lines == []
    assert result.approvable
    assert "tied to the cent" in result.message


def test_without_direct_cost_the_difference_cannot_be_carried() -> None:
    lines = [line(UNALLOCATED, "100.00", allocation="unallocated:no-assistant")]

    result = tie_out(OCTOBER, lines, invoice("100.50"), components=COMPONENTS)

    assert result.within_tolerance
    assert result.lines == []
    assert not result.approvable
    assert "no cost center has direct cost" in result.message


def test_a_month_without_usage_ties_only_to_a_zero_invoice() -> None:
    assert tie_out(OCTOBER, [], invoice("0.00"), components=COMPONENTS).approvable
    empty = tie_out(OCTOBER, [], invoice("0.01"), components=COMPONENTS)
    assert not empty.approvable
    assert "no usage to compare with" in empty.message


def test_a_cost_center_with_net_negative_direct_cost_carries_no_share() -> None:
    lines = [line("sales", "100.00"), line("support", "-5.00", assistant="refund")]

    result = tie_out(OCTOBER, lines, invoice("96.00"), components=COMPONENTS)

    assert [(a.cost_center_id, a.cost_usd) for a in result.lines] == [("sales", D("1.00"))]


def test_the_manifest_block_reads_back_for_the_approval_check() -> None:
    result = tie_out(OCTOBER, LINES, invoice("1063.17"), components=COMPONENTS, fixed_pools=FIXED)

    block = result.manifest_block()

    assert block == {
        "id": "INV-1001",
        "amount_usd": "1063.17",
        "usage_usd": "1060.00",
        "difference_usd": "3.17",
        "tolerance_pct": "2",
        "approvable": True,
        "message": result.message,
    }
    assert InvoiceBlock.model_validate(block).approvable
    assert NOT_TIED == "not tied to an invoice"


def test_inconsistent_calls_are_refused() -> None:
    with pytest.raises(ValueError, match="is for 2026-11"):
        tie_out(OCTOBER, LINES, invoice("1.00", "2026-11"), components=COMPONENTS)
    with pytest.raises(ValueError, match="percentage"):
        tie_out(OCTOBER, LINES, invoice("1.00"), components=COMPONENTS, tolerance_pct=D(101))


cents = st.integers(min_value=0, max_value=10**8)


@settings(max_examples=300, deadline=None)
@given(
    direct=st.lists(cents, min_size=1, max_size=8).filter(any),
    unallocated=cents,
    difference=st.integers(min_value=-(10**7), max_value=10**7),
)
def test_adjustments_add_up_exactly_and_follow_each_share(
    direct: list[int], unallocated: int, difference: int
) -> None:
    lines = [
        line(f"cc-{index}", D(amount) / 100, assistant=f"asst-{index}")
        for index, amount in enumerate(direct)
    ]
    lines.append(line(UNALLOCATED, D(unallocated) / 100, allocation="unallocated:no-assistant"))
    usage = sum(direct) + unallocated
    difference = max(difference, -usage)  # an invoice is never negative
    amount = D(usage + difference) / 100

    result = tie_out(OCTOBER, lines, invoice(str(amount)), components=COMPONENTS)

    expected = D(difference) / 100
    assert result.difference_usd == expected
    assert sum((a.cost_usd for a in result.lines), D(0)) == expected
    parts = {a.cost_center_id: a.cost_usd for a in result.lines}
    assert UNALLOCATED not in parts
    assert len(parts) == len(result.lines)
    total_direct = sum(direct)
    for index, weight in enumerate(direct):
        share = Fraction(difference, 100) * weight / total_direct
        part = Fraction(parts.get(f"cc-{index}", D(0)))
        assert abs(part - share) < Fraction(1, 100)
        if weight == 0:
            assert f"cc-{index}" not in parts
