from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from vapi_chargeback.statement import UNALLOCATED, PreviousMonth, Statement
from vapi_chargeback.statements.totals import summarize
from vapi_chargeback.statements.xlsx import (
    cost_center_workbook_name,
    statement_workbook_name,
    write_cost_center_workbook,
    write_statement_workbook,
)

from support.statement_samples import (
    closed_statement,
    final_statement,
    restated_statement,
    sample_statement,
)


def _values(sheet: openpyxl.worksheet.worksheet.Worksheet) -> list[list[object]]:
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def _header_row(sheet: openpyxl.worksheet.worksheet.Worksheet) -> int:
    """The table header's row number: where the autofilter starts."""
    return int(sheet.auto_filter.ref.split(":")[0][1:])


def _table(sheet: openpyxl.worksheet.worksheet.Worksheet) -> list[list[object]]:
    """The rows from the table header on, below any title block."""
    return _values(sheet)[_header_row(sheet) - 1 :]


def _title_block(sheet: openpyxl.worksheet.worksheet.Worksheet) -> dict[object, object]:
    """The identity rows below the title, up to the first blank row (the key figures follow)."""
    rows = _values(sheet)[1:]
    end = next(index for index, row in enumerate(rows) if row[0] is None)
    return {row[0]: row[1] for row in rows[:end]}


def _key_figures(sheet: openpyxl.worksheet.worksheet.Worksheet) -> dict[object, list[object]]:
    """Label → the values beside it, from the Key figures row to the table."""
    rows = _values(sheet)[: _header_row(sheet) - 2]
    start = next(index for index, row in enumerate(rows) if row[0] == "Key figures")
    return {row[0]: [value for value in row[1:] if value is not None] for row in rows[start + 1 :]}


@pytest.fixture
def finance(statement: Statement, tmp_path: Path) -> openpyxl.Workbook:
    path = tmp_path / statement_workbook_name(statement.period)
    assert write_statement_workbook(statement, summarize(statement), path) == len(statement.lines)
    return openpyxl.load_workbook(path)


@pytest.fixture
def owner(statement: Statement, tmp_path: Path) -> openpyxl.Workbook:
    center = statement.cost_centers[0]
    lines = summarize(statement).lines_by_center[center.id]
    path = tmp_path / cost_center_workbook_name(center.id, statement.period)
    path.parent.mkdir()
    assert write_cost_center_workbook(statement, center, lines, path) == 2
    return openpyxl.load_workbook(path)


def test_finance_workbook_sheets(finance: openpyxl.Workbook) -> None:
    assert finance.sheetnames == [
        "Summary",
        "Detail",
        "Assistants",
        "Unallocated",
        "Reconciliation",
        "Cost by component",
        "Daily cost",
        "Variance",
        "About",
    ]
    for sheet in finance.worksheets[1:]:
        if sheet.title != "Variance":
            assert sheet.freeze_panes == "A2", sheet.title
            assert sheet.auto_filter.ref.startswith("A1:"), sheet.title
    summary = finance["Summary"]
    header = _header_row(summary)
    assert summary.freeze_panes == f"A{header + 1}", "the title block and the header stay in view"
    assert summary["A1"].style == "Statement Title"
    assert summary["A2"].style == "Statement Label"


def test_every_sheet_of_both_workbooks_has_one_header_style_with_titles(
    finance: openpyxl.Workbook, owner: openpyxl.Workbook
) -> None:
    """Query sheets included: every header cell in the Header style, no snake_case title."""
    for workbook in (finance, owner):
        for sheet in workbook.worksheets:
            header = [cell for cell in sheet[_header_row(sheet)] if cell.value is not None]
            assert header, sheet.title
            assert {cell.style for cell in header} == {"Header"}, sheet.title
            assert all("_" not in str(cell.value) for cell in header), sheet.title
            assert not any(str(cell.value)[0].islower() for cell in header), sheet.title


