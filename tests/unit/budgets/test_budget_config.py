"""``budgets:`` and ``daily:`` in chargeback.yaml: defaults, and bad input named by file,
line and field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback.budgets.settings import Budget
from vapi_chargeback.config import ConfigError, load_config

from support.core_fixtures import base_config, dump_yaml

TEXT_TAIL = """\
daily:
  time: "06:30"
budgets:
  sales:
    amount_usd: 1000.00
  support:
    amount_usd: 250
    thresholds_pct: [80, 100, 150]
    forecast_alert_pct: null
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "assistant_teams.csv").write_text("assistant_id,team,cost_center_id\n")
    path = tmp_path / "chargeback.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def base_text() -> str:
    return dump_yaml(base_config())


def test_budgets_and_daily_time_load_with_their_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base_text() + TEXT_TAIL))
    assert config.daily.time == "06:30" and config.daily.local_time.hour == 6
    sales, support = config.budgets["sales"], config.budgets["support"]
    assert sales.amount_usd == Decimal("1000.00")
    assert sales.thresholds_pct == (Decimal(50), Decimal(80), Decimal(100))
    assert sales.forecast_alert_pct == Decimal(100)
    assert support.thresholds_pct == (Decimal(80), Decimal(100), Decimal(150))
    assert support.forecast_alert_pct is None
    # Without the blocks: no budgets, the run at 07:00.
    plain = load_config(write(tmp_path, base_text()))
    assert plain.budgets == {} and plain.daily.time == "07:00"


@pytest.mark.parametrize(
    ("tail", "line", "field", "words"),
    [
        (
            "budgets:\n  sales:\n    amount_usd: -10.00\n",
            3,
            "budgets.sales.amount_usd",
            "not above 0",
        ),
        (
            "budgets:\n  sales:\n    amount_usd: 10\n    thresholds_pct: [50, 50, 100]\n",
            4,
            "budgets.sales.thresholds_pct",
            "must increase strictly",
        ),
        (
            "budgets:\n  sales:\n    amount_usd: 10\n    thresholds_pct: [100, 1001]\n",
            4,
            "budgets.sales.thresholds_pct",
            "at most 1,000 %",
        ),
        ("budgets:\n  salse:\n    amount_usd: 10\n", 2, "budgets.salse", "not a cost center id"),
        ("daily:\n  time: 7:30\n", 2, "daily.time", 'quote it: "07:30"'),
        ("daily:\n  time: '25:00'\n", 2, "daily.time", "not a time of day"),
        ("budgets:\n  sales:\n    amount_usd: 10.005\n", 3, "budgets.sales.amount_usd", "cents"),
    ],
    ids=[
        "negative",
        "not-increasing",
        "above-1000",
        "unknown-cost-center",
        "unquoted-time",
        "not-a-time",
        "sub-cent",
    ],
)
def test_bad_budgets_are_named_by_file_line_and_field(
    tmp_path: Path, tail: str, line: int, field: str, words: str
) -> None:
    text = base_text()
    path = write(tmp_path, text + tail)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    offset = text.count("\n")
    [problem] = raised.value.problems
    assert problem.startswith(f"{path}:{offset + line}: {field}: "), problem
    assert words in problem


def test_every_budget_problem_is_reported_at_once(tmp_path: Path) -> None:
    tail = "daily:\n  time: noon\nbudgets:\n  nobody:\n    amount_usd: -1\n"
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, base_text() + tail))
    fields = [problem.split(": ")[1] for problem in raised.value.problems]
    assert fields == ["daily.time", "budgets.nobody", "budgets.nobody.amount_usd"]


@pytest.mark.parametrize(
    ("spent", "crossed", "forecast", "alert"),
    [
        ("499.99", (), "1000.00", False),
        ("500.00", (50,), "1000.01", True),
        ("1000.00", (50, 80, 100), "1000.00", False),
    ],
)
def test_thresholds_are_reached_at_equality_and_the_forecast_alert_above(
    spent: str, crossed: tuple[int, ...], forecast: str, alert: bool
) -> None:
    budget = Budget.model_validate({"amount_usd": Decimal("1000.00")})
    assert budget.crossed(Decimal(spent)) == tuple(Decimal(p) for p in crossed)
    assert budget.forecast_exceeds(Decimal(forecast)) is alert
