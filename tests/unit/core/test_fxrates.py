"""The rates file and the rate a month gets: checked like the mapping, refused before a run
writes anything."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from vapi_chargeback import cli
from vapi_chargeback.config import ConfigError, load_config
from vapi_chargeback.errors import PermanentError
from vapi_chargeback.fx import rate_sentence
from vapi_chargeback.fxrates import (
    FxRatesError,
    FxSettings,
    from_ecb,
    load_fx_rates,
    month_rate,
)
from vapi_chargeback.period import StatementPeriod
from vapi_chargeback.pipeline import RunSettings, plan_run

from support.core_fixtures import MAPPING_HEADER, base_config, dump_yaml

HEADER = "date,currency,rate\n"
OCTOBER = StatementPeriod.for_month("2026-10", "Europe/Berlin")
"""Its last day, Saturday 2026-10-31, has no ECB rate; Friday 2026-10-30 has."""


def rates_file(tmp_path: Path, rows: str, name: str = "fx_rates.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def october_rate(
    tmp_path: Path, rows: str, *, currency: str = "EUR", **settings: Any
) -> tuple[Decimal, date, date | None]:
    rates_file(tmp_path, rows)
    fx = month_rate(currency, FxSettings(**settings), tmp_path / "chargeback.yaml", OCTOBER)
    assert fx is not None
    return fx.rate, fx.rate_date, fx.first_date


def test_a_rate_on_the_periods_last_day_is_taken(tmp_path: Path) -> None:
    rows = "2026-10-30,EUR,0.9100\n2026-10-31,EUR,0.9200\n2026-11-02,EUR,0.9300\n"

    assert october_rate(tmp_path, rows) == (Decimal("0.9200"), date(2026, 10, 31), None)


def test_a_weekend_month_end_takes_the_last_business_day(tmp_path: Path) -> None:
    rows = "2026-10-29,EUR,0.9050\n2026-10-30,EUR,0.9100\n2026-11-02,EUR,0.9300\n"

    assert october_rate(tmp_path, rows) == (Decimal("0.9100"), date(2026, 10, 30), None)


def test_month_average_states_the_dates_averaged(tmp_path: Path) -> None:
    rows = (
        "2026-09-30,EUR,0.5000\n"  # outside the month
        "2026-10-01,EUR,0.9000\n2026-10-15,EUR,0.9100\n2026-10-30,EUR,0.9300\n"
        "2026-11-02,EUR,0.5000\n"
    )

    rate, last, first = october_rate(tmp_path, rows, rule="month_average")

    assert (rate, first, last) == (Decimal("0.9133333333"), date(2026, 10, 1), date(2026, 10, 30))


def test_jpy_rates_convert_with_no_minor_unit(tmp_path: Path) -> None:
    rates_file(tmp_path, "2026-10-30,JPY,151.37\n2026-10-30,EUR,0.91\n")

    fx = month_rate("JPY", FxSettings(), tmp_path / "chargeback.yaml", OCTOBER)

    assert fx is not None
    assert (fx.currency, fx.rate, fx.minor_units) == ("JPY", Decimal("151.37"), 0)
    assert fx.source.startswith("fx_rates.csv sha256:")
    assert rate_sentence(fx).startswith("1 USD = 151.37 JPY, rate of 2026-10-30 (month_end)")


def test_no_reporting_currency_reads_no_file(tmp_path: Path) -> None:
    assert month_rate(None, FxSettings(), tmp_path / "chargeback.yaml", OCTOBER) is None


@pytest.mark.parametrize(
    ("rows", "settings", "message"),
    [
        pytest.param(
            "2026-11-02,EUR,0.93\n2026-10-30,USD,1\n",
            {},
            "no EUR rate on or before 2026-10-31 for 2026-10 (month_end)",
            id="none-at-all",
        ),
        pytest.param(
            "2026-10-20,EUR,0.91\n",
            {},
            "the newest EUR rate on or before 2026-10-31 is of 2026-10-20, 11 days before"
            " 2026-10's last day 2026-10-31; fx.max_age_days is 7",
            id="stale",
        ),
        pytest.param(
            "2026-10-29,EUR,0.91\n",
            {"max_age_days": 1},
            "the newest EUR rate on or before 2026-10-31 is of 2026-10-29, 2 days before"
            " 2026-10's last day 2026-10-31; fx.max_age_days is 1",
            id="stale-by-config",
        ),
        pytest.param(
            "2026-09-30,EUR,0.91\n2026-11-02,EUR,0.93\n",
            {"rule": "month_average"},
            "no EUR rate dated 2026-10-01 to 2026-10-31 for 2026-10 (month_average)",
            id="none-to-average",
        ),
    ],
)
def test_a_month_without_a_fresh_rate_is_refused(
    tmp_path: Path, rows: str, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(FxRatesError) as raised:
        october_rate(tmp_path, rows, **settings)

    (problem,) = raised.value.problems
    assert problem.startswith(f"{tmp_path / 'fx_rates.csv'}: {message}")
    assert "add the rates up to 2026-10-31" in str(raised.value)
    assert isinstance(raised.value, PermanentError)


def test_every_bad_row_is_named_with_its_line(tmp_path: Path) -> None:
    path = rates_file(
        tmp_path,
        "2026-10-30,EUR,0.91\n"  # 2: fine
        "2026-10-30,EUR,0.92\n"  # 3: duplicate of line 2
        "2026-10-30,XEU,0.91\n"  # 4: unknown currency
        "2026-10-31,EUR,0\n"  # 5: zero
        "2026-10-31,JPY,-150\n"  # 6: negative
        "30.10.2026,GBP,0.79\n"  # 7: not ISO
        "2026-10-30,GBP\n"  # 8: missing field
        "2026-10-30,eur,0.91\n"  # 9: lower case
        "\n"  # blank lines are skipped
        '2026-10-29,GBP,"1,5"\n',  # 11: a decimal comma
    )

    with pytest.raises(FxRatesError) as raised:
        load_fx_rates(path)

    where = str(path)
    problems = raised.value.problems
    assert [problem.split(": ", 1)[0] for problem in problems] == [
        f"{where}:{line}" for line in (3, 4, 5, 6, 7, 8, 9, 11)
    ]
    assert "date 2026-10-30 already has a EUR rate on line 2" in problems[0]
    assert "currency 'XEU' is not an active ISO 4217 code" in problems[1]
    assert "rate '0' is not a rate above 0" in problems[2]
    assert "rate '-150' is not a rate above 0" in problems[3]
    assert "date '30.10.2026' is not a date; write it as YYYY-MM-DD" in problems[4]
    assert "2 fields; expected 3 (date,currency,rate)" in problems[5]
    assert "currency 'eur'" in problems[6]
    assert "rate '1,5'" in problems[7]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"day,currency,rate\n", "header is 'day,currency,rate'", id="header"),
        pytest.param(b"", "header is 'an empty file'", id="empty"),
        pytest.param(b"date,currency,rate\n\xff\n", "not UTF-8", id="not-utf8"),
    ],
)
def test_a_malformed_file_is_refused(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "fx_rates.csv"
    path.write_bytes(raw)

    with pytest.raises(FxRatesError, match=message):
        load_fx_rates(path)


def test_a_missing_rates_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FxRatesError, match="file not found; reporting_currency needs rates"):
        load_fx_rates(tmp_path / "fx_rates.csv")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"reporting_currency": "EURO"}, "reporting_currency: 'EURO' is not", id="iso"),
        pytest.param({"reporting_currency": "eur"}, "reporting_currency: 'eur' is not", id="case"),
        pytest.param({"reporting_currency": "USD"}, "in USD already", id="usd"),
        pytest.param({"fx": {"rule": "month_middle"}}, "fx.rule: 'month_middle'", id="rule"),
        pytest.param({"fx": {"max_age_days": -1}}, "fx.max_age_days", id="age"),
        pytest.param({"fx": {"rate": "x.csv"}}, "fx.rate: unknown field", id="typo"),
    ],
)
def test_bad_fx_settings_name_file_line_and_field(
    write_config: Callable[[dict[str, Any]], Path], changes: dict[str, Any], message: str
) -> None:
    path = write_config({**base_config(), **changes})

    with pytest.raises(ConfigError, match=message) as raised:
        load_config(path)

    assert raised.value.problems[0].startswith(f"{path}:")


def test_fx_settings_are_read_as_written(write_config: Callable[[dict[str, Any]], Path]) -> None:
    config = load_config(
        write_config(
            {
                **base_config(),
                "reporting_currency": "JPY",
                "fx": {"rates": "rates/jpy.csv", "rule": "month_average", "max_age_days": 3},
            }
        )
    )

    assert config.reporting_currency == "JPY"
    assert config.fx == FxSettings(rates="rates/jpy.csv", rule="month_average", max_age_days=3)
    assert load_config(write_config(base_config())).reporting_currency is None


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param("2026-10-30,EUR,0.91\n2026-10-30,EUR,0.91\n", id="duplicate-date"),
        pytest.param("2026-10-30,ABC,0.91\n", id="unknown-currency"),
        pytest.param("2026-10-30,EUR,0.91,x\n", id="malformed"),
        pytest.param("2026-10-30,EUR,0.00\n", id="rate-zero"),
        pytest.param("2026-10-01,EUR,0.91\n", id="stale"),
        pytest.param("2026-11-02,EUR,0.91\n", id="missing"),
    ],
)
def test_plan_refuses_bad_rates_before_writing_anything(tmp_path: Path, rows: str) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    config = folder / "chargeback.yaml"
    config.write_text(dump_yaml({**base_config(), "reporting_currency": "EUR"}))
    (folder / "assistant_teams.csv").write_text(MAPPING_HEADER)
    rates_file(folder, rows)
    output = tmp_path / "out"
    settings = RunSettings(
        config_path=str(config),
        default_output_url=output.as_uri(),
        month="2026-10",
        run_id="fx",
    )

    with pytest.raises(FxRatesError, match=str(folder / "fx_rates.csv")):
        plan_run(settings, now=datetime(2026, 12, 1, tzinfo=UTC))

    assert not output.exists()


def test_plan_carries_the_months_rate(tmp_path: Path) -> None:
    config = tmp_path / "chargeback.yaml"
    config.write_text(dump_yaml({**base_config(), "reporting_currency": "EUR"}))
    (tmp_path / "assistant_teams.csv").write_text(MAPPING_HEADER)
    rates_file(tmp_path, "2026-10-30,EUR,0.9137\n")
    settings = RunSettings(
        config_path=str(config),
        default_output_url=(tmp_path / "out").as_uri(),
        month="2026-10",
        run_id="fx",
    )

    run = plan_run(settings, now=datetime(2026, 12, 1, tzinfo=UTC))

    assert run.fx is not None
    assert (run.fx.currency, run.fx.rate, run.fx.rate_date) == (
        "EUR",
        Decimal("0.9137"),
        date(2026, 10, 30),
    )
    assert type(run).model_validate_json(run.model_dump_json()).fx == run.fx


ECB = (
    "Date,USD,JPY,CYP,GBP,\n"
    "2026-10-30,1.0850,162.75,N/A,0.8412,\n"
    "2026-10-29,1.0800,,N/A,0.8400,\n"
    "2026-10-28,N/A,160.00,N/A,0.8300,\n"
)
"""Shaped like eurofxref-hist.csv: units per 1 EUR, newest first, a trailing comma, N/A
for currencies not quoted that day, and historic codes (CYP)."""


def test_ecb_rates_become_rates_per_usd(tmp_path: Path) -> None:
    out = from_ecb(ECB.encode(), "eurofxref-hist.csv")

    assert out.decode() == (
        "date,currency,rate\n"
        "2026-10-29,EUR,0.9259259259\n"
        "2026-10-29,GBP,0.7777777778\n"
        "2026-10-30,EUR,0.9216589862\n"
        "2026-10-30,GBP,0.7752995392\n"
        "2026-10-30,JPY,150\n"
    )
    path = tmp_path / "fx_rates.csv"
    path.write_bytes(out)
    assert load_fx_rates(path).by_currency["JPY"] == {date(2026, 10, 30): Decimal(150)}


def test_ecb_conversion_keeps_only_the_currencies_asked_for() -> None:
    out = from_ecb(ECB.encode(), "eurofxref-hist.csv", {"EUR"})

    assert out.decode().splitlines()[1:] == [
        "2026-10-29,EUR,0.9259259259",
        "2026-10-30,EUR,0.9216589862",
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("date,currency,rate\n", "is not the ECB's", id="not-ecb"),
        pytest.param("Date,USD\n2026-10-30,1.08x\n", ":2: USD: not a date or a rate", id="rate"),
        pytest.param("Date,USD\n30/10/2026,1.08\n", ":2: Date: not a date", id="date"),
        pytest.param("Date,USD\n2026-10-30,0\n", ":2: USD: not a date or a rate", id="zero"),
    ],
)
def test_a_bad_ecb_file_is_refused(raw: str, message: str) -> None:
    with pytest.raises(FxRatesError, match=message):
        from_ecb(raw.encode(), "eurofxref-hist.csv")


def test_the_cli_writes_the_rates_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ecb = tmp_path / "eurofxref-hist.csv"
    ecb.write_text(ECB)
    out = tmp_path / "fx_rates.csv"

    status = cli.main(["fx-rates", "--from-ecb", str(ecb), "--out", str(out), "--currency", "EUR"])

    assert status == 0
    assert capsys.readouterr() == ("", "")
    assert out.read_bytes() == from_ecb(ECB.encode(), str(ecb), {"EUR"})
    assert [path.name for path in tmp_path.iterdir()] == sorted(
        ["eurofxref-hist.csv", "fx_rates.csv"]
    )


def test_the_cli_names_a_bad_ecb_cell_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ecb = tmp_path / "eurofxref-hist.csv"
    ecb.write_text("Date,USD\n2026-10-30,1.08x\n")
    out = tmp_path / "fx_rates.csv"

    status = cli.main(["fx-rates", "--from-ecb", str(ecb), "--out", str(out)])

    assert status == 1
    assert f"{ecb}:2: USD: not a date or a rate" in capsys.readouterr().err
    assert not out.exists()


def test_the_cli_refuses_an_unknown_currency(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["fx-rates", "--from-ecb", "x.csv", "--out", "y.csv", "--currency", "EURO"])

    assert raised.value.code == 2


def test_the_cli_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["fx-rates", "--help"])

    text = capsys.readouterr().out
    for flag in ("--from-ecb", "--out", "--currency", "--verbose"):
        assert flag in text
    assert "units per 1 USD (EUR = 1/USD, X = X/USD)" in " ".join(text.split())