def test_draft_says_so_in_its_title_block_and_document_properties(
    finance: openpyxl.Workbook, owner: openpyxl.Workbook
) -> None:
    inputs = sample_statement().provenance
    assert inputs is not None
    assert finance["Summary"]["A1"].value == "Chargeback statement 2026-10"
    assert _title_block(finance["Summary"]) == {
        "Period": "2026-10: 2026-10-01 to 2026-10-31, Europe/Berlin time",
        "Status": "DRAFT: not approved, the figures may still change",
        "Version": 1,
        "Statement ID": "VAPI-2026-10-ORG-v1",
        "Inputs sha256": inputs.inputs_sha256,
    }
    assert _title_block(owner["Summary"]) == {
        "Period": "2026-10: 2026-10-01 to 2026-10-31, Europe/Berlin time",
        "Status": "DRAFT: not approved, the figures may still change",
        "Version": 1,
        "Statement ID": "VAPI-2026-10-sales-v1",
        "Inputs sha256": inputs.inputs_sha256,
    }
    assert owner["Summary"]["A1"].value == "Chargeback statement 2026-10: Sales"
    for workbook, statement_id in ((finance, "ORG"), (owner, "sales")):
        properties = workbook.properties
        assert f"(DRAFT v1, VAPI-2026-10-{statement_id}-v1)" in str(properties.title)
        assert str(properties.subject).endswith(", DRAFT")
        assert properties.keywords == f"DRAFT, VAPI-2026-10-{statement_id}-v1, chargeback, 2026-10"


def test_final_says_who_approved_it_when_and_nothing_says_draft(tmp_path: Path) -> None:
    statement = final_statement()
    path = tmp_path / "final.xlsx"
    write_statement_workbook(statement, summarize(statement), path)
    center = statement.cost_centers[1]
    owner_path = tmp_path / "support.xlsx"
    write_cost_center_workbook(
        statement, center, summarize(statement).lines_by_center[center.id], owner_path
    )

    for workbook_path, statement_id in ((path, "ORG"), (owner_path, "support")):
        workbook = openpyxl.load_workbook(workbook_path)
        block = _title_block(workbook["Summary"])
        assert {key: block[key] for key in list(block)[1:6]} == {
            "Status": "FINAL: approved and booked",
            "Version": 1,
            "Statement ID": f"VAPI-2026-10-{statement_id}-v1",
            "Approved by": "controller@example.com",
            "Approved at": "2026-11-03 10:15:12 UTC",
        }
        properties = workbook.properties
        text = f"{properties.title} {properties.subject} {properties.keywords}"
        assert "DRAFT" not in text and "FINAL" in text
        assert str(properties.created) == "2026-10-31 23:00:00", (
            "pinned to the period, not the approval"
        )
        assert "manual__" not in str(_values(workbook["About"])), "run ids stay in the manifest"


def test_a_restatement_names_the_version_it_replaces_and_why(tmp_path: Path) -> None:
    statement = restated_statement()
    path = tmp_path / "v2.xlsx"
    write_statement_workbook(statement, summarize(statement), path)

    block = _title_block(openpyxl.load_workbook(path)["Summary"])
    assert block["Version"] == 2
    assert block["Statement ID"] == "VAPI-2026-10-ORG-v2"
    assert block["Restated"] == (
        "replaces version 1: late-costed calls of 30 October (ticket FIN-42)"
    )


def test_summary_by_cost_center_with_totals_shares_and_unit_costs(
    finance: openpyxl.Workbook,
) -> None:
    summary = finance["Summary"]
    rows = _table(summary)
    header = _header_row(summary)

    assert rows[0] == [
        "Cost center ID", "Cost center", "Owner", "Calls", "Minutes", "Cost (USD)",
        "LLM (USD)", "STT (USD)", "TTS (USD)", "Other (USD)", "Shared (USD)", "% of total",
        "$ per call", "$ per minute", "$ per successful call",
    ]  # fmt: skip
    assert rows[1] == [
        "sales",
        "Sales",
        "sales-lead@example.com",
        120,
        300.5,
        107,
        40,
        10,
        20,
        30,
        7,
        0.586301,
        0.8333333333,
        0.3327787022,
        None,
    ]
    assert rows[2][:6] == ["support", "Support, 1st level", "support@example.com", 30, 61.33, 45]
    assert rows[3][:6] == [UNALLOCATED, "Unallocated", None, 13, 30, 30.5]
    assert rows[4][:6] == ["Total", None, None, 163, 391.83, 182.5]
    assert rows[4][11] == 1
    assert len(rows) == 5, "the allocated shares are key figures above the table"
    assert summary.auto_filter.ref == f"A{header}:O{header + 3}"
    assert summary[f"F{header + 1}"].number_format == "#,##0.00"
    assert summary[f"D{header + 1}"].number_format == "#,##0"
    assert summary[f"L{header + 1}"].number_format == "0.00%"
    assert summary[f"N{header + 1}"].number_format == "#,##0.0000"
    assert summary[f"F{header + 4}"].font.b


