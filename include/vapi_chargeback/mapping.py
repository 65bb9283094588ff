"""The assistant → team → cost center mapping CSV, effective-dated, as a validated object.

The CSV is written by people (or exported from an HR or CMDB system), so every problem is
reported at once, each as ``file:line: what; the fix``, raised as the config's
``ConfigError``. It is bounded (``MAX_MAPPING_BYTES``, far above any real org) so that a
wrong path fails at once. Team names and assistant ids reach spreadsheet cells and must
be printable; a team may begin with ``=`` or ``+`` (the writers store it as text).

An optional sixth column ``assistant_name`` names the assistant on statements, first in
their precedence (``names``): deleted assistants are not listed by the API.

Assistant ids are UUIDs, which compare case-blind: SQL Server and .NET exports write them
in upper case, the API in lower case, so the mapping keeps them in canonical lower case.
A row may not charge a retired cost center after its ``valid_to`` in ``chargeback.yaml``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from vapi_chargeback.config import ISO_DATE, ChargebackConfig, ConfigError, read_bounded
from vapi_chargeback.inputfiles import csv_rows

MAPPING_HEADER = ("assistant_id", "team", "cost_center_id", "valid_from", "valid_to")
MAPPING_OPTIONAL = ("assistant_name",)
"""The optional sixth column (DESIGN §3): the name statements show, before the API's."""
MAX_MAPPING_BYTES = 32 << 20
"""32 MiB: three hundred thousand mapping rows."""
MAX_MAPPING_TEXT = 200
"""Longest team name or assistant id in the mapping (Vapi ids are 36 characters)."""


class MappingMatch(NamedTuple):
    team: str
    cost_center_id: str


@dataclass(frozen=True)
class MappingEntry:
    assistant_id: str
    """In canonical lower case (see :func:`canonical_assistant_id`)."""
    team: str
    cost_center_id: str
    valid_from: date | None
    """Inclusive; none = since forever."""
    valid_to: date | None
    """Inclusive; none = until further notice."""
    line: int
    assistant_name: str = ""
    """The row's ``assistant_name`` (trimmed); empty when not given."""

    def covers(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )


class AssistantMapping:
    """Effective-dated assistant → (team, cost center); validity never overlaps per assistant."""

    def __init__(self, entries: Iterable[MappingEntry], *, sha256: str | None = None) -> None:
        self.sha256 = sha256
        self._by_assistant: dict[str, list[MappingEntry]] = {}
        self._spans: dict[str, list[tuple[date, date, MappingMatch]]] = {}
        """Per assistant, each row's first and last day (open ends as ``date.min`` and
        ``date.max``) and its match, made once: allocation looks up tens of thousands of
        (assistant, day) pairs."""
        for entry in entries:
            self._by_assistant.setdefault(entry.assistant_id, []).append(entry)
            self._spans.setdefault(entry.assistant_id, []).append(
                (
                    entry.valid_from or date.min,
                    entry.valid_to or date.max,
                    MappingMatch(entry.team, entry.cost_center_id),
                )
            )

    def lookup(self, assistant_id: str, local_date: date) -> MappingMatch | None:
        """The assistant's team and cost center on ``local_date`` (org calendar), if mapped
        (the first of its rows that :meth:`MappingEntry.covers` the day).

        ``assistant_id`` in any case: UUIDs compare case-blind.
        """
        for first, last, match in self._spans.get(canonical_assistant_id(assistant_id), ()):
            if first <= local_date <= last:
                return match
        return None

    @property
    def entries(self) -> list[MappingEntry]:
        return [entry for entries in self._by_assistant.values() for entry in entries]

    def names(self, on: date) -> dict[str, str]:
        """Assistant id → the name its rows give, as of ``on`` (a statement's last day).

        Of an assistant's rows that name it, the one starting last on or before ``on``
        wins (a rename is a new row), else the earliest one starting after it.
        """
        names = {}
        for assistant_id, entries in self._by_assistant.items():
            named = sorted(
                (entry for entry in entries if entry.assistant_name),
                key=lambda entry: entry.valid_from or date.min,
            )
            started = [entry for entry in named if (entry.valid_from or date.min) <= on]
            if named:
                names[assistant_id] = (started or named[:1])[-1].assistant_name
        return names


def load_mapping(path: str | Path, config: ChargebackConfig) -> AssistantMapping:
    """Read and validate the mapping CSV; raise ``ConfigError`` listing every problem."""
    path = Path(path)
    raw = read_bounded(path, MAX_MAPPING_BYTES, "mapping CSV")
    entries, problems = parse_mapping(
        raw, str(path), set(config.cost_center_ids), ends=config.cost_center_ends
    )
    if problems:
        raise ConfigError(str(path), problems)
    return AssistantMapping(entries, sha256=hashlib.sha256(raw).hexdigest())


def canonical_assistant_id(assistant_id: str) -> str:
    """Vapi assistant ids are UUIDs, equal whatever their case; the API writes lower case."""
    return assistant_id.lower()


