"""invoices.csv: validated like the mapping, every problem at once, file:line: field."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest

from vapi_chargeback.close.invoices import (
    MAX_INVOICES_BYTES,
    Invoice,
    InvoicesError,
    invoices_path,
    load_invoices,
)
from vapi_chargeback.errors import PermanentError

HEADER = "period,invoice_id,amount_usd\n"


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "invoices.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InvoicesError) as caught:
        load_invoices(path)
    assert isinstance(caught.value, PermanentError)
    assert str(path) in str(caught.value)
    return caught.value.problems


def test_a_valid_file_loads_each_month_as_decimal(tmp_path: Path) -> None:
    raw = ("\ufeff" + HEADER + "2026-10, INV-1001 ,1063.17\n\n2026-11,INV-1002,1.5\n").encode()
    path = write(tmp_path, raw)

    invoices = load_invoices(path)

    assert invoices.for_period("2026-10") == Invoice("2026-10", "INV-1001", Decimal("1063.17"), 2)
    november = invoices.for_period("2026-11")
    assert november is not None
    assert str(november.amount_usd) == "1.50"
    assert november.line == 4
    assert invoices.for_period("2026-12") is None
    assert len(invoices) == 2
    assert invoices.sha256 == hashlib.sha256(raw).hexdigest()


def test_no_file_means_no_invoices(tmp_path: Path) -> None:
    invoices = load_invoices(tmp_path / "invoices.csv")

    assert len(invoices) == 0
    assert invoices.for_period("2026-10") is None
    assert invoices.sha256 is None


def test_the_file_lives_beside_the_config(tmp_path: Path) -> None:
    assert invoices_path(tmp_path / "conf" / "chargeback.yaml") == tmp_path / "conf/invoices.csv"


def test_every_problem_is_reported_at_once_with_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "2026-10,INV-1,100.00\n"  # 2: fine
        + "2026-11,INV-2\n"  # 3: malformed
        + "2026-10,INV-3,5.00\n"  # 4: duplicate period
        + "2026-12,INV-1,5.00\n"  # 5: duplicate invoice id
        + "2027-01,INV-5,-3.00\n"  # 6: negative
        + "2026-13,INV-6,1.00\n"  # 7: bad period
        + '2027-02,INV-7,"1,234.00"\n'  # 8: thousands separator
        + "2027-03,INV-8,12.345\n"  # 9: three places
        + "2027-04,,1.00\n"  # 10: blank id
        + "2027-05,INV-10,$5\n",  # 11: currency symbol
    )

    problems = problems_of(path)

    source = str(path)
    expected = [
        (3, "2 fields; expected 3"),
        (4, "period 2026-10 already has invoice 'INV-1' on line 2"),
        (5, "invoice_id 'INV-1' is also on line 2"),
        (6, "amount_usd -3.00 is negative"),
        (7, "period '2026-13' is not a month"),
        (8, "amount_usd '1,234.00' is not a decimal amount"),
        (9, "amount_usd 12.345 has more than 2 decimal places"),
        (10, "invoice_id is blank"),
        (11, "amount_usd '$5' is not a decimal amount"),
    ]
    assert len(problems) == len(expected)
    for problem, (line, text) in zip(problems, expected, strict=True):
        assert problem.startswith(f"{source}:{line}: ")
        assert text in problem


@pytest.mark.parametrize(
    "amount",
    ["1e3", "NaN", "Infinity", "0x10", "1.", ".5", "1 000", "10000000000000.00"],
)
def test_amounts_that_are_not_plain_cents_are_refused(tmp_path: Path, amount: str) -> None:
    (problem,) = problems_of(write(tmp_path, HEADER + f"2026-10,INV-1,{amount}\n"))

    assert problem.startswith(f"{tmp_path / 'invoices.csv'}:2: amount_usd ")


def test_zero_is_a_valid_invoice(tmp_path: Path) -> None:
    invoices = load_invoices(write(tmp_path, HEADER + "2026-10,INV-0,0\n"))

    invoice = invoices.for_period("2026-10")
    assert invoice is not None
    assert str(invoice.amount_usd) == "0.00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "an empty file", id="empty"),
        pytest.param("month,invoice,amount\n", "it must be exactly", id="wrong-header"),
        pytest.param("period,invoice_id\n", "it must be exactly", id="short-header"),
    ],
)
def test_a_wrong_header_names_the_expected_one(tmp_path: Path, text: str, message: str) -> None:
    (problem,) = problems_of(write(tmp_path, text))

    assert problem.startswith(f"{tmp_path / 'invoices.csv'}:1: header is ")
    assert message in problem
    assert "'period,invoice_id,amount_usd'" in problem


def test_not_utf8_and_too_large_are_refused(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, HEADER.encode() + b"2026-10,INV-\xff,1.00\n"))
    assert "not UTF-8" in problem

    big = write(tmp_path, HEADER + "x" * MAX_INVOICES_BYTES)
    (problem,) = problems_of(big)
    assert "larger than" in problem


def test_a_control_character_in_an_id_is_refused(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, HEADER + "2026-10,INV\x071,1.00\n"))

    assert "control character" in problem