def test_summary_other_leaves_out_the_pools_so_a_row_adds_up_to_its_cost(
    finance: openpyxl.Workbook,
) -> None:
    """Issue 18: Other counted the pools a second time beside Shared."""
    rows = _table(finance["Summary"])
    header = rows[0]
    other, shared, cost = (
        header.index(name) for name in ("Other (USD)", "Shared (USD)", "Cost (USD)")
    )
    llm, tts = header.index("LLM (USD)"), header.index("TTS (USD)")

    by_center = {row[0]: row for row in rows[1:]}
    assert (by_center["sales"][other], by_center["sales"][shared]) == (30, 7)
    assert (by_center["Total"][other], by_center["Total"][shared]) == (61.5, 12)
    for row in rows[1:]:
        assert sum(row[llm : tts + 1]) + row[other] + row[shared] == pytest.approx(row[cost])


def test_summary_key_figures_stand_alone(
    finance: openpyxl.Workbook, owner: openpyxl.Workbook
) -> None:
    figures = _key_figures(finance["Summary"])

    assert figures["Total (USD)"] == [182.5]
    assert figures["Usage (USD)"][0] == 170.5
    assert figures["% allocated (of usage)"][0] == 0.821114
    assert figures["% allocated (incl. shared pools)"][0] == 0.832877
    assert figures["Change vs previous month"] == ["no previous month published"]
    assert figures["$ per minute"] == [0.4351376873]
    assert figures["$ per call"] == [1.0460122699]
    assert figures["$ per successful call"] == ["successful calls not known"]
    summary = finance["Summary"]
    labels = {row[0].value: row[1] for row in summary.iter_rows(max_row=_header_row(summary))}
    assert labels["% allocated (of usage)"].number_format == "0.00%"
    assert labels["$ per minute"].number_format == "#,##0.0000"
    owned = _key_figures(owner["Summary"])
    assert owned["Total (USD)"] == [107]
    assert owned["Shared pools (USD)"] == [7]
    assert "% allocated (of usage)" not in owned


def test_summary_change_vs_the_previous_month(tmp_path: Path) -> None:
    previous = PreviousMonth("2026-09", sample_statement().lines[:2])
    statement = sample_statement(previous=previous)

    figures = _key_figures(_finance(statement, tmp_path)["Summary"])

    assert figures["Change vs 2026-09 (USD)"] == [75.5, 0.705607]  # 182.50 − 107.00


def test_detail_lists_every_line_with_money_as_numbers(
    statement: Statement, finance: openpyxl.Workbook
) -> None:
    detail = finance["Detail"]
    rows = _values(detail)

    assert len(rows) == 1 + len(statement.lines) + 1
    assert rows[0][:7] == [
        "Cost center ID", "Cost center", "Team", "Assistant ID", "Assistant", "Allocation",
        "Charged by",
    ]  # fmt: skip
    assert rows[1] == [
        "sales",
        "Sales",
        "emea",
        "asst-1",
        None,
        "direct",
        None,
        120,
        300.5,
        100,
        40,
        10,
        20,
        30,
    ]
    assert rows[2][5:] == ["shared:platform", None, 0, 0, 7, None, None, None, None], (
        "a pool's line shows its cost only: no Other"
    )
    assert rows[3][2] == "=cmd"
    assert detail["C4"].data_type == "s"
    assert detail["C4"].quotePrefix
    assert detail["I4"].value == 61.33
    assert all(
        cell.data_type == "n" and cell.number_format == "#,##0.00" for cell in detail["J"][1:]
    )
    assert rows[-1][0] == "Total"
    assert rows[-1][9] == 182.5
    assert rows[-1][-1] == 61.5, "Other without the pools"
    assert detail.auto_filter.ref == f"A1:N{len(statement.lines) + 1}"