def parse_mapping(
    raw: bytes,
    source: str,
    cost_center_ids: Collection[str],
    *,
    ends: Mapping[str, date] | None = None,
) -> tuple[list[MappingEntry], list[str]]:
    """Entries and the problems found, each problem as ``file:line: what; the fix``.

    ``ends``: the last day of each retired cost center, which no row may charge after.
    """
    rows, file_problems = csv_rows(raw, source, MAPPING_HEADER, MAPPING_OPTIONAL)
    if file_problems:
        return [], file_problems
    header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    entries: list[MappingEntry] = []
    problems: list[tuple[int, str]] = []
    for line_no, row in rows:
        entry, row_problems = _parse_row(row, line_no, cost_center_ids, ends or {}, len(header))
        problems += [(line_no, message) for message in row_problems]
        if entry is not None:
            entries.append(entry)
    problems += _overlaps(entries)
    return entries, [f"{source}:{line}: {message}" for line, message in sorted(problems)]


def _parse_row(
    row: list[str],
    line_no: int,
    cost_center_ids: Collection[str],
    ends: Mapping[str, date],
    width: int,
) -> tuple[MappingEntry | None, list[str]]:
    """``width``: the header's columns, 5 or 6 (with ``assistant_name``)."""
    if not 3 <= len(row) <= width:
        columns = ",".join((MAPPING_HEADER + MAPPING_OPTIONAL)[:width])
        return None, [
            f"{len(row)} fields; expected {width} ({columns}); leave optional values empty, not out"
        ]
    cells = [cell.strip() for cell in row]
    assistant_id, team, center = cells[0], cells[1], cells[2]
    valid_from_text = cells[3] if len(cells) > 3 else ""
    valid_to_text = cells[4] if len(cells) > 4 else ""
    name = cells[5] if len(cells) > 5 else ""
    problems = []
    if not (assistant_id and team and center):
        blanks = (("assistant_id", assistant_id), ("team", team), ("cost_center_id", center))
        problems += [f"{field} is blank; fill it in" for field, value in blanks if not value]
    for field, value in (("assistant_id", assistant_id), ("team", team), ("assistant_name", name)):
        if len(value) > MAX_MAPPING_TEXT:
            problems.append(
                f"{field} is {len(value)} characters, over {MAX_MAPPING_TEXT}; shorten it"
            )
        elif not value.isprintable():
            problems.append(f"{field} {value!r} contains a control character; remove it")
    # str.split() parts at exactly the characters str.isspace() is true of: one part equal to
    # the text means it has none, decided in C rather than a character at a time.
    if assistant_id and assistant_id.split() != [assistant_id]:
        problems.append(f"assistant_id {assistant_id!r} contains a space; ids have none")
    if center and center not in cost_center_ids:
        problems.append(
            f"cost_center_id {center!r} is not in chargeback.yaml;"
            f" use one of {sorted(cost_center_ids)} or add it to cost_centers"
        )
    valid_from, from_problem = _parse_date(valid_from_text, "valid_from")
    valid_to, to_problem = _parse_date(valid_to_text, "valid_to")
    problems += [problem for problem in (from_problem, to_problem) if problem]
    if valid_from and valid_to and valid_to < valid_from:
        problems.append(
            f"valid_to {valid_to} is before valid_from {valid_from}; swap or fix the dates"
        )
    end = ends.get(center)
    if end is not None and not to_problem and (valid_to is None or valid_to > end):
        charges = "is empty: the row charges" if valid_to is None else f"{valid_to} charges"
        problems.append(
            f"valid_to {charges} cost center {center!r} after {end}, the last day it is"
            f" charged (its valid_to in chargeback.yaml); end the row on or before {end},"
            f" and map the assistant to a cost center still charged from"
            f" {end + timedelta(days=1)} in a row of its own"
        )
    if problems:
        return None, problems
    entry = MappingEntry(
        canonical_assistant_id(assistant_id), team, center, valid_from, valid_to, line_no, name
    )
    return entry, []


@lru_cache(maxsize=4096)
def _parse_date(text: str, field: str) -> tuple[date | None, str | None]:
    """Memoised: a mapping's thousands of rows share a few dozen dates."""
    if not text:
        return None, None
    try:
        if not ISO_DATE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text), None
    except ValueError:
        return None, f"{field} {text!r} is not a date; write it as YYYY-MM-DD (inclusive)"


def _overlaps(entries: list[MappingEntry]) -> list[tuple[int, str]]:
    """Overlapping validity per assistant: a sweep keeping the entry that reaches furthest."""
    by_assistant: dict[str, list[MappingEntry]] = {}
    for entry in entries:
        by_assistant.setdefault(entry.assistant_id, []).append(entry)
    problems = []
    for assistant_id, items in by_assistant.items():
        items.sort(key=lambda e: (e.valid_from or date.min, e.line))
        reach = items[0]
        for entry in items[1:]:
            reach_end = reach.valid_to or date.max
            if (entry.valid_from or date.min) <= reach_end:
                problems.append(
                    (
                        entry.line,
                        f"assistant {assistant_id!r} {_span(entry)} overlaps line {reach.line}"
                        f" ({_span(reach)}); end one before the other starts",
                    )
                )
            if (entry.valid_to or date.max) > reach_end:
                reach = entry
    return problems


def _span(entry: MappingEntry) -> str:
    start = entry.valid_from.isoformat() if entry.valid_from else "…"
    end = entry.valid_to.isoformat() if entry.valid_to else "…"
    return f"{start}..{end}"
