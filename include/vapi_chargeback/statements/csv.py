"""``chargeback-{YYYY-MM}.csv``: the machine-readable statement (DESIGN §3 Output).

Byte format, fixed so reruns are byte-identical and any tool can read it:

- UTF-8 without a byte-order mark; comma separated; a value is put in ``"`` quotes
  (inner ``"`` doubled) only when it holds a comma, a quote, LF or CR (RFC 4180); line
  endings are ``\\n`` (LF) on every platform, including after the last line. The
  encoding is done here rather than by the ``csv`` module, whose Python 3.11 writer
  leaves a lone CR unquoted when the line ending is LF.
- Header ``period,cost_center_id,cost_center_name,team,assistant_id,allocation,calls,
  minutes,cost_usd``, then ``<component>_usd`` per reported component in the
  statement's order, then ``other_usd``, then the columns appended since (DESIGN §3:
  existing columns never move): ``assistant_name``, ``statement_id`` (the statement the
  line belongs to: its cost center's, the org's for ``UNALLOCATED``) and ``corrects``
  (the statement id a ``correction:{YYYY-MM}`` line corrects; empty on other lines)
  and, when the statement has a reporting currency, ``cost_<currency>`` (lower-case ISO
  code, ``cost_eur``): ``cost_usd`` converted by ``fx.convert``, in the currency's minor
  unit (no decimals for JPY), adding up exactly to the converted total.
- Money and minutes as plain decimals with exactly two places (``1234.50``), no
  symbols, no thousands separators; calls as integers. Lines in the Statement's order.
- Text that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
  ``@``, tab or CR) is prefixed with ``'`` (the OWASP CSV-injection defence); ids are
  validated slugs and never need it.

:func:`read_csv` reads such a file back into lines (a booked month's lines, to compute its
corrections or a restatement's changes), including files written before the appended
columns existed, with or without a ``cost_<currency>`` column (which it does not read back:
converted amounts are recomputed from the USD lines, never taken from a file).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from vapi_chargeback.errors import PermanentError
from vapi_chargeback.fx import MINOR_UNITS, amount_text, convert
from vapi_chargeback.statement import ChargebackLine, Statement
from vapi_chargeback.statements.formatting import looks_like_formula, minutes_text, money_text

LEADING_COLUMNS = (
    "period",
    "cost_center_id",
    "cost_center_name",
    "team",
    "assistant_id",
    "allocation",
    "calls",
    "minutes",
    "cost_usd",
)
APPENDED_COLUMNS = ("assistant_name", "statement_id", "corrects")
"""After ``other_usd``, in this order (DESIGN §3 Wave-2 additions)."""
LINE_TERMINATOR = "\n"
NEEDS_QUOTES = re.compile('[,"\r\n]')
QUOTE_OR_BREAK = re.compile('["\r\n]')
COMPONENT_SUFFIX = "_usd"
CONVERTED_PREFIX = "cost_"
"""``cost_<currency>``, after the appended columns, when a reporting currency is set."""


class StatementCsvError(PermanentError, ValueError):
    """A statement CSV that cannot be read back as lines: names the line and the column."""


def csv_name(period: str) -> str:
    return f"chargeback-{period}.csv"


def header(components: list[str], currency: str | None = None) -> list[str]:
    """The columns; ``currency`` (a reporting currency) appends its ``cost_<currency>``."""
    return [
        *LEADING_COLUMNS,
        *(f"{name}{COMPONENT_SUFFIX}" for name in components),
        "other_usd",
        *APPENDED_COLUMNS,
        *([converted_column(currency)] if currency else []),
    ]


def converted_column(currency: str) -> str:
    return f"{CONVERTED_PREFIX}{currency.lower()}"


def write_csv(statement: Statement, path: Path) -> int:
    """Write the statement CSV to ``path``; return the number of data rows (lines)."""
    ids = statement.statement_ids
    converted = convert(statement)
    places = statement.fx.minor_units if statement.fx else 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        currency = converted.currency if converted else None
        handle.write(record(header(statement.components, currency)))
        for index, line in enumerate(statement.lines):
            row = line_row(statement.period, line, ids.for_cost_center(line.cost_center_id))
            if converted is not None:
                row.append(amount_text(converted.lines[index], places))
            handle.write(record(row))
    return len(statement.lines)


def line_row(period: str, line: ChargebackLine, statement_id: str) -> list[str]:
    """One line's fields up to ``corrects``; the month-to-date CSV appends its own after."""
    return [
        period,
        safe_text(line.cost_center_id),
        safe_text(line.cost_center_name),
        safe_text(line.team),
        safe_text(line.assistant_id),
        safe_text(line.allocation),
        str(line.calls),
        minutes_text(line.minutes),
        money_text(line.cost_usd),
        *(money_text(amount) for amount in line.components_usd.values()),
        money_text(line.other_usd),
        safe_text(line.assistant_name),
        statement_id,
        safe_text(line.corrects),
    ]


def safe_text(value: str) -> str:
    """Text a spreadsheet would run as a formula, prefixed with ``'`` (shared with the exports)."""
    return f"'{value}" if looks_like_formula(value) else value