def test_unallocated_lines_carry_their_reason_explained(finance: openpyxl.Workbook) -> None:
    rows = _values(finance["Unallocated"])

    assert [row[0] for row in rows[1:3]] == ["no-assistant", "unmapped-assistant"]
    assert "all-zero id" in str(rows[1][1])
    assert "no team mapping" in str(rows[2][1])
    assert rows[2][2] == "asst-9"
    assert rows[3][0] == "Total"
    assert rows[3][6] == 30.5


def test_reconciliation_sheet(finance: openpyxl.Workbook) -> None:
    rows = dict((row[0], row[1]) for row in _values(finance["Reconciliation"])[1:])

    assert rows == {
        "Org total (independent ungrouped query)": 170.5,
        "Shared costs": 12,
        "Corrections of earlier months": 0,
        "Invoice adjustments": 0,
        "Expected total (org + shared + corrections + adjustments)": 182.5,
        "Statement lines total": 182.5,
        "Difference (lines − expected)": 0,
        "Result": "OK",
        "Invoice": "not tied to an invoice",
    }


def test_about_sheet_carries_provenance(finance: openpyxl.Workbook, statement: Statement) -> None:
    about = dict((row[0], row[1]) for row in _values(finance["About"])[1:])

    assert about["Period"] == "2026-10"
    assert about["Time zone"] == "Europe/Berlin"
    assert about["Period start"] == "2026-10-01T00:00:00+02:00"
    assert about["Period end (exclusive)"] == "2026-11-01T00:00:00+01:00"
    assert about["Currency"] == "USD"
    assert "Run ID" not in about, (
        "the run id lives in manifest.json only: reruns stay byte-identical"
    )
    assert (
        about["Inputs sha256"] == statement.provenance.inputs_sha256
        if statement.provenance
        else None
    )
    assert about["Config sha256"] == "a" * 64
    assert about["Mapping sha256"] == "b" * 64
    assert about["Response batch-0.json sha256"] == "c" * 64
    assert about["Generated by"] == "vapi-chargeback 0.1.0"


def test_document_properties_are_pinned_to_the_period(finance: openpyxl.Workbook) -> None:
    assert finance.properties.creator == "vapi-chargeback"
    assert str(finance.properties.created) == "2026-10-31 23:00:00"
    assert finance.properties.modified == finance.properties.created


def test_owner_workbook_sheets_include_one_per_breakdown(owner: openpyxl.Workbook) -> None:
    assert owner.sheetnames == [
        "Summary",
        "Detail",
        "Shared costs",
        "Daily cost",
        "Top assistants",
        "Variance",
        "Cost by assistant day all",
        "Summary (2)",
        "About",
    ]
    assert all(len(name) <= 31 for name in owner.sheetnames)


def test_owner_workbook_contents(owner: openpyxl.Workbook) -> None:
    summary = _table(owner["Summary"])
    assert summary[1] == [
        "emea", "direct", None, 120, 300.5, 100, 40, 10, 20, 30, 0.8333333333, 0.3327787022, None,
    ]  # fmt: skip
    assert summary[2] == [None, "shared:platform", None, 0, 0, 7, *[None] * 7]
    assert summary[3][:10] == ["Total", None, None, 120, 300.5, 107, 40, 10, 20, 30]
    assert _values(owner["Detail"])[1] == [
        "emea", "asst-1", None, None, 120, 300.5, 100, 40, 10, 20, 30, None,
        0.8333333333, 0.3327787022, None,
    ]  # fmt: skip
    assert _values(owner["Shared costs"])[1] == ["platform", None, None, None, 0, 0, 7]
    by_day = owner["Cost by assistant day all"]
    assert _values(by_day) == [
        ["Day", "Assistant ID", "Assistant", "Cost (USD)"],
        [datetime(2026, 10, 1), "asst-1", None, 60],
        [datetime(2026, 10, 2), "asst-1", None, 40],
    ]
    assert by_day["A2"].number_format == "yyyy-mm-dd"
    assert by_day["D2"].number_format == "#,##0.00"
    reasons = owner["Summary (2)"]
    assert reasons["A1"].value == "Ended reason"
    assert reasons["B2"].number_format == "#,##0"
    assert reasons["A3"].value == "-1"
    assert reasons["A3"].data_type == "s"
    about = dict((row[0], row[1]) for row in _values(owner["About"])[1:])
    assert about["Owner"] == "sales-lead@example.com"


