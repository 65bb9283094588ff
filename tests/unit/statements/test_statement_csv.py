from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vapi_chargeback.statement import Statement
from vapi_chargeback.statements.csv import (
    StatementCsvError,
    csv_name,
    header,
    read_csv,
    write_csv,
)
from vapi_chargeback.statements.formatting import looks_like_formula, minutes_text, money_text

from support.statement_samples import closed_statement, sample_statement

GOLDEN = (
    b"period,cost_center_id,cost_center_name,team,assistant_id,allocation,calls,minutes,cost_usd,"
    b"llm_usd,stt_usd,tts_usd,other_usd,assistant_name,statement_id,corrects\n"
    b"2026-10,sales,Sales,emea,asst-1,direct,120,300.50,100.00,40.00,10.00,20.00,30.00,,VAPI-2026-10-sales-v1,\n"
    b"2026-10,sales,Sales,,,shared:platform,0,0.00,7.00,0.00,0.00,0.00,7.00,,VAPI-2026-10-sales-v1,\n"
    b'2026-10,support,"Support, 1st level",\'=cmd,asst-2,direct,30,61.33,40.00,10.00,5.00,5.00,20.00,,VAPI-2026-10-support-v1,\n'
    b'2026-10,support,"Support, 1st level",,,shared:platform,0,0.00,5.00,0.00,0.00,0.00,5.00,,VAPI-2026-10-support-v1,\n'
    b"2026-10,UNALLOCATED,Unallocated,,,unallocated:no-assistant,5,10.00,10.50,5.00,1.00,1.00,3.50,,VAPI-2026-10-ORG-v1,\n"
    b"2026-10,UNALLOCATED,Unallocated,,asst-9,unallocated:unmapped-assistant,8,20.00,20.00,8.00,2.00,2.00,8.00,,VAPI-2026-10-ORG-v1,\n"
)
BEFORE_WAVE_2 = b"".join(line.rsplit(b",", 3)[0] + b"\n" for line in GOLDEN.splitlines())
"""The same statement as written before the three appended columns existed."""
CLOSED_TAIL = (
    b"2026-10,sales,Sales,emea,asst-1,correction:2026-09,-2,-3.25,-1.20,-0.50,-0.20,-0.30,-0.20,,VAPI-2026-10-sales-v1,VAPI-2026-09-sales-v1\n"
    b"2026-10,UNALLOCATED,Unallocated,,asst-9,correction:2026-09,1,2.00,0.80,0.30,0.10,0.10,0.30,,VAPI-2026-10-ORG-v1,VAPI-2026-09-ORG-v1\n"
    b"2026-10,sales,Sales,,,adjustment:invoice,0,0.00,2.26,0.00,0.00,0.00,2.26,,VAPI-2026-10-sales-v1,\n"
    b'2026-10,support,"Support, 1st level",,,adjustment:invoice,0,0.00,0.91,0.00,0.00,0.00,0.91,,VAPI-2026-10-support-v1,\n'
)


def test_csv_bytes_match_the_hand_written_golden(statement: Statement, tmp_path: Path) -> None:
    path = tmp_path / csv_name(statement.period)

    rows = write_csv(statement, path)

    assert path.name == "chargeback-2026-10.csv"
    assert path.read_bytes() == GOLDEN
    assert rows == 6


def test_header_follows_the_component_order_then_other_then_the_appended_columns() -> None:
    assert header(["tts", "llm"])[8:] == [
        "cost_usd",
        "tts_usd",
        "llm_usd",
        "other_usd",
        "assistant_name",
        "statement_id",
        "corrects",
    ]


def test_old_columns_keep_their_bytes_and_the_new_ones_are_appended() -> None:
    """Every line as written before the new columns is a byte prefix of the line now."""
    old, new = BEFORE_WAVE_2.splitlines(), GOLDEN.splitlines()
    assert len(old) == len(new)
    assert all(line.startswith(before + b",") for before, line in zip(old, new, strict=True))


def test_corrections_and_adjustments_are_lines_with_their_ids(tmp_path: Path) -> None:
    """Deltas negative in every column; statement_id is the line's statement in this month
    (the org's for UNALLOCATED), corrects the September statement it corrects."""
    path = tmp_path / "closed.csv"

    assert write_csv(closed_statement(), path) == 10

    assert path.read_bytes() == GOLDEN + CLOSED_TAIL


