"""``chargeback-{YYYY-MM}.csv``: the machine-readable statement (DESIGN §3 Output).

Byte format, fixed so reruns are byte-identical and any tool can read it:

- UTF-8 without a byte-order mark; comma separated; a value is put in ``"`` quotes
  (inner ``"`` doubled) only when it holds a comma, a quote, LF or CR (RFC 4180); line
  endings are ``\\n`` (LF) on every platform, including after the last line. The
  encoding is done here rather than by the ``csv`` module, whose Python 3.11 writer
  leaves a lone CR unquoted when the line ending is LF.
- Header ``period,cost_center_id,cost_center_name,team,assistant_id,allocation,calls,
  minutes,cost_usd``, then ``<component>_usd`` per reported component in the
  statement's order, then ``other_usd``.
- Money and minutes as plain decimals with exactly two places (``1234.50``), no
  symbols, no thousands separators; calls as integers. Lines in the Statement's order.
- Text that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
  ``@``, tab or CR) is prefixed with ``'`` (the OWASP CSV-injection defence); ids are
  validated slugs and never need it.
"""

from __future__ import annotations

import re
from pathlib import Path

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
LINE_TERMINATOR = "\n"
NEEDS_QUOTES = re.compile('[,"\r\n]')


def csv_name(period: str) -> str:
    return f"chargeback-{period}.csv"


def header(components: list[str]) -> list[str]:
    return [*LEADING_COLUMNS, *(f"{name}_usd" for name in components), "other_usd"]


def write_csv(statement: Statement, path: Path) -> int:
    """Write the statement CSV to ``path``; return the number of data rows (lines)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(_record(header(statement.components)))
        for line in statement.lines:
            handle.write(_record(_row(statement.period, line)))
    return len(statement.lines)


def _row(period: str, line: ChargebackLine) -> list[str]:
    return [
        period,
        _text(line.cost_center_id),
        _text(line.cost_center_name),
        _text(line.team),
        _text(line.assistant_id),
        _text(line.allocation),
        str(line.calls),
        minutes_text(line.minutes),
        money_text(line.cost_usd),
        *(money_text(amount) for amount in line.components_usd.values()),
        money_text(line.other_usd),
    ]


def _text(value: str) -> str:
    return f"'{value}" if looks_like_formula(value) else value


def _record(fields: list[str]) -> str:
    return (
        ",".join(_quoted(field) if NEEDS_QUOTES.search(field) else field for field in fields)
        + LINE_TERMINATOR
    )


def _quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'
