"""The mapping refuses an assistant id with a space exactly where ``str.isspace`` finds one.

The check asks ``str.split`` (in C) rather than looping over the characters; both read
the same Unicode whitespace table, which this test holds over every code point.
"""

from __future__ import annotations

import csv
import io
import sys

from vapi_chargeback.mapping import parse_mapping

HEADER = "assistant_id,team,cost_center_id,valid_from,valid_to\n"


def test_split_finds_a_space_exactly_where_isspace_does() -> None:
    differ = [
        code
        for code in range(sys.maxunicode + 1)
        if (("a" + chr(code) + "b").split() != ["a" + chr(code) + "b"]) != chr(code).isspace()
    ]
    assert differ == []


def test_an_id_with_any_unicode_space_inside_is_refused() -> None:
    spaces = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    assert len(spaces) > 20
    for space in spaces:
        text = io.StringIO()
        csv.writer(text).writerow([f"asst{space}1", "team", "sales", "", ""])
        raw = (HEADER + text.getvalue()).encode()
        entries, problems = parse_mapping(raw, "teams.csv", {"sales"})
        assert entries == []
        expected = (
            f"teams.csv:2: assistant_id {'asst' + space + '1'!r} contains a space; ids have none"
        )
        assert problems[-1] == expected
    entries, problems = parse_mapping((HEADER + "asst-1,team,sales,,\n").encode(), "t", {"sales"})
    assert problems == [] and [entry.assistant_id for entry in entries] == ["asst-1"]