def test_statement_id_follows_prefix_and_version(
    make_statement: Callable[..., Statement], tmp_path: Path
) -> None:
    path = tmp_path / "v2.csv"
    write_csv(make_statement(statement_prefix="ACME-VAPI", version=2, restatement_reason="x"), path)

    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    assert [row["statement_id"] for row in rows] == [
        "ACME-VAPI-2026-10-sales-v2",
        "ACME-VAPI-2026-10-sales-v2",
        "ACME-VAPI-2026-10-support-v2",
        "ACME-VAPI-2026-10-support-v2",
        "ACME-VAPI-2026-10-ORG-v2",
        "ACME-VAPI-2026-10-ORG-v2",
    ]


def test_assistant_name_is_written_and_guarded_like_any_text(
    statement: Statement, tmp_path: Path
) -> None:
    first = replace(statement.lines[0], assistant_name="=Booking bot")
    path = tmp_path / "x.csv"

    write_csv(replace(statement, lines=[first]), path)

    assert path.read_bytes().splitlines()[1].endswith(b",'=Booking bot,VAPI-2026-10-sales-v1,")


def test_read_csv_gives_back_the_lines_as_written(tmp_path: Path) -> None:
    statement = closed_statement()
    path = tmp_path / "closed.csv"
    write_csv(statement, path)

    read = read_csv(path.read_bytes())

    assert read.period == "2026-10"
    assert read.components == ["llm", "stt", "tts"]
    shown = [replace(line, minutes=Decimal(minutes_text(line.minutes))) for line in statement.lines]
    assert read.lines == shown, "minutes come back as shown; '=cmd' loses its guard"
    assert read.statement_ids[-1] == "VAPI-2026-10-support-v1"


def test_read_csv_reads_files_written_before_the_appended_columns() -> None:
    read = read_csv(BEFORE_WAVE_2)

    assert [line.team for line in read.lines][2] == "=cmd"
    assert {line.corrects for line in read.lines} == {""}
    assert read.statement_ids == [""] * 6
    assert read.lines[0].cost_usd == Decimal("100.00")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty file", id="empty"),
        pytest.param(b"a,b\n", "line 1: the header does not begin", id="not-a-statement"),
        pytest.param(
            GOLDEN.replace(b"20.00,30.00,,VAPI", b"20.00,31.00,,VAPI"),
            "line 2, column other_usd: 31.00 but cost_usd − Σ components is 30.00",
            id="tampered",
        ),
        pytest.param(
            GOLDEN.replace(b",120,", b",12x,"), "line 2, column calls: '12x'", id="bad-calls"
        ),
        pytest.param(
            GOLDEN.replace(b",300.50,", b",3OO,"), "line 2, column minutes: '3OO'", id="bad-number"
        ),
        pytest.param(
            GOLDEN.replace(b"assistant_name,statement_id", b"statement_id,assistant_name"),
            "columns after other_usd",
            id="appended-columns-moved",
        ),
        pytest.param(GOLDEN + b"2026-10,x\n", "line 8: 2 fields for 16 columns", id="short-row"),
    ],
)
def test_read_csv_names_line_and_column_of_what_it_cannot_read(data: bytes, message: str) -> None:
    with pytest.raises(StatementCsvError, match=re.escape(message)):
        read_csv(data, "chargeback-2026-10.csv")


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


@settings(max_examples=60, deadline=None)
@given(
    team=st.text(max_size=20).filter(lambda text: not text.startswith("'")),
    assistant_name=st.text(max_size=20).filter(lambda text: not text.startswith("'")),
    cents=st.lists(st.integers(-(10**9), 10**9), min_size=4, max_size=4),
    calls=st.integers(-1000, 10**6),
)
def test_any_line_survives_write_then_read(
    team: str, assistant_name: str, cents: list[int], calls: int
) -> None:
    """Text (but a leading ' the guard cannot tell apart) and every amount come back."""
    base = sample_statement()
    cost, llm, stt, tts = (Decimal(value).scaleb(-2) for value in cents)
    first = replace(
        base.lines[0],
        team=team,
        assistant_name=assistant_name,
        calls=calls,
        cost_usd=cost,
        components_usd={"llm": llm, "stt": stt, "tts": tts},
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "x.csv"
        write_csv(replace(base, lines=[first]), path)
        read = read_csv(path.read_bytes())

    assert read.lines == [replace(first, minutes=Decimal("300.50"))]
    assert read.lines[0].other_usd == first.other_usd
