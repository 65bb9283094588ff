from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.csv import csv_name, header, write_csv
from vapi_chargeback.statements.formatting import looks_like_formula, minutes_text, money_text

from support.statement_samples import sample_statement

GOLDEN = (
    b"period,cost_center_id,cost_center_name,team,assistant_id,allocation,calls,minutes,cost_usd,"
    b"llm_usd,stt_usd,tts_usd,other_usd\n"
    b"2026-10,sales,Sales,emea,asst-1,direct,120,300.50,100.00,40.00,10.00,20.00,30.00\n"
    b"2026-10,sales,Sales,,,shared:platform,0,0.00,7.00,0.00,0.00,0.00,7.00\n"
    b'2026-10,support,"Support, 1st level",\'=cmd,asst-2,direct,30,61.33,40.00,10.00,5.00,5.00,20.00\n'
    b'2026-10,support,"Support, 1st level",,,shared:platform,0,0.00,5.00,0.00,0.00,0.00,5.00\n'
    b"2026-10,UNALLOCATED,Unallocated,,,unallocated:no-assistant,5,10.00,10.50,5.00,1.00,1.00,3.50\n"
    b"2026-10,UNALLOCATED,Unallocated,,asst-9,unallocated:unmapped-assistant,8,20.00,20.00,8.00,2.00,2.00,8.00\n"
)


def test_csv_bytes_match_the_hand_written_golden(statement: Statement, tmp_path: Path) -> None:
    path = tmp_path / csv_name(statement.period)

    rows = write_csv(statement, path)

    assert path.name == "chargeback-2026-10.csv"
    assert path.read_bytes() == GOLDEN
    assert rows == 6


def test_header_follows_the_component_order_then_other() -> None:
    assert header(["tts", "llm"])[-3:] == ["tts_usd", "llm_usd", "other_usd"]


def test_empty_statement_is_just_the_header(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    path = tmp_path / "empty.csv"

    assert write_csv(make_statement(lines=[], reconciliation=None), path) == 0
    assert path.read_bytes() == GOLDEN.split(b"\n", 1)[0] + b"\n"


@pytest.mark.parametrize(
    ("team", "written"),
    [
        pytest.param("=HYPERLINK(1)", "'=HYPERLINK(1)", id="equals"),
        pytest.param("+1", "'+1", id="plus"),
        pytest.param("-1", "'-1", id="minus"),
        pytest.param("@SUM(A1)", "'@SUM(A1)", id="at"),
        pytest.param("\tx", "'\tx", id="tab"),
        pytest.param("a=b", "a=b", id="equals-inside-is-harmless"),
        pytest.param("Growth", "Growth", id="plain"),
    ],
)
def test_text_a_spreadsheet_would_run_is_neutralised(
    statement: Statement, tmp_path: Path, team: str, written: str
) -> None:
    first = replace(statement.lines[0], team=team)
    path = tmp_path / "x.csv"

    write_csv(replace(statement, lines=[first]), path)

    assert path.read_text(encoding="utf-8").splitlines()[1].split(",")[3] == written


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        pytest.param("5", "5.00", id="integer-padded"),
        pytest.param("1234567.80", "1234567.80", id="no-separators"),
        pytest.param("-0.00", "0.00", id="negative-zero"),
        pytest.param("-12.30", "-12.30", id="negative"),
        pytest.param("1E+3", "1000.00", id="no-exponent"),
    ],
)
def test_money_text(amount: str, text: str) -> None:
    assert money_text(Decimal(amount)) == text


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        pytest.param("61.333", "61.33", id="down"),
        pytest.param("0.005", "0.01", id="half-up"),
        pytest.param("2", "2.00", id="padded"),
    ],
)
def test_minutes_text(minutes: str, text: str) -> None:
    assert minutes_text(Decimal(minutes)) == text


@settings(max_examples=80, deadline=None)
@given(name=st.text(max_size=30), team=st.text(max_size=30))
def test_any_text_survives_a_csv_reader(name: str, team: str) -> None:
    base = sample_statement()
    first = replace(base.lines[0], cost_center_name=name, team=team)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "x.csv"
        write_csv(replace(base, lines=[first]), path)
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))

    expected = [f"'{text}" if looks_like_formula(text) else text for text in (name, team)]
    assert [rows[1][2], rows[1][3]] == expected


@pytest.mark.parametrize(
    ("team", "field"),
    [
        pytest.param("a,b", b'"a,b"', id="comma"),
        pytest.param('say "hi"', b'"say ""hi"""', id="quotes-doubled"),
        pytest.param("two\nlines", b'"two\nlines"', id="line-feed"),
        pytest.param("a\rb", b'"a\rb"', id="lone-carriage-return"),
        pytest.param(" padded ", b" padded ", id="spaces-kept-unquoted"),
        pytest.param("Zürich", "Zürich".encode(), id="utf-8"),
    ],
)
def test_fields_are_quoted_only_when_needed(
    statement: Statement, tmp_path: Path, team: str, field: bytes
) -> None:
    path = tmp_path / "x.csv"

    write_csv(replace(statement, lines=[replace(statement.lines[0], team=team)]), path)

    assert (
        path.read_bytes()
        .split(b"\n", 1)[1]
        .startswith(b"2026-10,sales,Sales," + field + b",asst-1,")
    )
