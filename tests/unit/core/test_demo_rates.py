"""The demo's EUR rates: the shipped file is ECB-shaped, covers every month the tests run, and
``make demo`` still has a rate in any later month without touching the shipped files."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from vapi_chargeback import demo
from vapi_chargeback.config import load_config
from vapi_chargeback.demo_rates import (
    config_with_rates_through,
    demo_rates,
    is_ecb_business_day,
    rates_csv,
)
from vapi_chargeback.fxrates import FxRatesError, load_fx_rates, month_rate
from vapi_chargeback.period import StatementPeriod

from support.core_fixtures import DEMO_CONFIG

SHIPPED_RATES = DEMO_CONFIG.with_name("fx_rates.csv")


def test_the_shipped_rates_are_the_generators_ecb_shaped_eur_rates() -> None:
    rates = load_fx_rates(SHIPPED_RATES).by_currency
    days = sorted(rates["EUR"])

    assert list(rates) == ["EUR"]
    assert SHIPPED_RATES.read_text() == "date,currency,rate\n" + rates_csv(
        demo_rates(date(2025, 1, 1), days[-1])
    )
    assert days[-1] == date(2026, 11, 30)
    assert all(day.weekday() < 5 for day in days)
    for holiday in (date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 1)):
        assert holiday not in days and not is_ecb_business_day(holiday)
    assert all(Decimal("0.84") < rate < Decimal("0.96") for rate in rates["EUR"].values())


def test_the_demo_config_reports_in_eur_for_every_month_the_tests_run() -> None:
    config = load_config(DEMO_CONFIG)

    assert (config.reporting_currency, config.fx.rule, config.fx.max_age_days) == (
        "EUR",
        "month_end",
        7,
    )
    for month in ("2025-01", "2025-12", "2026-04", "2026-08", "2026-10", "2026-11"):
        period = StatementPeriod.for_month(month, config.timezone)
        fx = month_rate("EUR", config.fx, DEMO_CONFIG, period)
        assert fx is not None and (period.last_day - fx.rate_date).days <= 3, month


def test_a_month_after_the_shipped_rates_is_refused_by_the_shipped_config() -> None:
    config = load_config(DEMO_CONFIG)
    period = StatementPeriod.for_month("2027-01", config.timezone)

    with pytest.raises(FxRatesError, match="add the rates up to 2027-01-31"):
        month_rate("EUR", config.fx, DEMO_CONFIG, period)


def test_the_demo_runs_the_shipped_config_while_its_rates_reach_the_month(tmp_path: Path) -> None:
    assert config_with_rates_through(DEMO_CONFIG, tmp_path, date(2026, 11, 30)) == DEMO_CONFIG
    assert list(tmp_path.iterdir()) == []


def test_a_later_demo_month_gets_a_copy_with_rates_added(tmp_path: Path) -> None:
    shipped = SHIPPED_RATES.read_bytes()

    copy = config_with_rates_through(DEMO_CONFIG, tmp_path / "config", date(2027, 2, 28))

    assert copy == tmp_path / "config" / "chargeback.yaml"
    assert copy.read_bytes() == DEMO_CONFIG.read_bytes()
    assert (copy.parent / "assistant_teams.csv").read_bytes() == DEMO_CONFIG.with_name(
        "assistant_teams.csv"
    ).read_bytes()
    assert SHIPPED_RATES.read_bytes() == shipped
    extended = (copy.parent / "fx_rates.csv").read_bytes()
    assert extended.startswith(shipped)
    assert extended[len(shipped) :].decode() == rates_csv(
        demo_rates(date(2026, 12, 1), date(2027, 2, 28))
    )
    config = load_config(copy)
    for month in ("2026-12", "2027-01", "2027-02"):
        fx = month_rate("EUR", config.fx, copy, StatementPeriod.for_month(month, config.timezone))
        assert fx is not None, month
    assert fx.rate_date == date(2027, 2, 26)  # Friday: the 27th and 28th are a weekend


def test_demo_rates_are_deterministic_and_move_like_a_currency() -> None:
    rates = demo_rates(date(2026, 1, 1), date(2026, 12, 31))

    assert rates == demo_rates(date(2026, 1, 1), date(2026, 12, 31))
    steps = [abs(b - a) for (_, a), (_, b) in pairwise(rates)]
    assert max(steps) <= Decimal("0.0075")
    assert all(rate == rate.quantize(Decimal("0.0001")) for _, rate in rates)
    # 261 weekdays less New Year, Good Friday, Easter Monday, 1 May and Christmas (Boxing
    # Day 2026 is a Saturday).
    assert len(rates) == 256
    days = {day for day, _ in rates}
    assert date(2026, 12, 24) in days and date(2026, 12, 25) not in days


def test_make_demo_prints_the_eur_total_beside_the_usd_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = {
        "period": "2026-10",
        "timezone": "Europe/Berlin",
        "status": "final",
        "version": 1,
        "statement_ids": {"org": "VAPI-2026-10-ORG-v1"},
        "totals": {
            "cost_usd": "1234.56",
            "cost_by_cost_center_usd": {"sales": "1000.00", "UNALLOCATED": "234.56"},
        },
        "fx": {
            "currency": "EUR",
            "rate": "0.9007",
            "rate_date": "2026-10-30",
            "rule": "month_end",
            "source": "fx_rates.csv sha256:ab",
            "minor_units": 2,
            "total": "1111.97",
            "cost_by_cost_center": {"sales": "900.70", "UNALLOCATED": "211.27"},
        },
        "reconciliation": {
            "ok": True,
            "org_total_usd": "1234.56",
            "shared_total_usd": "0.00",
            "lines_total_usd": "1234.56",
        },
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    demo._summary(tmp_path)

    out = capsys.readouterr().out
    assert "cost USD      cost EUR" in out
    assert "  total                            1,234.56      1,111.97\n" in out
    assert "  sales                            1,000.00        900.70\n" in out
    assert "at 1 USD = 0.9007 EUR (month_end, 2026-10-30, fx_rates.csv sha256:ab)" in out