def test_same_statement_gives_byte_identical_workbooks(
    statement: Statement, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    totals = summarize(statement)
    first, second = tmp_path / "first.xlsx", tmp_path / "second.xlsx"
    write_statement_workbook(statement, totals, first)
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    write_statement_workbook(statement, totals, second)

    assert first.read_bytes() == second.read_bytes()


def test_statement_without_reconciliation_or_provenance_says_so(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    statement = make_statement(reconciliation=None, provenance=None)
    path = tmp_path / "x.xlsx"
    write_statement_workbook(statement, summarize(statement), path)
    workbook = openpyxl.load_workbook(path)

    assert _values(workbook["Reconciliation"])[1] == [
        "Reconciliation",
        "not performed for this statement",
    ]
    assert ["Provenance", "not recorded for this statement"] in _values(workbook["About"])


def test_large_amounts_keep_their_cents(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    big = replace(make_statement().lines[0], cost_usd=Decimal("9999999999999.99"))
    statement = make_statement(lines=[big], reconciliation=None)
    path = tmp_path / "x.xlsx"
    write_statement_workbook(statement, summarize(statement), path)

    assert openpyxl.load_workbook(path)["Detail"]["J2"].value == 9999999999999.99


def test_shared_costs_sheet_has_no_note_column_when_no_pool_has_a_note(
    owner: openpyxl.Workbook,
) -> None:
    header = _values(owner["Shared costs"])[0]

    assert header == ["Pool", "Team", "Assistant ID", "Assistant", "Calls", "Minutes", "Cost (USD)"]


def _owner_workbook(statement: Statement, tmp_path: Path) -> openpyxl.Workbook:
    center = statement.cost_centers[0]
    path = tmp_path / "owner.xlsx"
    lines = summarize(statement).lines_by_center[center.id]
    write_cost_center_workbook(statement, center, lines, path)
    return openpyxl.load_workbook(path)


def test_a_pool_note_sits_on_that_pools_rows_and_in_about(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    note = "Proportional to minutes, but minutes was zero for every cost center this month."
    base = make_statement()
    licences = replace(base.lines[1], allocation="shared:licences", cost_usd=Decimal("2.00"))
    statement = make_statement(
        lines=[*base.lines[:2], licences, *base.lines[2:]],
        pool_notes={"platform": note},
    )

    owner = _owner_workbook(statement, tmp_path)

    rows = _values(owner["Shared costs"])
    assert rows[0][-1] == "Note"
    assert [(row[0], row[6], row[-1]) for row in rows[1:]] == [
        ("platform", 7, note),
        ("licences", 2, None),
        ("Total", 9, None),
    ]
    assert ["Shared pool platform", note] in _values(owner["About"])
    finance = tmp_path / "finance.xlsx"
    write_statement_workbook(statement, summarize(statement), finance)
    assert ["Shared pool platform", note] in _values(openpyxl.load_workbook(finance)["About"])


def test_a_note_of_a_pool_the_owner_has_no_share_of_adds_no_column(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    statement = make_statement(pool_notes={"elsewhere": "split evenly"})

    owner = _owner_workbook(statement, tmp_path)

    assert _values(owner["Shared costs"])[0][-1] == "Cost (USD)"


def _finance(statement: Statement, tmp_path: Path) -> openpyxl.Workbook:
    path = tmp_path / "finance.xlsx"
    write_statement_workbook(statement, summarize(statement), path)
    return openpyxl.load_workbook(path)


def test_summary_shows_corrections_and_the_invoice_adjustment_apart(tmp_path: Path) -> None:
    summary = _table(_finance(closed_statement(), tmp_path)["Summary"])
    header = summary[0]

    assert header[-7:-3] == [
        "Shared (USD)",
        "Corrections (USD)",
        "Invoice adjustment (USD)",
        "% of total",
    ]
    cost, corrections, adjustment = (
        header.index(name)
        for name in ("Cost (USD)", "Corrections (USD)", "Invoice adjustment (USD)")
    )
    by_center = {row[0]: (row[cost], row[corrections], row[adjustment]) for row in summary[1:]}
    assert by_center["sales"] == (108.06, -1.2, 2.26)
    assert by_center["support"] == (45.91, 0, 0.91)
    assert by_center[UNALLOCATED] == (31.3, 0.8, 0)
    assert by_center["Total"] == (185.27, -0.4, 3.17)


def test_detail_names_what_each_correction_corrects(tmp_path: Path) -> None:
    detail = _values(_finance(closed_statement(), tmp_path)["Detail"])

    assert detail[0][-1] == "Corrects"
    corrects = {(row[0], row[5]): row[-1] for row in detail[1:-1]}
    assert corrects[("sales", "correction:2026-09")] == "VAPI-2026-09-sales-v1"
    assert corrects[(UNALLOCATED, "correction:2026-09")] == "VAPI-2026-09-ORG-v1"
    assert corrects[("sales", "direct")] is None
    negative = next(row for row in detail if row[5] == "correction:2026-09")
    assert negative[7:10] == [-2, -3.25, -1.2], "calls, minutes and cost are deltas"
    without = [line for line in closed_statement().lines if not line.is_correction]
    plain = _finance(closed_statement(lines=without, reconciliation=None), tmp_path)
    assert "Corrects" not in _values(plain["Detail"])[0], "only a month with corrections"


def test_unallocated_sheet_explains_a_correction_of_unallocated_lines(tmp_path: Path) -> None:
    rows = _values(_finance(closed_statement(), tmp_path)["Unallocated"])

    assert rows[3][:3] == [
        "correction:2026-09",
        "Correction of 2026-09's unallocated lines (corrects VAPI-2026-09-ORG-v1).",
        "asst-9",
    ]


def test_reconciliation_ties_the_lines_to_the_invoice_to_the_cent(tmp_path: Path) -> None:
    rows = _values(_finance(closed_statement(), tmp_path)["Reconciliation"])[1:]
    items = {row[0]: row[1] for row in rows}

    assert items["Corrections of earlier months"] == -0.4
    assert items["Invoice adjustments"] == 3.17
    assert items["Expected total (org + shared + corrections + adjustments)"] == 185.27
    assert items["Result"] == "OK"
    assert items["Invoice"] == "INV-2026-10"
    assert items["Invoice amount"] == 173.67
    assert items["Lines the invoice covers (lines − shared − corrections)"] == 173.67
    assert items["Difference (invoice − lines it covers)"] == 0
    assert items["Invoice tie-out"] == "TIED: the lines tie to invoice INV-2026-10 to the cent"
    assert "spread as adjustment:invoice over 2 cost centers" in str(items["Tie-out"])


def test_reconciliation_says_when_the_lines_do_not_tie_to_the_invoice(tmp_path: Path) -> None:
    """A tie-out with no cost center to carry the difference leaves it open; the sheet says by how much."""
    closed = closed_statement()
    lines = [line for line in closed.lines if not line.is_adjustment]
    assert closed.reconciliation is not None and closed.invoice is not None
    statement = closed_statement(
        lines=lines,
        invoice=replace(closed.invoice, approvable=False),
        reconciliation=replace(
            closed.reconciliation,
            lines_total_usd=Decimal("182.10"),
            adjustments_usd=Decimal("0.00"),
        ),
    )

    items = {row[0]: row[1] for row in _values(_finance(statement, tmp_path)["Reconciliation"])}

    assert items["Difference (invoice − lines it covers)"] == 3.17
    assert (
        items["Invoice tie-out"] == "NOT TIED: the lines differ from invoice INV-2026-10 by +3.17"
    )


def test_owner_workbook_lists_corrections_and_adjustment_on_their_own_sheet(
    tmp_path: Path,
) -> None:
    statement = closed_statement()
    center = statement.cost_centers[0]
    path = tmp_path / "sales.xlsx"
    lines = summarize(statement).lines_by_center[center.id]

    assert write_cost_center_workbook(statement, center, lines, path) == 4
    owner = openpyxl.load_workbook(path)

    assert owner.sheetnames[:4] == [
        "Summary",
        "Detail",
        "Shared costs",
        "Corrections and adjustments",
    ]
    assert [row[:2] for row in _values(owner["Detail"])[1:]] == [
        ["emea", "asst-1"],
        ["Total", None],
    ]
    sheet = _values(owner["Corrections and adjustments"])
    assert sheet[0][:5] == ["Item", "Corrects", "Team", "Assistant ID", "Assistant"]
    assert [row[:8] for row in sheet[1:]] == [
        ["Correction of 2026-09", "VAPI-2026-09-sales-v1", "emea", "asst-1", None, -2, -3.25, -1.2],
        ["Invoice adjustment", None, None, None, None, 0, 0, 2.26],
        ["Total", None, None, None, None, -2, -3.25, 1.06],
    ]
    summary = {(row[0], row[1]): row[5] for row in _table(owner["Summary"])[1:]}
    assert summary[("emea", "correction:2026-09")] == -1.2
    assert summary[(None, "adjustment:invoice")] == 2.26
    assert summary[("Total", None)] == 108.06


def test_changes_sheet_lists_exactly_the_changed_lines(tmp_path: Path) -> None:
    statement = restated_statement()
    finance = _finance(statement, tmp_path)

    assert finance.sheetnames[-2:] == ["Changes vs v1", "About"]
    rows = _values(finance["Changes vs v1"])
    header = rows[0]
    assert header[:10] == [
        "Change", "Cost center ID", "Team", "Assistant ID", "Assistant", "Allocation",
        "Calls v1", "Calls v2", "Minutes v1", "Minutes v2",
    ]  # fmt: skip
    assert header[-1] == "Cost change (USD)"
    cost = header.index("Cost (USD) v1")
    assert [(row[0], row[1], row[5], row[cost], row[cost + 1], row[-1]) for row in rows[1:]] == [
        ("changed", "sales", "direct", 100, 101, 1),
        ("removed", "support", "shared:platform", 5, None, -5),
        ("added", UNALLOCATED, "unallocated:unmapped-assistant", None, 1, 1),
        ("Total", None, None, 105, 102, -3),
    ]
    llm = header.index("LLM (USD) v1")
    assert rows[1][llm : llm + 2] == [40, 41]
    assert rows[-1][6:8] == [120, 122], "calls totals of each version's listed lines"

    center = statement.cost_centers[1]
    owner_path = tmp_path / "support.xlsx"
    write_cost_center_workbook(
        statement, center, summarize(statement).lines_by_center[center.id], owner_path
    )
    owner = _values(openpyxl.load_workbook(owner_path)["Changes vs v1"])
    assert [(row[0], row[1], row[5]) for row in owner[1:]] == [
        ("removed", "support", "shared:platform"),
        ("Total", None, None),
    ], "an owner sees the changes of their own lines only"


def test_statements_without_a_restatement_have_no_changes_sheet(
    finance: openpyxl.Workbook, owner: openpyxl.Workbook
) -> None:
    assert not any(name.startswith("Changes") for name in finance.sheetnames + owner.sheetnames)


def test_final_and_closed_workbooks_are_byte_identical_on_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index, statement in enumerate(
        (final_statement(), closed_statement(), restated_statement())
    ):
        totals = summarize(statement)
        first, second = tmp_path / f"{index}-a.xlsx", tmp_path / f"{index}-b.xlsx"
        write_statement_workbook(statement, totals, first)
        monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
        write_statement_workbook(statement, totals, second)
        monkeypatch.undo()
        assert first.read_bytes() == second.read_bytes(), index