def record(fields: list[str]) -> str:
    """One line in this module's byte format; the FOCUS and journal exports use it too."""
    line = ",".join(fields)
    if line.count(",") == len(fields) - 1 and not QUOTE_OR_BREAK.search(line):
        return line + LINE_TERMINATOR  # no field needs quotes: the usual line, one search
    return (
        ",".join(_quoted(field) if NEEDS_QUOTES.search(field) else field for field in fields)
        + LINE_TERMINATOR
    )


def _quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


@dataclass(frozen=True)
class CsvStatement:
    """A statement CSV read back: its month, component columns and lines."""

    period: str | None
    """``None`` for a file with no lines."""
    components: list[str]
    lines: list[ChargebackLine]
    """As the file shows them: minutes to the hundredth, text without the formula guard."""
    statement_ids: list[str]
    """The ``statement_id`` of each line (empty strings for files older than the column)."""


def read_csv(data: bytes, source: str = "statement CSV") -> CsvStatement:
    """The lines of a statement CSV written by :func:`write_csv`, now or before the appended
    columns existed; ``StatementCsvError`` names the line and column of anything else.

    Each line's ``other_usd`` must equal cost − Σ components, the check that the file was
    not edited by hand. Text loses the ``'`` the writer put before formula-like text, so
    a value that itself began with ``'`` and a formula character reads back without it.
    """
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    if not rows:
        raise StatementCsvError(f"{source}: empty file; a statement CSV has at least its header")
    columns = rows[0]
    components = _components(columns, source)
    lines: list[ChargebackLine] = []
    ids: list[str] = []
    periods: set[str] = set()
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            raise StatementCsvError(
                f"{source} line {number}: {len(row)} fields for {len(columns)} columns"
            )
        values = dict(zip(columns, row, strict=True))
        periods.add(values["period"])
        lines.append(_line(values, components, f"{source} line {number}"))
        ids.append(values.get("statement_id", ""))
    if len(periods) > 1:
        raise StatementCsvError(f"{source}: lines of several periods {sorted(periods)}")
    return CsvStatement(next(iter(periods), None), components, lines, ids)


def _components(columns: list[str], source: str) -> list[str]:
    lead = len(LEADING_COLUMNS)
    if tuple(columns[:lead]) != LEADING_COLUMNS or "other_usd" not in columns[lead:]:
        raise StatementCsvError(
            f"{source} line 1: the header does not begin {','.join(LEADING_COLUMNS)} and hold"
            " other_usd; not a statement CSV"
        )
    other = columns.index("other_usd", lead)
    names = columns[lead:other]
    bad = [name for name in names if not name.endswith(COMPONENT_SUFFIX)]
    if bad:
        raise StatementCsvError(f"{source} line 1: columns {bad} are not <component>_usd")
    extra = columns[other + 1 :]
    appended, converted = extra[: len(APPENDED_COLUMNS)], extra[len(APPENDED_COLUMNS) :]
    if tuple(appended) != APPENDED_COLUMNS[: len(appended)] or not (
        not converted or (len(converted) == 1 and _is_converted_column(converted[0]))
    ):
        raise StatementCsvError(
            f"{source} line 1: columns after other_usd are {extra}; expected"
            f" {list(APPENDED_COLUMNS)} (in that order) or none, then cost_<currency> or none"
        )
    return [name.removesuffix(COMPONENT_SUFFIX) for name in names]


def _is_converted_column(name: str) -> bool:
    code = name.removeprefix(CONVERTED_PREFIX)
    return name.startswith(CONVERTED_PREFIX) and code.islower() and code.upper() in MINOR_UNITS


def _line(values: dict[str, str], components: list[str], where: str) -> ChargebackLine:
    def number(column: str) -> Decimal:
        try:
            return Decimal(values[column])
        except InvalidOperation:
            raise StatementCsvError(
                f"{where}, column {column}: {values[column]!r} is not a number"
            ) from None

    try:
        calls = int(values["calls"])
    except ValueError:
        raise StatementCsvError(
            f"{where}, column calls: {values['calls']!r} is not a whole number"
        ) from None
    line = ChargebackLine(
        cost_center_id=values["cost_center_id"],
        cost_center_name=_plain(values["cost_center_name"]),
        team=_plain(values["team"]),
        assistant_id=_plain(values["assistant_id"]),
        allocation=_plain(values["allocation"]),
        calls=calls,
        minutes=number("minutes"),
        cost_usd=number("cost_usd"),
        components_usd={name: number(f"{name}{COMPONENT_SUFFIX}") for name in components},
        assistant_name=_plain(values.get("assistant_name", "")),
        corrects=_plain(values.get("corrects", "")),
    )
    if line.other_usd != number("other_usd"):
        raise StatementCsvError(
            f"{where}, column other_usd: {values['other_usd']} but cost_usd − Σ components is"
            f" {line.other_usd}; the file was changed after it was written"
        )
    return line


def _plain(text: str) -> str:
    """Undo :func:`safe_text`'s guard: ``'=x`` was written for ``=x``."""
    return text[1:] if text.startswith("'") and looks_like_formula(text[1:]) else text
