"""The workbooks' native charts: present as chart parts, anchored beside their tables, and
referencing exactly the cells that hold the figures they plot (read back from the file)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback.statement import ChargebackLine, Statement
from vapi_chargeback.statements.charts import TOP_ASSISTANTS
from vapi_chargeback.statements.totals import summarize
from vapi_chargeback.statements.xlsx import write_cost_center_workbook, write_statement_workbook

from support.statement_samples import line, sample_statement
from support.workbook_charts import PlottedChart, chart_parts, plotted_charts

OCTOBER = [datetime(2026, 10, 1) + timedelta(days=offset) for offset in range(31)]
"""The days as openpyxl reads date cells back."""
DAILY = {
    "sales": [(date(2026, 10, 1), Decimal("60.00")), (date(2026, 10, 2), Decimal("40.00"))],
    "support": [(date(2026, 10, 31), Decimal("40.00"))],
    "UNALLOCATED": [(date(2026, 10, 5), Decimal("30.50"))],
}


def _money(values: list[object]) -> list[Decimal]:
    assert all(isinstance(value, int | float) for value in values), values
    return [Decimal(str(value)).quantize(Decimal("0.01")) for value in values]


def _by_sheet(charts: list[PlottedChart]) -> dict[str, PlottedChart]:
    assert len({chart.sheet for chart in charts}) == len(charts), "one chart per sheet"
    return {chart.sheet: chart for chart in charts}


@pytest.fixture
def statement() -> Statement:
    """The sample plus daily costs and twelve more sales assistants (so the top ten cut)."""
    sample = sample_statement(daily_cost_usd=DAILY)
    extra = [
        replace(
            line(
                "sales",
                "Sales",
                "emea",
                f"asst-s{index:02d}",
                "direct",
                index,
                "1",
                "0",
                ("0", "0", "0"),
            ),
            cost_usd=Decimal(index),
            assistant_name=f"Seller {index:02d}" if index % 2 else "",
        )
        for index in range(1, 13)
    ]
    return replace(sample, lines=[*sample.lines, *extra])


def test_finance_charts_plot_cost_by_component_and_daily_cost(
    statement: Statement, tmp_path: Path
) -> None:
    path = tmp_path / "chargeback-2026-10.xlsx"
    totals = summarize(statement)
    write_statement_workbook(statement, totals, path)

    assert chart_parts(path) == ["xl/charts/chart1.xml", "xl/charts/chart2.xml"]
    charts = _by_sheet(plotted_charts(path))
    assert set(charts) == {"Cost by component", "Daily cost"}

    stacked = charts["Cost by component"]
    assert (stacked.kinds, stacked.grouping, stacked.bar_direction) == (
        ["barChart"],
        "stacked",
        "col",
    )
    assert [item.title for item in stacked.series] == [
        "LLM (USD)",
        "STT (USD)",
        "TTS (USD)",
        "Other (USD)",
        "Shared (USD)",
    ]
    assert all(ref.startswith("'Cost by component'!") for ref in stacked.references)
    for item in stacked.series:
        assert item.categories == ["Sales", "Support, 1st level", "Unallocated"]
    centers = list(totals.by_center.values())
    llm, stt, tts, other, shared = (_money(item.values) for item in stacked.series)
    assert llm == [center.components_usd[0] for center in centers]
    assert tts == [center.components_usd[2] for center in centers]
    assert (
        shared
        == [center.shared_usd for center in centers]
        == [Decimal("7.00"), Decimal("5.00"), Decimal(0)]
    )
    assert other[0] == Decimal("30.00") + Decimal("78.00"), "asst-1's and the extras', no pool"
    stacks = [sum(parts, Decimal(0)) for parts in zip(llm, stt, tts, other, shared, strict=True)]
    assert stacks == [center.cost_usd for center in centers], (
        "each stack adds up to the Summary cost"
    )

    daily = charts["Daily cost"]
    assert daily.kinds == ["lineChart"]
    assert [item.title for item in daily.series] == [
        "Sales (USD)",
        "Support, 1st level (USD)",
        "Unallocated (USD)",
    ]
    for item in daily.series:
        assert item.categories == OCTOBER
        assert re.search(r"!\$[B-D]\$2:\$[B-D]\$32$", item.values_ref), "the 31 day rows only"
    sales, support, unallocated = (_money(item.values) for item in daily.series)
    assert sales[:3] == [Decimal("60.00"), Decimal("40.00"), Decimal(0)]
    assert sum(sales, Decimal(0)) == Decimal("100.00")
    assert support[-1] == Decimal("40.00") and sum(support[:-1], Decimal(0)) == 0
    assert unallocated[4] == Decimal("30.50")


def test_owner_charts_plot_their_daily_cost_and_top_assistants(
    statement: Statement, tmp_path: Path
) -> None:
    path = tmp_path / "sales-2026-10.xlsx"
    sales = statement.cost_centers[0]
    lines = [item for item in statement.lines if item.cost_center_id == "sales"]
    write_cost_center_workbook(statement, sales, lines, path)

    charts = _by_sheet(plotted_charts(path))
    assert set(charts) == {"Daily cost", "Top assistants"}
    (daily,) = charts["Daily cost"].series
    assert charts["Daily cost"].kinds == ["lineChart"]
    assert daily.categories == OCTOBER
    assert sum(_money(daily.values), Decimal(0)) == Decimal("100.00")

    top = charts["Top assistants"]
    assert (top.kinds, top.bar_direction) == (["barChart"], "bar")
    (bars,) = top.series
    direct = [item for item in lines if item.allocation == "direct"]
    ranked = sorted(direct, key=lambda item: (-item.cost_usd, item.assistant_id))[:TOP_ASSISTANTS]
    assert bars.title == "Cost (USD)"
    assert _money(bars.values) == [item.cost_usd for item in ranked]
    assert bars.categories == [item.assistant_name or item.assistant_id for item in ranked]
    assert bars.categories[:3] == ["asst-1", "asst-s12", "Seller 11"]
    assert all(ref.startswith("'Top assistants'!") for ref in top.references)


def test_rest_and_total_rows_sit_below_the_plotted_assistants(
    statement: Statement, tmp_path: Path
) -> None:
    import openpyxl

    path = tmp_path / "sales-2026-10.xlsx"
    lines = [item for item in statement.lines if item.cost_center_id == "sales"]
    write_cost_center_workbook(statement, statement.cost_centers[0], lines, path)

    rows = list(openpyxl.load_workbook(path)["Top assistants"].iter_rows(values_only=True))
    assert rows[TOP_ASSISTANTS + 1] == ("Other assistants (3)", None, 6, 6)
    direct: list[ChargebackLine] = [item for item in lines if item.allocation == "direct"]
    assert rows[TOP_ASSISTANTS + 2][0] == "Total"
    assert Decimal(str(rows[TOP_ASSISTANTS + 2][3])) == sum(
        (item.cost_usd for item in direct), Decimal(0)
    )


def test_a_month_without_daily_figures_draws_no_daily_line_chart(tmp_path: Path) -> None:
    path = tmp_path / "chargeback-2026-10.xlsx"
    statement = sample_statement()
    write_statement_workbook(statement, summarize(statement), path)

    assert [chart.sheet for chart in plotted_charts(path)] == ["Cost by component"]


def test_workbooks_with_charts_are_byte_identical_on_rewrite(
    statement: Statement, tmp_path: Path
) -> None:
    totals = summarize(statement)
    first, second = tmp_path / "first.xlsx", tmp_path / "second.xlsx"
    write_statement_workbook(statement, totals, first)
    write_statement_workbook(statement, totals, second)

    assert chart_parts(first)
    assert first.read_bytes() == second.read_bytes()
