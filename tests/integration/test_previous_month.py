"""The previous month, read back from its published CSV, for the Variance sheet and manifest.

Months are published with ``storage.publish_statement`` (no run): September as booked,
then October rendered against it. What October compares with is checked against what was
published, never against what this code computed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from vapi_chargeback import demo
from vapi_chargeback.close.previous import previous_month
from vapi_chargeback.money import round_minutes
from vapi_chargeback.statements.csv import read_csv
from vapi_chargeback.storage import publish_statement

from support.delivery_samples import PERIOD, PREVIOUS, month_statement, publish_month
from support.storage import snapshot

CSV = f"chargeback-{PERIOD}.csv"


def test_no_published_previous_month_is_none(tmp_path: Path) -> None:
    assert previous_month(tmp_path, PERIOD, "VAPI") is None


def test_the_previous_month_is_read_back_from_its_published_csv(tmp_path: Path) -> None:
    publish_month(tmp_path, PREVIOUS)

    previous = previous_month(tmp_path, PERIOD, "VAPI")

    assert previous is not None
    assert (previous.period, previous.statement_id, previous.status) == (
        PREVIOUS,
        "VAPI-2026-09-ORG-v1",
        "final",
    )
    published = read_csv((tmp_path / PREVIOUS / f"chargeback-{PREVIOUS}.csv").read_bytes())
    assert previous.lines == published.lines
    booked = month_statement(PREVIOUS).lines
    assert [(x.key, x.cost_usd, x.calls) for x in previous.lines] == [
        (x.key, x.cost_usd, x.calls) for x in booked
    ]
    assert [x.minutes for x in previous.lines] == [round_minutes(x.minutes) for x in booked]


def test_a_restated_previous_month_is_compared_as_its_current_version(tmp_path: Path) -> None:
    publish_month(tmp_path, PREVIOUS)
    publish_month(tmp_path, PREVIOUS, scale=2, final=False, version=2)

    previous = previous_month(tmp_path, PERIOD, "VAPI")

    assert previous is not None
    assert (previous.statement_id, previous.status) == ("VAPI-2026-09-ORG-v2", "draft")
    assert sum((x.cost_usd for x in previous.lines), Decimal(0)) == sum(
        (x.cost_usd for x in month_statement(PREVIOUS, scale=2).lines), Decimal(0)
    )


def test_a_damaged_previous_month_is_not_compared_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publish_month(tmp_path, PREVIOUS)
    csv_file = tmp_path / PREVIOUS / f"chargeback-{PREVIOUS}.csv"
    csv_file.write_bytes(csv_file.read_bytes().replace(b"30.00", b"31.00"))

    with caplog.at_level(logging.WARNING):
        assert previous_month(tmp_path, PERIOD, "VAPI") is None

    assert "does not match its sha256" in caplog.text


def test_october_against_september_publishes_drivers_and_keeps_the_csv_bytes(
    tmp_path: Path,
) -> None:
    publish_month(tmp_path, PREVIOUS)
    october = month_statement(PERIOD, scale=3)
    alone, compared = tmp_path / "alone", tmp_path / "compared"
    publish_statement(october, alone)
    with_previous = replace(october, previous=previous_month(tmp_path, PERIOD, "VAPI"))
    publish_statement(with_previous, compared)

    assert (alone / PERIOD / CSV).read_bytes() == (compared / PERIOD / CSV).read_bytes()
    manifest = json.loads((compared / PERIOD / "manifest.json").read_bytes())
    block = manifest["variance"]
    assert (block["previous_period"], block["previous_statement_id"]) == (
        PREVIOUS,
        "VAPI-2026-09-ORG-v1",
    )
    september = month_statement(PREVIOUS)
    delta = sum((x.cost_usd for x in october.lines), Decimal(0)) - sum(
        (x.cost_usd for x in september.lines), Decimal(0)
    )
    assert Decimal(block["org"]["delta_usd"]) == delta
    # Three times the cost of the same calls and minutes: all rate.
    assert Decimal(block["org"]["rate_usd"]) == delta
    assert block["top_movers"][0]["assistant_id"] == "asst-s2"  # 50.00 → 150.00
    assert json.loads((alone / PERIOD / "manifest.json").read_bytes())["variance"] is None

    sheet = openpyxl.load_workbook(compared / PERIOD / f"chargeback-{PERIOD}.xlsx")["Variance"]
    values = [cell for row in sheet.iter_rows(values_only=True) for cell in row]
    assert "VAPI-2026-09-ORG-v1 (final), as published" in values
    owner = openpyxl.load_workbook(compared / PERIOD / f"cost-centers/sales-{PERIOD}.xlsx")
    assert "Variance" in owner.sheetnames

    again = tmp_path / "again"
    publish_statement(with_previous, again)
    assert snapshot(again / PERIOD) == snapshot(compared / PERIOD), "a rerun gives the same bytes"


def test_make_demo_prints_key_figures_and_the_three_largest_movers_from_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_month(tmp_path, PREVIOUS)
    october = month_statement(PERIOD, scale=3)
    publish_statement(replace(october, previous=previous_month(tmp_path, PERIOD, "VAPI")), tmp_path)

    demo._key_figures(tmp_path / PERIOD)
    demo._movers(tmp_path / PERIOD)

    printed = capsys.readouterr().out
    assert "Key figures (manifest.json key_figures):" in printed
    assert f"change vs {PREVIOUS}" in printed
    movers = [
        line.strip()
        for line in printed.splitlines()
        if line.strip()[:2] in ("1.", "2.", "3.", "4.")
    ]
    assert movers == [
        "1. sales / asst-s2: +100.00 USD = rate +100.00",
        "2. sales / asst-s1: +60.00 USD = rate +60.00",
        "3. support / asst-p1: +25.00 USD = rate +25.00",
    ]
    assert f"Largest movers vs {PREVIOUS} (VAPI-2026-09-ORG-v1): total +" in printed


def test_make_demo_says_when_there_is_nothing_to_compare_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_statement(month_statement(PERIOD), tmp_path)

    demo._movers(tmp_path / PERIOD)

    assert "no previous month was published to compare with" in capsys.readouterr().out
