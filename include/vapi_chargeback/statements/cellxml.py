"""The XML of a sheet's cells and rows, by the cell rules ``workbook`` documents.

A large org's publish writes about a million table rows into 400 workbooks, so rows are
built a thousand at a time column by column (:meth:`RowCells.rows`): a column whose values
are all of the plain types (``str``, ``int``, ``Decimal``, ``date``, ``None``) becomes its
cells' XML in one ``map`` of a format string, a text needing escapes is escaped once per
distinct text, and each row is then one join and one replace of a placeholder by its row
number in the cell references. That is about 3× faster than dispatching on every value in Python
(:meth:`RowCells.row`, kept for chunks holding a value of any other type, which it refuses
with the message naming the cell). Both give the same bytes for the same values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import repeat
from operator import itemgetter
from typing import Any

from vapi_chargeback.statements.formatting import FORMULA_TRIGGERS

CellValue = str | int | Decimal | date | None
EXCEL_EPOCH = date(1899, 12, 30)
"""Day 0 of Excel's 1900 date system as the serials from March 1900 on count it."""
XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
NEEDS_ESCAPE = re.compile("[&<>\r]")
"""Most texts have none of ``XML_ESCAPES``'s characters: a search is cheaper than a translate."""
OOXML_ESCAPE_LOOKALIKE = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
"""Excel reads ``_xHHHH_`` in text as an escaped character; a literal one needs its ``_`` escaped."""
ROW_NUMBER = "\x00"
"""Stands for the row number in a row's XML until it is known: XML cannot hold it, so no
text written column-wise does (a text holding it takes the slow path, which refuses it)."""
ROW_OPEN = f'<row r="{ROW_NUMBER}">'
ROW_CLOSE = "</row>"
NEEDS_CARE = ("&", "<", ">", "\r", "_x")
"""Parts of a text that make it more than ``<t>{text}</t>``: XML escapes, an escape lookalike."""
PLAIN_TYPES = frozenset({str, int, Decimal, date, type(None)})
"""Exact types a column may hold for :meth:`RowCells.rows` to write it column-wise."""


@dataclass(frozen=True)
class StyleIds:
    text: int
    quoted: int
    integer: int
    money: int
    share: int
    rate: int
    date: int


class _Texts(dict[str, str]):
    """Text → its cell's XML in one column (:data:`ROW_NUMBER` standing for the row number), made once
    per distinct text: an owner's name or a plan repeats on thousands of rows."""

    def __init__(self, opening: str, plain: str, quoted: str) -> None:
        super().__init__()
        self._opening = opening
        self._plain = plain
        self._quoted = quoted

    def __missing__(self, value: str) -> str:
        if not value:
            xml = ""
        else:
            style = self._quoted if value.startswith(FORMULA_TRIGGERS) else self._plain
            xml = f"{self._opening}{ROW_NUMBER}{style}{text(value)}</is></c>"
        self[value] = xml
        return xml


