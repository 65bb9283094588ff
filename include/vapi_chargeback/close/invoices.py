"""``invoices.csv`` beside the config: what Vapi actually invoiced, per statement month.

Finance types this file by hand from the invoice PDF, so it is checked like the mapping:
every problem at once, each naming the file, the line, the field and the fix. Amounts
are read as ``Decimal`` from their text, at most two places, never negative and never
through a float. One invoice per month and each invoice id once: a month with two
figures, or one invoice booked against two months, has no single amount to tie to.

The file is optional: without it (or without a row for a month) the month is simply not
tied to an invoice, and says so.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from vapi_chargeback.inputfiles import InputFileError, csv_rows, read_bounded
from vapi_chargeback.money import CENT

INVOICES_NAME = "invoices.csv"
INVOICES_HEADER = ("period", "invoice_id", "amount_usd")
MAX_INVOICES_BYTES = 1 << 20
"""1 MiB: a century of monthly invoices is a few KB; more means the path names another file."""
MAX_INVOICE_ID = 100
MAX_AMOUNT = Decimal(10) ** 13
"""Beyond this a workbook cell (15 significant digits) would lose the cents."""
_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_AMOUNT = re.compile(r"-?\d+(\.\d+)?")


class InvoicesError(InputFileError):
    """Every problem found in one invoices file, each a self-contained sentence."""


@dataclass(frozen=True)
class Invoice:
    period: str
    """``YYYY-MM``: the statement month the invoice covers."""
    invoice_id: str
    amount_usd: Decimal
    """As written, with two places (``1.5`` → ``1.50``), >= 0."""
    line: int
    """Line in the file, for messages that send finance back to it."""


class Invoices:
    """The invoices of one file, by month; empty when the file does not exist."""

    def __init__(self, invoices: Iterable[Invoice] = (), *, sha256: str | None = None) -> None:
        self.sha256 = sha256
        """sha256 of the file's bytes, for provenance; ``None`` when there is no file."""
        self._by_period = {invoice.period: invoice for invoice in invoices}

    def for_period(self, period: str) -> Invoice | None:
        return self._by_period.get(period)

    def __len__(self) -> int:
        return len(self._by_period)


def invoices_path(config_path: str | Path) -> Path:
    """Where the invoices of a config live: ``invoices.csv`` in the config's folder."""
    return Path(config_path).parent / INVOICES_NAME


def load_invoices(path: str | Path) -> Invoices:
    """Read and validate ``path``; no file = no invoices; ``InvoicesError`` lists every problem."""
    path = Path(path)
    source = str(path)
    try:
        raw = read_bounded(
            path, MAX_INVOICES_BYTES, "an invoices file", InvoicesError, missing=None
        )
    except FileNotFoundError:
        return Invoices()
    invoices, problems = parse_invoices(raw, source)
    if problems:
        raise InvoicesError(source, problems)
    return Invoices(invoices, sha256=hashlib.sha256(raw).hexdigest())


def parse_invoices(raw: bytes, source: str) -> tuple[list[Invoice], list[str]]:
    """Invoices and the problems found, each problem as ``file:line: field: what; the fix``."""
    rows, file_problems = csv_rows(raw, source, INVOICES_HEADER)
    if file_problems:
        return [], file_problems
    invoices: list[Invoice] = []
    problems: list[tuple[int, str]] = []
    for line_no, row in rows:
        invoice, row_problems = _parse_row(row, line_no)
        problems += [(line_no, message) for message in row_problems]
        if invoice is not None:
            invoices.append(invoice)
    problems += _duplicates(invoices)
    return invoices, [f"{source}:{line}: {message}" for line, message in sorted(problems)]


def _parse_row(row: list[str], line_no: int) -> tuple[Invoice | None, list[str]]:
    if len(row) != len(INVOICES_HEADER):
        return None, [
            f"{len(row)} fields; expected {len(INVOICES_HEADER)} ({','.join(INVOICES_HEADER)});"
            " quote an invoice id that holds a comma, write amounts without thousands separators"
        ]
    period, invoice_id, amount_text = (cell.strip() for cell in row)
    problems = []
    if not _PERIOD.fullmatch(period):
        problems.append(f"period {period!r} is not a month; write it as YYYY-MM (e.g. 2026-10)")
    if not invoice_id:
        problems.append("invoice_id is blank; copy it from the invoice")
    elif len(invoice_id) > MAX_INVOICE_ID:
        problems.append(
            f"invoice_id is {len(invoice_id)} characters, over {MAX_INVOICE_ID}; shorten it"
        )
    elif not invoice_id.isprintable():
        problems.append(f"invoice_id {invoice_id!r} contains a control character; remove it")
    amount, amount_problem = _parse_amount(amount_text)
    if amount_problem:
        problems.append(amount_problem)
    if problems or amount is None:
        return None, problems
    return Invoice(period, invoice_id, amount, line_no), []


def _parse_amount(text: str) -> tuple[Decimal | None, str | None]:
    if not _AMOUNT.fullmatch(text):
        return None, (
            f"amount_usd {text!r} is not a decimal amount; write it like 1234.56"
            " (no currency symbol, no thousands separator, '.' before the cents)"
        )
    amount = Decimal(text)
    if amount < 0:
        return None, (
            f"amount_usd {text} is negative; an invoice amount is >= 0"
            " (book a credit note as a lower amount of the month it credits)"
        )
    if amount != amount.quantize(CENT):
        return None, f"amount_usd {text} has more than 2 decimal places; write it as on the invoice"
    if amount >= MAX_AMOUNT:
        return None, f"amount_usd {text} is not below 10^13; check the amount"
    return amount.quantize(CENT), None


def _duplicates(invoices: list[Invoice]) -> list[tuple[int, str]]:
    problems = []
    by_period: dict[str, Invoice] = {}
    by_id: dict[str, Invoice] = {}
    for invoice in invoices:
        first = by_period.setdefault(invoice.period, invoice)
        if first is not invoice:
            problems.append(
                (
                    invoice.line,
                    f"period {invoice.period} already has invoice {first.invoice_id!r} on line"
                    f" {first.line}; a month ties to one invoice: remove the extra row or fix"
                    " its period",
                )
            )
        first = by_id.setdefault(invoice.invoice_id, invoice)
        if first is not invoice:
            problems.append(
                (
                    invoice.line,
                    f"invoice_id {invoice.invoice_id!r} is also on line {first.line}"
                    f" (period {first.period}); an invoice covers one month: fix the period"
                    " or the id",
                )
            )
    return problems
