"""The reporting currency in the statement CSV and the manifest: present only with a rate,
converted lines adding up to the converted total the manifest states."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback.fx import convert, minor_units
from vapi_chargeback.statement import FxRate, Statement
from vapi_chargeback.statements.csv import StatementCsvError, read_csv, write_csv
from vapi_chargeback.statements.manifest import build_manifest
from vapi_chargeback.statements.totals import summarize

from support.statement_samples import sample_statement

SOURCE = "fx_rates.csv sha256:" + "ab" * 32


def with_rate(currency: str, rate: str, **changes: object) -> Statement:
    fx = FxRate(
        currency, Decimal(rate), date(2026, 10, 30), "month_end", SOURCE, minor_units(currency)
    )
    return replace(sample_statement(), fx=replace(fx, **changes))


def csv_rows(statement: Statement, tmp_path: Path) -> tuple[bytes, list[dict[str, str]]]:
    path = tmp_path / "statement.csv"
    write_csv(statement, path)
    data = path.read_bytes()
    return data, list(csv.DictReader(io.StringIO(data.decode())))


def test_no_reporting_currency_no_column_and_no_manifest_block(tmp_path: Path) -> None:
    statement = sample_statement()
    data, _ = csv_rows(statement, tmp_path)

    assert data.splitlines()[0].endswith(b",assistant_name,statement_id,corrects")
    manifest = json.loads(build_manifest(statement, summarize(statement), []))
    assert "fx" not in manifest


def test_eur_column_follows_corrects_and_adds_up_to_the_manifest_total(tmp_path: Path) -> None:
    statement = with_rate("EUR", "0.9137")
    data, rows = csv_rows(statement, tmp_path)

    assert data.splitlines()[0].endswith(b",assistant_name,statement_id,corrects,cost_eur")
    converted = [Decimal(row["cost_eur"]) for row in rows]
    assert all(row["cost_eur"] == f"{Decimal(row['cost_eur']):.2f}" for row in rows)
    for row, amount in zip(rows, converted, strict=True):
        assert abs(amount - Decimal(row["cost_usd"]) * Decimal("0.9137")) < Decimal("0.01")
    manifest = json.loads(build_manifest(statement, summarize(statement), []))
    fx = manifest["fx"]
    assert fx == {
        "currency": "EUR",
        "rate": "0.9137",
        "rate_date": "2026-10-30",
        "rule": "month_end",
        "source": SOURCE,
        "minor_units": 2,
        "total": fx["total"],
        "cost_by_cost_center": fx["cost_by_cost_center"],
    }
    usd_total = Decimal(manifest["totals"]["cost_usd"])
    assert Decimal(fx["total"]) == (usd_total * Decimal("0.9137")).quantize(Decimal("0.01"))
    assert sum(converted) == Decimal(fx["total"])
    assert sum(map(Decimal, fx["cost_by_cost_center"].values())) == Decimal(fx["total"])
    assert set(fx["cost_by_cost_center"]) == {"sales", "support", "UNALLOCATED"}


def test_jpy_column_has_no_decimals(tmp_path: Path) -> None:
    statement = with_rate("JPY", "151.37")
    data, rows = csv_rows(statement, tmp_path)

    assert data.splitlines()[0].endswith(b",corrects,cost_jpy")
    assert all(row["cost_jpy"].lstrip("-").isdigit() for row in rows)
    converted = convert(statement)
    assert converted is not None
    assert [row["cost_jpy"] for row in rows] == [str(amount) for amount in converted.lines]


def test_month_average_names_its_first_date() -> None:
    statement = with_rate("EUR", "0.91", rule="month_average", first_date=date(2026, 10, 1))

    fx = json.loads(build_manifest(statement, summarize(statement), []))["fx"]

    assert (fx["rule"], fx["first_date"], fx["rate_date"]) == (
        "month_average",
        "2026-10-01",
        "2026-10-30",
    )


def test_read_csv_reads_a_file_with_or_without_the_converted_column(tmp_path: Path) -> None:
    plain, _ = csv_rows(sample_statement(), tmp_path)
    converted, _ = csv_rows(with_rate("EUR", "0.9137"), tmp_path)

    assert read_csv(converted).lines == read_csv(plain).lines


@pytest.mark.parametrize(
    ("rename", "drop", "add"),
    [
        pytest.param({"cost_eur": "cost_xyz"}, None, None, id="unknown-currency"),
        pytest.param({"cost_eur": "cost_EUR"}, None, None, id="upper-case"),
        pytest.param({}, None, "cost_gbp", id="two-currencies"),
        pytest.param({}, "corrects", None, id="without-corrects"),
    ],
)
def test_read_csv_refuses_other_trailing_columns(
    tmp_path: Path, rename: dict[str, str], drop: str | None, add: str | None
) -> None:
    _, rows = csv_rows(with_rate("EUR", "0.9"), tmp_path)
    columns = [rename.get(name, name) for name in rows[0] if name != drop] + ([add] if add else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = [value for name, value in row.items() if name != drop]
        writer.writerow(values + (["1.00"] if add else []))

    with pytest.raises(StatementCsvError, match="then cost_<currency> or none"):
        read_csv(out.getvalue().encode())