class RowCells:
    """Writes a table's rows in one style family (body or totals).

    The per-column parts of each cell (reference letter, style id) are built once here.
    ``kinds``: per column ``share``, ``rate`` or ``""`` (plain money and counts).
    """

    def __init__(self, title: str, letters: list[str], kinds: list[str], styles: StyleIds) -> None:
        self._title = title
        self._styles = styles
        self._kinds = kinds
        self._letters = letters
        self._opens = [f'<c r="{letter}' for letter in letters]
        self._decimals = [
            f'" s="{getattr(styles, kind) if kind else styles.money}"><v>' for kind in kinds
        ]
        self._integers = [
            f'" s="{getattr(styles, kind) if kind else styles.integer}"><v>' for kind in kinds
        ]
        self._date = f'" s="{styles.date}"><v>'
        self._plain = f'" s="{styles.text}" t="inlineStr"><is>'
        self._quoted = f'" s="{styles.quoted}" t="inlineStr"><is>'
        self._texts = [_Texts(opening, self._plain, self._quoted) for opening in self._opens]
        self._formats = [
            (
                f"{opening}{ROW_NUMBER}{decimal}{{0:f}}</v></c>".format,
                f"{opening}{ROW_NUMBER}{integer}{{0}}</v></c>".format,
                f"{opening}{ROW_NUMBER}{self._date}{{0}}</v></c>".format,
                f"{opening}{ROW_NUMBER}{self._plain}<t>{{0}}</t></is></c>".format,
            )
            for opening, decimal, integer in zip(
                self._opens, self._decimals, self._integers, strict=True
            )
        ]

    def rows(self, first: int, rows: Sequence[Sequence[CellValue]]) -> list[str]:
        """The XML of ``rows``, numbered from ``first``: column-wise when every value is of a
        plain type (and every amount finite), else row by row."""
        columns: list[list[str]] = []
        for index, values in enumerate(zip(*rows, strict=True)):
            column = self._column(index, values)
            if column is None:
                break
            columns.append(column)
        else:
            if columns:
                templates = map("".join, zip(repeat(ROW_OPEN), *columns, repeat(ROW_CLOSE)))
                numbers = map(str, range(first, first + len(rows)))
                return list(map(str.replace, templates, repeat(ROW_NUMBER), numbers))
        return [self.row(number, values) for number, values in enumerate(rows, start=first)]

    def _column(self, index: int, values: tuple[Any, ...]) -> list[str] | None:
        """One column's cells, :data:`ROW_NUMBER` in place of each row number; ``None`` for
        the slow path (a value of another type, an amount not finite, a text holding
        :data:`ROW_NUMBER`, which the workbook refuses anyway)."""
        kinds = set(map(type, values))
        if not kinds <= PLAIN_TYPES:
            return None
        decimal, integer, day, plain = self._formats[index]
        texts = self._texts[index]
        if str in kinds:
            strings = values if len(kinds) == 1 else [v for v in values if type(v) is str]
            joined = ROW_NUMBER.join(strings)
            if joined.count(ROW_NUMBER) != len(strings) - 1:
                return None
            if len(kinds) == 1:
                if _plain_texts(values, joined):
                    return list(map(plain, values))
                return list(map(texts.__getitem__, values))
        if len(kinds) > 1:
            if Decimal in kinds and not all(
                value.is_finite() for value in values if type(value) is Decimal
            ):
                return None
            serial: Callable[[date], str] = lambda value: day((value - EXCEL_EPOCH).days)  # noqa: E731
            write: dict[type, Callable[[Any], str]] = {
                str: texts.__getitem__,
                Decimal: decimal,
                int: integer,
                date: serial,
                type(None): lambda _: "",
            }
            return [write[type(value)](value) for value in values]
        (kind,) = kinds
        if kind is Decimal:
            return list(map(decimal, values)) if all(map(Decimal.is_finite, values)) else None
        if kind is int:
            return list(map(integer, values))
        if kind is date:
            return [day((value - EXCEL_EPOCH).days) for value in values]
        return [""] * len(values)

    def row(self, number: int, values: Sequence[CellValue]) -> str:
        row = str(number)
        cells = [f'<row r="{row}">']
        append = cells.append
        plain, quoted, day = self._plain, self._quoted, self._date
        # Dispatch on the exact type, looked up once per value (a subclass takes the slow
        # path); ``Any`` because mypy does not narrow a value by a saved ``type()``.
        untyped: Sequence[Any] = values
        columns = zip(self._opens, self._decimals, self._integers, untyped, strict=True)
        for index, (opening, decimal, integer, value) in enumerate(columns):
            kind = type(value)
            if kind is Decimal:
                if not value.is_finite():
                    self._slow(index, number, value)
                append(f"{opening}{row}{decimal}{value:f}</v></c>")
            elif kind is str:
                if value:
                    style = quoted if value.startswith(FORMULA_TRIGGERS) else plain
                    append(f"{opening}{row}{style}{text(value)}</is></c>")
            elif kind is int:
                append(f"{opening}{row}{integer}{value}</v></c>")
            elif kind is date:
                append(f"{opening}{row}{day}{(value - EXCEL_EPOCH).days}</v></c>")
            elif value is not None:
                append(self._slow(index, number, value))
        append(ROW_CLOSE)
        return "".join(cells)

    def _slow(self, index: int, number: int, value: CellValue) -> str:
        reference = f"{self._letters[index]}{number}"
        return cell(reference, value, self._kinds[index], self._styles, self._title)


def _plain_texts(values: Sequence[str], joined: str) -> bool:
    """Whether every text is written as ``<t>{text}</t>`` in the plain text style: none empty,
    escaped, formula-like or with white space at either end (``joined``: all of them)."""
    if not all(values) or any(part in joined for part in NEEDS_CARE):
        return False
    ends = set(map(itemgetter(0), values)) | set(map(itemgetter(-1), values))
    return ends.isdisjoint(FORMULA_TRIGGERS) and not any(end.isspace() for end in ends)


def cell(reference: str, value: CellValue, kind: str, styles: StyleIds, title: str) -> str:
    """One cell's XML by the module's cell rules; ``""`` for no cell. ``kind``: ``share``,
    ``rate`` or ``""`` (plain money and counts)."""
    if value is None:
        return ""
    if isinstance(value, str):
        if not value:
            return ""
        style = styles.quoted if value.startswith(FORMULA_TRIGGERS) else styles.text
        return text_cell(reference, value, style)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"sheet {title!r} cell {reference}: {value} is not a finite number")
        style = getattr(styles, kind) if kind else styles.money
        return f'<c r="{reference}" s="{style}"><v>{value:f}</v></c>'
    if isinstance(value, int) and not isinstance(value, bool):
        style = getattr(styles, kind) if kind else styles.integer
        return f'<c r="{reference}" s="{style}"><v>{value}</v></c>'
    if isinstance(value, date) and not isinstance(value, datetime):
        serial = (value - EXCEL_EPOCH).days
        return f'<c r="{reference}" s="{styles.date}"><v>{serial}</v></c>'
    raise TypeError(
        f"sheet {title!r} cell {reference}: {type(value).__name__} is not str, int,"
        " Decimal, date or None"
    )


def text_cell(reference: str, value: str, style: int) -> str:
    return f'<c r="{reference}" s="{style}" t="inlineStr"><is>{text(value)}</is></c>'


def text(value: str) -> str:
    if "_x" in value:
        value = OOXML_ESCAPE_LOOKALIKE.sub("_x005F_", value)
    escaped = value.translate(XML_ESCAPES) if NEEDS_ESCAPE.search(value) else value
    if value[:1].isspace() or value[-1:].isspace():
        return f'<t xml:space="preserve">{escaped}</t>'
    return f"<t>{escaped}</t>"
