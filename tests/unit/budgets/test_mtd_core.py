"""The month cut at a local midnight, pools prorated, and the figures read off a statement."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.budgets.mtd import MtdReport
from vapi_chargeback.budgets.outputs import BUDGET_COLUMNS, publish_mtd_files, read_mtd, render_csv
from vapi_chargeback.budgets.report import build_report
from vapi_chargeback.budgets.window import DayNotOverError, mtd_window, prorated_config
from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.statements.csv import header

from support.core_fixtures import base_config
from support.statement_samples import sample_statement

LATER = datetime(2027, 1, 1, tzinfo=UTC)


def config(**changes: object) -> ChargebackConfig:
    document = base_config()
    document["shared_costs"] = [
        {"name": "platform", "amount": Decimal("310.00"), "method": "even"},
        {"name": "tiny", "amount": Decimal("0.01"), "method": "even"},
    ]
    document["budgets"] = {"sales": {"amount_usd": Decimal("150.00")}}
    document.update(changes)
    return ChargebackConfig.model_validate(document)


def test_the_run_of_a_day_covers_the_days_of_its_month_before_it() -> None:
    window = mtd_window(date(2026, 10, 12), "Europe/Berlin", now=LATER)
    assert window.period.label == "2026-10"
    assert window.period.start == window.month.start
    assert window.as_of == datetime(2026, 10, 12, tzinfo=UTC) - timedelta(hours=2)
    assert (window.through_day, window.elapsed_days, window.total_days) == (
        date(2026, 10, 11),
        11,
        31,
    )
    assert window.period.last_day == date(2026, 10, 11)


def test_the_run_on_the_first_covers_the_whole_previous_month_across_dst() -> None:
    # Berlin leaves summer time on 25 October 2026: the month is 31 days and an hour.
    window = mtd_window(date(2026, 11, 1), "Europe/Berlin", now=LATER)
    assert window.period == window.month
    assert window.elapsed_days == window.total_days == 31
    assert window.period.end - window.period.start == timedelta(days=31, hours=1)


def test_a_day_that_has_not_ended_in_the_org_zone_is_refused() -> None:
    # 23:30 UTC on 11 October is 01:30 on the 12th in Berlin: the 11th is over there.
    assert mtd_window(
        date(2026, 10, 12), "Europe/Berlin", now=datetime(2026, 10, 11, 22, 30, tzinfo=UTC)
    )
    with pytest.raises(DayNotOverError, match="through 2026-10-11"):
        mtd_window(
            date(2026, 10, 12),
            "America/Los_Angeles",
            now=datetime(2026, 10, 11, 23, 30, tzinfo=UTC),
        )


def test_fixed_pools_are_prorated_by_elapsed_days_to_the_cent_and_said_so() -> None:
    window = mtd_window(date(2026, 10, 12), "Europe/Berlin", now=LATER)
    cut, note = prorated_config(config(), window)
    assert [pool.amount for pool in cut.shared_costs] == [Decimal("110.00"), Decimal("0.00")]
    assert "11 of 31" in note and "platform 110.00 of 310.00" in note
    whole, _ = prorated_config(config(), mtd_window(date(2026, 11, 1), "Europe/Berlin", now=LATER))
    assert [pool.amount for pool in whole.shared_costs] == [Decimal("310.00"), Decimal("0.01")]
    assert prorated_config(config(shared_costs=[]), window) == (
        config(shared_costs=[]),
        "No fixed shared pools.",
    )


@settings(max_examples=100, deadline=None)
@given(
    amount=st.integers(min_value=0, max_value=10**9).map(lambda c: Decimal(c).scaleb(-2)),
    day=st.integers(min_value=2, max_value=32),
)
def test_prorated_amounts_grow_with_the_days_and_end_at_the_full_amount(
    amount: Decimal, day: int
) -> None:
    run_day = date(2026, 10, 1) + timedelta(days=day - 1)
    pools = [{"name": "p", "amount": amount, "method": "even"}]
    window = mtd_window(run_day, "Europe/Berlin", now=LATER)
    cut, _ = prorated_config(config(shared_costs=pools), window)
    before, _ = (
        prorated_config(
            config(shared_costs=pools),
            mtd_window(run_day - timedelta(days=1), "Europe/Berlin", now=LATER),
        )
        if day > 2
        else (None, "")
    )
    prorated = cut.shared_costs[0].amount
    assert prorated is not None and Decimal(0) <= prorated <= amount
    if before is not None:
        assert before.shared_costs[0].amount <= prorated
    if window.elapsed_days == window.total_days:
        assert prorated == amount


def report_of(statement_changes: dict[str, object] | None = None) -> tuple[MtdReport, bytes]:
    window = mtd_window(date(2026, 10, 5), "Europe/Berlin", now=LATER)
    statement = sample_statement(
        period_end=window.as_of,
        daily_cost_usd={
            "sales": [(date(2026, 10, 1), Decimal("60.00")), (date(2026, 10, 3), Decimal("40.00"))]
        },
        **(statement_changes or {}),
    )
    assert statement.reconciliation is not None
    report = build_report(
        statement,
        config(),
        window,
        statement.reconciliation,
        pools_note="note",
        run_id="run-1",
        computed_at=LATER,
    )
    return report, render_csv(statement, report)


def test_the_figures_are_the_statement_lines_summed_with_every_day_present() -> None:
    report, _ = report_of()
    sales, support = report.cost_centers
    assert (sales.spent_usd, sales.direct_usd, sales.shared_usd) == (
        Decimal("107.00"),
        Decimal("100.00"),
        Decimal("7.00"),
    )
    assert sales.daily_usd == (
        (date(2026, 10, 1), Decimal("60.00")),
        (date(2026, 10, 2), Decimal("0.00")),
        (date(2026, 10, 3), Decimal("40.00")),
        (date(2026, 10, 4), Decimal("0.00")),
    )
    assert sum(cost for _, cost in sales.daily_usd) == sales.direct_usd
    assert support.daily_usd[0] == (date(2026, 10, 1), Decimal("0.00"))
    assert report.unallocated_usd == Decimal("30.50")
    assert report.total_usd == sum(
        (c.spent_usd for c in report.cost_centers), report.unallocated_usd
    )
    # 107.00 of 150.00: 71.33 %, past 50 but not 80; 4 days in, the forecast is far above.
    assert sales.used_pct == Decimal("71.33")
    assert sales.thresholds_crossed == (Decimal(50),)
    assert sales.forecast_usd > sales.budget_usd  # type: ignore[operator]
    assert sales.forecast_alert
    assert support.budget is None and support.used_pct is None and not support.forecast_alert
    assert [a.assistant_id for a in sales.top_assistants] == ["asst-1"]


def test_the_json_round_trips_every_figure() -> None:
    report, _ = report_of()
    again = MtdReport.from_json(report.to_json())
    assert again == report
    assert again.to_json() == report.to_json()


def test_the_csv_is_the_statement_csv_plus_budget_columns() -> None:
    report, raw = report_of()
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert list(rows[0]) == [*header(["llm", "stt", "tts"]), *BUDGET_COLUMNS]
    sales = [row for row in rows if row["cost_center_id"] == "sales"]
    assert {(r["budget_usd"], r["budget_used_pct"], r["forecast_usd"]) for r in sales} == {
        ("150.00", "71.33", str(report.cost_centers[0].forecast_usd))
    }
    unallocated = [row for row in rows if row["cost_center_id"] == "UNALLOCATED"]
    assert {(r["budget_usd"], r["forecast_usd"]) for r in unallocated} == {("", "")}
    assert sum(Decimal(row["cost_usd"]) for row in rows) == report.total_usd


def test_the_files_are_published_whole_and_read_back(tmp_path: Path) -> None:
    report, raw = report_of()
    files = publish_mtd_files(tmp_path.as_uri(), report, raw)
    assert list(files) == ["_mtd/2026-10/mtd-2026-10-04.csv", "_mtd/2026-10/mtd-2026-10-04.json"]
    assert (tmp_path / "_mtd/2026-10/mtd-2026-10-04.csv").read_bytes() == raw
    assert read_mtd(tmp_path, date(2026, 10, 4)) == report
    assert read_mtd(tmp_path, date(2026, 10, 3)) is None
    # A rerun replaces both; no temporary file is left beside them.
    later = replace(report, run_id="run-2")
    publish_mtd_files(tmp_path, later, raw)
    assert read_mtd(tmp_path, date(2026, 10, 4)) == later
    assert sorted(p.name for p in (tmp_path / "_mtd/2026-10").iterdir()) == [
        "mtd-2026-10-04.csv",
        "mtd-2026-10-04.json",
    ]


def test_the_files_go_to_object_storage_too() -> None:
    from upath import UPath

    root = UPath("memory://mtd-test/output")
    report, raw = report_of()
    publish_mtd_files("memory://mtd-test/output", report, raw)
    assert (root / report.relative_csv).read_bytes() == raw
    assert read_mtd("memory://mtd-test/output", report.through_day) == report
    assert read_mtd(root, date(2026, 10, 1)) is None


def test_a_run_day_past_the_org_today_is_today_when_derived_and_refused_when_asked(
    tmp_path: Path,
) -> None:
    from vapi_chargeback.budgets.run import MtdSettings, plan_mtd

    # 20:00 on 12 November in Los Angeles is already the 13th in UTC; the org is in Berlin
    # here, where it is 05:00 on the 13th: the 13th has begun, the 14th has not.
    now = datetime(2026, 11, 13, 4, tzinfo=UTC)
    config = Path(__file__).resolve().parents[3] / "include" / "config" / "chargeback.yaml"

    def settings(day: date, clamp: bool) -> MtdSettings:
        return MtdSettings(
            config_path=str(config),
            output_url=tmp_path.as_uri(),
            default_output_url=tmp_path.as_uri(),
            run_day=day,
            clamp_to_today=clamp,
            run_id=f"r-{clamp}",
        )

    run = plan_mtd(settings(date(2026, 11, 14), True), now=now)
    assert (run.through_day, run.elapsed_days, run.period_end) == (
        date(2026, 11, 12),
        12,
        datetime(2026, 11, 13, tzinfo=UTC) - timedelta(hours=1),
    )
    with pytest.raises(DayNotOverError):
        plan_mtd(settings(date(2026, 11, 14), False), now=now)
