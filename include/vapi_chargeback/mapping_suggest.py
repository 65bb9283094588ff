"""``mapping suggest``: the mapping CSV rows the ``mapping_rules`` would produce, for review.

Rules apply as of a run (metadata and names have no history), while the CSV is the
effective-dated source of truth. Suggesting rows is how rules become dated history: finance
reviews them, appends them to the mapping CSV and commits, and from then on the month no
longer depends on what the assistants look like today.

Only assistants the CSV maps on no day get a row: one the CSV maps on some days keeps its
rows, and a suggested open row would overlap them (the mapping refuses overlaps). A row
starts on ``valid_from`` and stays open, or ends on its cost center's ``valid_to``. With
these rows appended and the rules removed, a month from ``valid_from`` on gets the same
lines with the same calls and column totals (their ``charged_by`` says ``mapping`` instead
of the rule). A line's amounts may differ by the rounding cents: with rules, a rule line
is the sum of the rounded lines it replaced, so that rules move no cent of the other lines
(``allocate._rounded_lines``); the round trip rounds each line as a whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.mapping import MAPPING_HEADER, AssistantMapping
from vapi_chargeback.mapping_rules import ListedAssistant, match_rules

UNMATCHED_HEADER = ("assistant_id", "assistant_name")


@dataclass(frozen=True)
class Suggestion:
    rows: list[tuple[str, str, str, str, str]]
    """``assistant_id,team,cost_center_id,valid_from,valid_to``, ordered by id."""
    unmatched: list[ListedAssistant]
    """Listed assistants no CSV row and no rule maps, ordered by id."""
    mapped: int
    """Listed assistants left to the CSV rows that map them."""


def suggest(
    config: ChargebackConfig,
    mapping: AssistantMapping,
    assistants: Sequence[ListedAssistant],
    valid_from: date,
) -> Suggestion:
    """Rows the rules give ``assistants`` as of ``valid_from`` (see the module docstring)."""
    in_csv = {entry.assistant_id for entry in mapping.entries}
    ends = {center.id: center.valid_to for center in config.cost_centers}
    rows: list[tuple[str, str, str, str, str]] = []
    unmatched: list[ListedAssistant] = []
    for assistant in sorted(assistants, key=lambda item: item.id):
        if assistant.id in in_csv:
            continue
        hit = match_rules(
            config.mapping_rules, assistant.name, assistant.metadata, ends, valid_from
        )
        if hit is None:
            unmatched.append(assistant)
            continue
        end = ends.get(hit.cost_center_id)
        rows.append(
            (
                assistant.id,
                hit.team,
                hit.cost_center_id,
                valid_from.isoformat(),
                "" if end is None else end.isoformat(),
            )
        )
    mapped = sum(assistant.id in in_csv for assistant in assistants)
    return Suggestion(rows, unmatched, mapped)


def rows_csv(suggestion: Suggestion) -> bytes:
    """The suggested rows under the mapping's header, ready to append to the mapping CSV."""
    return _csv([MAPPING_HEADER, *suggestion.rows])


def unmatched_csv(suggestion: Suggestion) -> bytes:
    return _csv([UNMATCHED_HEADER, *((item.id, item.name) for item in suggestion.unmatched)])


def _csv(rows: Sequence[Sequence[str]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")
